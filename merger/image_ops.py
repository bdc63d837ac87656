"""The merger's image effects (DFL's merge steps: histogram matching, motion blur, sharpen/blur,
denoise, bicubic and colour degrade, seamless clone), each one small function on float32 BGR images
in 0..1, so the compositing code reads as DFL's recipe."""
from __future__ import annotations

import cv2
import numpy as np


def to_float(img: np.ndarray) -> np.ndarray:
    """A uint8 image as float32 0..1 (a float image clipped into 0..1)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) * (1.0 / 255.0)
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def to_u8(img: np.ndarray) -> np.ndarray:
    """A float 0..1 image as uint8, rounded."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def hist_match(src: np.ndarray, ref: np.ndarray, threshold: int = 255, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-channel histogram matching of `src` to `ref` (256 levels).

    `threshold` (0..255) is DFL's cut-off: source quantiles are scaled by threshold/255 before the
    reference is looked up, so below 255 the brightest tail of the reference is never reached.
    With `mask` (H x W, > 0 = inside), both histograms come from the masked pixels only.
    """
    sel = None if mask is None else (np.asarray(mask).reshape(src.shape[:2]) > 0)
    if sel is not None and not sel.any():
        sel = None
    out = np.empty_like(src, dtype=np.float32)
    levels = np.arange(256, dtype=np.float64) / 255.0
    for c in range(src.shape[2]):
        s = np.clip(np.rint(src[..., c] * 255.0), 0, 255).astype(np.int32)
        r = np.clip(np.rint(ref[..., c] * 255.0), 0, 255).astype(np.int32)
        s_counts = np.bincount((s if sel is None else s[sel]).ravel(), minlength=256).astype(np.float64)
        r_counts = np.bincount((r if sel is None else r[sel]).ravel(), minlength=256).astype(np.float64)
        s_q = np.cumsum(s_counts)
        s_q *= threshold / s_q[-1]
        r_q = np.cumsum(r_counts)
        r_q *= 255.0 / r_q[-1]
        present = r_counts > 0  # interpolate between the reference's levels that occur
        lut = np.interp(s_q, r_q[present], levels[present]).astype(np.float32)
        out[..., c] = lut[s]
    return out


def linear_motion_blur(img: np.ndarray, size: int, angle_deg: float) -> np.ndarray:
    """Blur along a line of `size` pixels at `angle_deg` (counter-clockwise from the x axis)."""
    if size < 2:
        return img
    k = np.zeros((size, size), np.float32)
    k[(size - 1) // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (size, size))
    total = float(k.sum())
    if total <= 0:
        return img
    return cv2.filter2D(img, -1, k / total)


def median_passes(img: np.ndarray, power: int, full_step: int) -> np.ndarray:
    """DFL's iterated 5x5 median blur: `power` drops by 10 per pass; a pass is full while
    power >= `full_step` and otherwise blended in by (power % full_step) / full_step."""
    n = int(power)
    while n > 0:
        blurred = cv2.medianBlur(img, 5)
        if n // full_step:
            img = blurred
        else:
            a = (n % full_step) / full_step
            img = img * (1.0 - a) + blurred * a
        n = max(n - 10, 0)
    return img.astype(np.float32)


def blur_sharpen(img: np.ndarray, sharpen_mode: str, amount: int, kernel_size: int = 3) -> np.ndarray:
    """Sharpen (amount > 0) by unsharp masking against a box or gaussian blur, at DFL's strength
    (one step = an unsharp mask of 100% for box, 50% for gaussian); blur (amount < 0) by median
    passes of `-amount` as in DFL."""
    if amount > 0:
        kernel_size += 1 - kernel_size % 2
        if sharpen_mode == "box":
            ident = np.zeros((kernel_size, kernel_size), np.float32)
            ident[kernel_size // 2, kernel_size // 2] = 1.0
            box = np.full((kernel_size, kernel_size), 1.0 / kernel_size ** 2, np.float32)
            return cv2.filter2D(img, -1, ident + (ident - box) * amount)
        if sharpen_mode == "gaussian":
            blur = cv2.GaussianBlur(img, (kernel_size, kernel_size), 0)
            return cv2.addWeighted(img, 1.0 + 0.5 * amount, blur, -0.5 * amount, 0)
        return img
    if amount < 0:
        return median_passes(img, -amount, 10)
    return img


def denoise(img: np.ndarray, power: int) -> np.ndarray:
    """Image denoise 0..500: median passes, full ones while the power is 100 or more."""
    return median_passes(img, power, 100) if power > 0 else img


def bicubic_degrade(img: np.ndarray, power: int) -> np.ndarray:
    """Bicubic degrade 0..100: shrink by 1 - power/101 and scale back up."""
    if power <= 0:
        return img
    h, w = img.shape[:2]
    p = 1.0 - power / 101.0
    small = cv2.resize(img, (max(1, int(w * p)), max(1, int(h * p))), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def reduce_colors(img: np.ndarray, n_colors: int = 256, seed: int = 0) -> np.ndarray:
    """The image drawn with an adaptive palette of `n_colors` colours (DFL's colour degrade).

    The palette is k-means over a pixel sample; pixels take their nearest palette colour through a
    32^3 lookup grid, so the cost does not grow with palette size times frame size.
    """
    flat = img.reshape(-1, 3).astype(np.float32)
    rng = np.random.default_rng(seed)
    sample = flat[rng.choice(flat.shape[0], size=min(flat.shape[0], 8192), replace=False)]
    k = min(n_colors, len(np.unique(sample, axis=0)))
    if k < 1:
        return img
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    cv2.setRNGSeed(seed)
    _, _, palette = cv2.kmeans(sample, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    grid = ((np.stack(np.meshgrid(*[np.arange(32)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / 32.0).astype(np.float32)
    d = (palette ** 2).sum(1)[None, :] - 2.0 * grid @ palette.T  # squared distance minus |grid|^2
    lut = palette[np.argmin(d, axis=1)].astype(np.float32)  # (32768, 3)
    idx = np.clip((flat * 32.0).astype(np.int32), 0, 31)
    return lut[(idx[:, 0] * 32 + idx[:, 1]) * 32 + idx[:, 2]].reshape(img.shape)


def seamless_clone(pasted: np.ndarray, frame_roi_u8: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson clone of the pasted face into the frame with a binarised mask; the centre is the
    mask's own bounding-box centre (what OpenCV would use), given explicitly so it never jitters.
    Falls back to the plain paste where OpenCV refuses (a face cut by the frame edge), like DFL."""
    binary = None
    for i in range(1, 10):  # the lowest of 0.1..0.9 that leaves something
        sel = mask > i / 10.0
        if sel.any():
            binary = sel
            break
    if binary is None:
        return pasted
    m8 = binary.astype(np.uint8) * 255
    x, y, w, h = cv2.boundingRect(m8)
    centre = (int(x + w / 2), int(y + h / 2))
    src8 = np.clip(np.rint(pasted * 255.0), 0, 255).astype(np.uint8)
    try:
        cloned = cv2.seamlessClone(src8, np.ascontiguousarray(frame_roi_u8), m8, centre, cv2.NORMAL_CLONE)
    except cv2.error:
        return pasted
    return cloned.astype(np.float32) * (1.0 / 255.0)

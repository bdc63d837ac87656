"""Colour transfer: make one face's colours look like another's (training augmentation, merging).

The five algorithms DFL's merger offers (rct, lct, mkl, idt, sot; mix combines them), written from their papers. Every function
takes float32 BGR images in 0..1 (H x W x 3) and returns a new float32 image in 0..1 shaped like
`src`; the colours of `src` are moved towards those of `ref`. Masks (H x W, or H x W x 1, 0..1)
choose which pixels the statistics are taken from (pixels above 0.5); the mapping is then applied
to the whole of `src`, so a masked transfer is still seamless at the mask edge.

Random directions (idt, sot) come from a fixed seed: the same face gets the same result in every
frame, so merged videos do not flicker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

MASK_CUTOFF = 0.5  # a pixel belongs to a mask above this value
MIN_PIXELS = 16  # fewer masked pixels than this: statistics are taken from the whole image
_EPS = 1e-5

# The names the merger cycles through with `c` (DFL's order); None = no transfer.
MERGER_MODES: tuple[str | None, ...] = (None, "rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot-m", "mix-m")
# The training option `ct_mode`.
TRAINING_MODES: tuple[str, ...] = ("rct", "lct", "mkl", "idt", "sot")


# --- helpers ---------------------------------------------------------------------------------------

def _as_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be an H x W x 3 image, got shape {img.shape}")
    return np.clip(img, 0.0, 1.0)


def _mask_bool(mask: np.ndarray | None, shape_hw: tuple[int, int]) -> np.ndarray | None:
    """A boolean pixel selection, or None for 'all pixels' (also when too few pixels are selected)."""
    if mask is None:
        return None
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != tuple(shape_hw):
        raise ValueError(f"mask shape {m.shape} does not match image shape {tuple(shape_hw)}")
    sel = m > MASK_CUTOFF
    return sel if int(sel.sum()) >= MIN_PIXELS else None


def _pixels(img: np.ndarray, sel: np.ndarray | None) -> np.ndarray:
    """N x C float64 samples of the selected pixels."""
    flat = img.reshape(-1, img.shape[-1])
    return (flat if sel is None else flat[sel.reshape(-1)]).astype(np.float64)


def _sqrtm_sym(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Square root (or inverse square root) of a symmetric positive semi-definite matrix."""
    vals, vecs = np.linalg.eigh(c)
    vals = np.maximum(vals, 1e-12)  # callers add a ridge to covariances; this only guards rounding
    vals = 1.0 / np.sqrt(vals) if inverse else np.sqrt(vals)
    return (vecs * vals) @ vecs.T


def _finish(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.clip(result, 0.0, 1.0).astype(np.float32).reshape(like.shape)


def _match_1d(values: np.ndarray, src_samples: np.ndarray, ref_samples: np.ndarray, bins: int | None) -> np.ndarray:
    """Map `values` through the 1-D transport taking the distribution of `src_samples` onto `ref_samples`.

    Quantile matching: a value at quantile q of the source goes to quantile q of the reference.
    With `bins`, the quantile functions come from histograms over the common range (as in Pitie's
    IDT); without, from the sorted samples.
    """
    if bins:
        lo = float(min(src_samples.min(), ref_samples.min()))
        hi = float(max(src_samples.max(), ref_samples.max()))
        if hi - lo < 1e-9:
            return values.copy()
        edges = np.linspace(lo, hi, bins + 1)
        cdf_s = np.cumsum(np.histogram(src_samples, edges)[0]).astype(np.float64)
        cdf_r = np.cumsum(np.histogram(ref_samples, edges)[0]).astype(np.float64)
        cdf_s /= cdf_s[-1]
        cdf_r /= cdf_r[-1]
        # Source value -> its quantile -> the reference value with that quantile. Bin upper edges
        # carry the cumulative counts; a leading 0 at the lower edge closes the curve.
        xs = np.concatenate([[0.0], cdf_s])
        xr = np.concatenate([[0.0], cdf_r])
        q = np.interp(values, edges, xs)
        # np.interp needs increasing x: make the reference CDF strictly increasing by a hair.
        xr = xr + np.arange(xr.size) * 1e-12
        return np.interp(q, xr, edges)
    s_sorted = np.sort(src_samples)
    r_sorted = np.sort(ref_samples)
    n, m = s_sorted.size, r_sorted.size
    r_at_s_ranks = np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, m), r_sorted)
    return np.interp(values, s_sorted, r_at_s_ranks)


def _random_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A uniformly random rotation (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# --- the algorithms --------------------------------------------------------------------------------

def rct(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Reinhard et al. (2001): match per-channel mean and standard deviation in L*a*b*.

    LAB decorrelates lightness from colour, so a per-channel shift and scale moves skin tone and
    brightness without tinting. Statistics come from the masked pixels of each image.
    """
    src = _as_image(src, "src")
    return apply_stats("rct", src, image_stats("rct", src, src_mask), image_stats("rct", ref, ref_mask))


def _rct_apply(src: np.ndarray, s: ColourStats, r: ColourStats) -> np.ndarray:
    s_lab = cv2.cvtColor(src, cv2.COLOR_BGR2LAB)
    scale = r.spread / np.maximum(s.spread, 1e-3)
    out = (s_lab.astype(np.float64) - s.mean) * scale + r.mean
    out[..., 0] = np.clip(out[..., 0], 0.0, 100.0)
    out[..., 1:] = np.clip(out[..., 1:], -127.0, 127.0)
    return _finish(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2BGR), src)


def lct(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Linear colour transfer (Hertzmann's PCA form): match the mean and the full BGR covariance.

    x -> Cr^1/2 Cs^-1/2 (x - ms) + mr with symmetric (eigen) square roots: the result's covariance
    is exactly Cr, and unlike rct it also carries correlations between channels.
    """
    src = _as_image(src, "src")
    return apply_stats("lct", src, image_stats("lct", src, src_mask), image_stats("lct", ref, ref_mask))


def mkl(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Monge-Kantorovich linear transfer (Pitie & Kokaram 2007): the covariance-matching linear map
    that moves colours the least, T = Cs^-1/2 (Cs^1/2 Cr Cs^1/2)^1/2 Cs^-1/2.

    Same mean and covariance as lct, with less hue rotation.
    """
    src = _as_image(src, "src")
    return apply_stats("mkl", src, image_stats("mkl", src, src_mask), image_stats("mkl", ref, ref_mask))


def _linear_apply(name: str, src: np.ndarray, s: ColourStats, r: ColourStats) -> np.ndarray:
    cs, cr = s.spread, r.spread
    if name == "lct":
        t = _sqrtm_sym(cr) @ _sqrtm_sym(cs, inverse=True)
    else:  # mkl
        cs_half = _sqrtm_sym(cs)
        cs_inv_half = _sqrtm_sym(cs, inverse=True)
        t = cs_inv_half @ _sqrtm_sym(cs_half @ cr @ cs_half) @ cs_inv_half
    out = (src.reshape(-1, 3).astype(np.float64) - s.mean) @ t.T + r.mean
    return _finish(out, src)


# --- statistics in, statistics out ------------------------------------------------------------------
# rct, lct and mkl depend on the images only through a few statistics (a mean and a spread per image).
# Taken apart, the merger can average the dst face's statistics over neighbouring video frames
# (merger.temporal) so the transferred colour does not flicker with the dst crop's per-frame noise.

@dataclass(frozen=True)
class ColourStats:
    """One image's colour statistics inside its mask: the mean and, for rct, the per-channel standard
    deviation in L*a*b*; for lct and mkl, the (regularised) BGR covariance."""

    mean: np.ndarray  # (3,)
    spread: np.ndarray  # (3,) standard deviations (rct) or (3, 3) covariance (lct, mkl)


def stats_name(mode: str | None) -> str | None:
    """The algorithm whose statistics `mode` uses, or None when it has no statistics form (none, idt,
    sot, mix: they match whole distributions)."""
    if mode is None:
        return None
    name = mode[:-2] if mode.endswith("-m") else mode
    return name if name in ("rct", "lct", "mkl") else None


def image_stats(mode: str, img: np.ndarray, mask: np.ndarray | None = None) -> ColourStats:
    """`img`'s statistics for `mode` (rct, lct, mkl or their -m forms) over the pixels of `mask`."""
    name = stats_name(mode)
    if name is None:
        raise ValueError(f"colour transfer mode '{mode}' has no statistics form")
    img = _as_image(img, "image")
    sel = _mask_bool(mask, img.shape[:2])
    if name == "rct":  # OpenCV's one-pass mean/std (double sums): a quarter of NumPy's strided reductions
        mean, std = cv2.meanStdDev(cv2.cvtColor(img, cv2.COLOR_BGR2LAB),
                                   mask=None if sel is None else sel.view(np.uint8))
        return ColourStats(mean.reshape(3), std.reshape(3))
    px = _pixels(img, sel)
    return ColourStats(px.mean(0), np.cov(px, rowvar=False, bias=True) + _EPS * np.eye(3))


def apply_stats(mode: str, src: np.ndarray, src_stats: ColourStats, ref_stats: ColourStats) -> np.ndarray:
    """Move `src` from its statistics `src_stats` to `ref_stats` with `mode`'s mapping."""
    name = stats_name(mode)
    src = _as_image(src, "src")
    if name == "rct":
        return _rct_apply(src, src_stats, ref_stats)
    if name in ("lct", "mkl"):
        return _linear_apply(name, src, src_stats, ref_stats)
    raise ValueError(f"colour transfer mode '{mode}' has no statistics form")


def average_stats(stats: list[ColourStats], weights: np.ndarray | list[float] | None = None) -> ColourStats:
    """The weighted mean of several images' statistics (standard deviations and covariances are
    averaged as they are: the frames of one face differ little, and a mean of covariances stays one)."""
    w = np.ones(len(stats)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    return ColourStats(sum(wi * s.mean for wi, s in zip(w, stats)), sum(wi * s.spread for wi, s in zip(w, stats)))


def idt(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None, iterations: int = 20, bins: int = 256, seed: int = 0) -> np.ndarray:
    """Iterative distribution transfer (Pitie, Kokaram & Dahyot 2005): the full 3-D colour
    distribution, not just its first two moments.

    Each iteration rotates colour space at random and matches the three 1-D marginals by histogram
    (`bins` bins); over `iterations` rotations the whole distribution converges to the reference.
    """
    src = _as_image(src, "src")
    ref = _as_image(ref, "ref")
    s_sel = _mask_bool(src_mask, src.shape[:2])
    r_px = _pixels(ref, _mask_bool(ref_mask, ref.shape[:2]))
    cur = src.reshape(-1, 3).astype(np.float64)
    s_idx = None if s_sel is None else np.flatnonzero(s_sel.reshape(-1))
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        rot = _random_rotation(rng, 3)
        proj = cur @ rot  # columns: the image along each rotated axis
        proj_r = r_px @ rot
        moved = np.empty_like(proj)
        for j in range(3):
            samples = proj[:, j] if s_idx is None else proj[s_idx, j]
            moved[:, j] = _match_1d(proj[:, j], samples, proj_r[:, j], bins)
        cur = cur + (moved - proj) @ rot.T
    return _finish(cur, src)


def sot(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None, steps: int = 10, batch_size: int = 5,
        reg_sigma_xy: float = 16.0, reg_sigma_v: float = 5.0, seed: int = 0) -> np.ndarray:
    """Sliced optimal transport (Rabin et al. 2011, as in DFL: `steps` x `batch_size` directions).

    Each step projects colours on a few random directions, solves the 1-D transport along each
    (sorting) and moves pixels by the average displacement. The colour displacement field is then
    smoothed with a bilateral filter (sigma `reg_sigma_xy` pixels, `reg_sigma_v` in value, DFL's
    values), so neighbouring pixels move together and no speckle appears (0 disables).
    """
    src = _as_image(src, "src")
    ref = _as_image(ref, "ref")
    s_sel = _mask_bool(src_mask, src.shape[:2])
    r_px = _pixels(ref, _mask_bool(ref_mask, ref.shape[:2]))
    orig = src.reshape(-1, 3).astype(np.float64)
    cur = orig.copy()
    s_idx = None if s_sel is None else np.flatnonzero(s_sel.reshape(-1))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        advect = np.zeros_like(cur)
        for _ in range(batch_size):
            d = rng.standard_normal(3)
            d /= np.linalg.norm(d)
            proj = cur @ d
            samples = proj if s_idx is None else proj[s_idx]
            advect += (_match_1d(proj, samples, r_px @ d, None) - proj)[:, None] * d
        cur += advect / batch_size
    if reg_sigma_xy > 0 and reg_sigma_v > 0:
        # Bilateral smoothing of the displacement field in 0..1 units, as DFL does: with a value
        # sigma far above any displacement it acts as a wide spatial blur that still stops at
        # extreme jumps.
        disp = (cur - orig).astype(np.float32).reshape(src.shape)
        disp = cv2.bilateralFilter(disp, 0, reg_sigma_v, reg_sigma_xy)
        cur = orig + disp.reshape(-1, 3).astype(np.float64)
    return _finish(cur, src)


def mix(src: np.ndarray, ref: np.ndarray, src_mask: np.ndarray | None = None,
        ref_mask: np.ndarray | None = None) -> np.ndarray:
    """DFL's 'mix': lightness by a linear (mean/std) transfer of L*, chroma by sliced optimal
    transport of a*b* - the tone follows the reference smoothly, the colours follow it fully."""
    src = _as_image(src, "src")
    ref = _as_image(ref, "ref")
    s_sel = _mask_bool(src_mask, src.shape[:2])
    r_sel = _mask_bool(ref_mask, ref.shape[:2])
    s_lab = cv2.cvtColor(src, cv2.COLOR_BGR2LAB).astype(np.float64)
    r_lab = cv2.cvtColor(ref, cv2.COLOR_BGR2LAB).astype(np.float64)
    s_px, r_px = _pixels(s_lab, s_sel), _pixels(r_lab, r_sel)
    out = np.empty_like(s_lab)
    s_l_mean, s_l_std = s_px[:, 0].mean(), s_px[:, 0].std()
    out[..., 0] = np.clip((s_lab[..., 0] - s_l_mean) * (r_px[:, 0].std() / max(s_l_std, 1e-3)) + r_px[:, 0].mean(),
                          0.0, 100.0)
    # Chroma: sliced OT in the a*b* plane (scaled to about 0..1 so the steps are like BGR's).
    cur = s_lab[..., 1:].reshape(-1, 2) / 255.0
    ref_ab = r_px[:, 1:] / 255.0
    s_idx = None if s_sel is None else np.flatnonzero(s_sel.reshape(-1))
    rng = np.random.default_rng(0)
    for _ in range(10):
        advect = np.zeros_like(cur)
        for _ in range(5):
            d = rng.standard_normal(2)
            d /= np.linalg.norm(d)
            proj = cur @ d
            samples = proj if s_idx is None else proj[s_idx]
            advect += (_match_1d(proj, samples, ref_ab @ d, None) - proj)[:, None] * d
        cur += advect / 5
    out[..., 1:] = np.clip(cur * 255.0, -127.0, 127.0).reshape(s_lab.shape[:2] + (2,))
    return _finish(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2BGR), src)


_ALGORITHMS: dict[str, Callable[..., np.ndarray]] = {"rct": rct, "lct": lct, "mkl": mkl, "idt": idt, "sot": sot, "mix": mix}
_MASK_AWARE_ALWAYS = {"rct"}  # DFL's rct always uses the mask it is given


def color_transfer(mode: str | None, src: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Transfer `ref`'s colours onto `src` with the named algorithm; float32 0..1 like `src`.

    Modes: rct, lct, mkl, idt, sot, mix, and the merger's masked variants mkl-m, idt-m, sot-m, mix-m
    whose statistics come only from inside `mask` (the face), in both images. rct uses `mask` when
    one is given, as DFL's does. None or "none" returns a copy of `src`. The merger's sot-m takes
    30 steps, like DFL's.
    """
    if mode is None or mode == "none":
        return _as_image(src, "src").copy()
    name = mode[:-2] if mode.endswith("-m") else mode
    fn = _ALGORITHMS.get(name)
    if fn is None:
        raise ValueError(f"unknown colour transfer mode '{mode}' (choose from none, "
                         f"{', '.join(_ALGORITHMS)}, mkl-m, idt-m, sot-m, mix-m)")
    use_mask = mask is not None and (mode.endswith("-m") or name in _MASK_AWARE_ALWAYS)
    kwargs = {"src_mask": mask, "ref_mask": mask} if use_mask else {}
    if mode == "sot-m":
        kwargs["steps"] = 30
    return fn(src, ref, **kwargs)


def color_transfer_to(mode: str, src: np.ndarray, ref_stats: ColourStats, mask: np.ndarray | None = None) -> np.ndarray:
    """`color_transfer` with the reference given by its statistics (a mode with a statistics form, see
    `stats_name`): `src`'s own statistics are taken as `color_transfer` would take them."""
    return apply_stats(mode, src, image_stats(mode, src, stats_mask(mode, mask)), ref_stats)


def stats_mask(mode: str, mask: np.ndarray | None) -> np.ndarray | None:
    """The mask `color_transfer` takes `mode`'s statistics in: `mask` for the -m modes and rct, else None."""
    name = mode[:-2] if mode.endswith("-m") else mode
    return mask if mask is not None and (mode.endswith("-m") or name in _MASK_AWARE_ALWAYS) else None

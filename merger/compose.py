"""Put predicted faces into a dst frame: DFL's per-face recipe (reference/dfl.md §8.2), frame by frame.

The model runs elsewhere (batched, in the main process); this module is pure image work and runs in
the worker processes. Each face is handled inside its own region of interest (the crop squares'
bounding box), so the cost does not grow with frame size, except for the whole-frame degrade effects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from core.color_transfer import color_transfer
from facelib.align import align, invert_affine, transform_points
from facelib.face_type import FaceType
from merger import image_ops, mask_ops
from merger.config import MergeConfig


@dataclass
class FacePrediction:
    """One dst face and what the model made of it (arrays at the model resolution R)."""

    landmarks: np.ndarray  # (68, 2) in frame pixels
    face: np.ndarray  # (R, R, 3) float32 BGR 0..1
    src_mask: np.ndarray  # (R, R) float32 0..1, learned-prd
    dst_mask: np.ndarray  # (R, R) float32 0..1, learned-dst


@dataclass(frozen=True)
class Motion:
    """How the face moves around this frame: pixels per frame and direction (degrees, counter-
    clockwise from the image x axis, as OpenCV's rotation takes it)."""

    power: float = 0.0
    angle_deg: float = 0.0


def crop_for_model(frame: np.ndarray, landmarks: np.ndarray, resolution: int, face_type: FaceType) -> np.ndarray:
    """The predictor's input for one face: the aligned crop at (resolution, face_type), float32 0..1.

    Bicubic, as DFL's merger crops; the compositing re-crops the same way for colour transfer.
    """
    mat = align(landmarks, resolution, face_type)
    crop = cv2.warpAffine(frame, mat, (resolution, resolution), flags=cv2.INTER_CUBIC)
    return _to_float(crop)


def _to_float(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) * (1.0 / 255.0)
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def _roi_of(mats_sizes: list[tuple[np.ndarray, int]], frame_hw: tuple[int, int], margin: int = 2):
    """Frame box (x0, y0, x1, y1) covering the given crop squares (matrix, size), clipped to the frame."""
    h, w = frame_hw
    pts = []
    for mat, size in mats_sizes:
        pts.append(transform_points(np.array([(0, 0), (size, 0), (size, size), (0, size)], np.float64), mat, invert=True))
    pts = np.concatenate(pts)
    x0 = max(0, int(math.floor(pts[:, 0].min())) - margin)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - margin)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + margin)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def _to_roi(mat_crop_to_frame: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Shift a crop->frame matrix so it lands in the ROI starting at (x0, y0)."""
    m = np.array(mat_crop_to_frame, np.float64)
    m[0, 2] -= x0
    m[1, 2] -= y0
    return m


def _from_roi(mat_frame_to_crop: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """A frame->crop matrix that reads from the ROI starting at (x0, y0)."""
    m = np.array(mat_frame_to_crop, np.float64)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return m


@dataclass
class _Layer:
    roi: tuple[int, int, int, int]
    image: np.ndarray  # (h, w, 3) float32: the ROI as this face leaves it
    mask: np.ndarray  # (h, w, 1) float32
    degrade_background: bool  # this face asked for the frame background to be degraded


def _colour(cfg: MergeConfig, face: np.ndarray, dst_crop: np.ndarray, area: np.ndarray) -> np.ndarray:
    if cfg.color_transfer == "none":
        return face
    return color_transfer(cfg.color_transfer, face, dst_crop, area)


def _merge_face(frame_u8: np.ndarray, background: np.ndarray | None, fp: FacePrediction,
                cfg: MergeConfig, resolution: int, face_type: FaceType, motion: Motion) -> _Layer | np.ndarray | None:
    """One face's layer (or, in raw-predict mode, the prediction itself); None if it is off-frame.

    `background` is the degraded frame (float) when the settings degrade it, else None: the frame
    is converted to float only inside the face's region.
    """
    R = resolution
    sub = R * mask_ops.SUBRES
    scale = 1.0 + 0.01 * cfg.output_face_scale
    lm = np.asarray(fp.landmarks, np.float64)
    face_mat = align(lm, R, face_type)
    out_mat = align(lm, R, face_type, scale)
    mask_mat = align(lm, sub, face_type, scale)

    prd = np.clip(np.asarray(fp.face, np.float32), 0.0, 1.0)
    hull = mask_ops.dst_hull(lm, face_mat, R) if cfg.mask_mode == "dst" else None
    wrk = mask_ops.select_mask(cfg.mask_mode, np.asarray(fp.src_mask, np.float32).reshape(R, R),
                               np.asarray(fp.dst_mask, np.float32).reshape(R, R), hull)
    wrk_sub = mask_ops.to_subres(wrk, R)
    raw = cfg.mode in ("raw-rgb", "raw-predict")
    if not raw:
        wrk_sub = mask_ops.post_process(wrk_sub, R, cfg.erode, cfg.blur)
    wrk = cv2.resize(wrk_sub, (R, R), interpolation=cv2.INTER_CUBIC) if wrk_sub.shape[0] != R else wrk_sub
    wrk = np.clip(wrk, 0.0, 1.0)

    if cfg.mode == "raw-predict":
        return np.concatenate([prd, wrk[..., None]], axis=-1)

    roi = _roi_of([(face_mat, R), (out_mat, R)], frame_u8.shape[:2])
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    rw, rh = x1 - x0, y1 - y0
    frame_roi = _to_float(frame_u8[y0:y1, x0:x1])
    mask_roi = cv2.warpAffine(wrk_sub, _to_roi(invert_affine(mask_mat), x0, y0), (rw, rh), flags=cv2.INTER_CUBIC)
    mask_roi = np.clip(mask_roi, 0.0, 1.0)
    mask_roi[mask_roi < mask_ops.NOISE] = 0.0
    mask_roi = mask_roi[..., None]

    if cfg.mode == "original":
        return _Layer(roi, frame_roi.copy(), mask_roi, False)

    out_to_roi = _to_roi(invert_affine(out_mat), x0, y0)
    if cfg.mode == "raw-rgb":
        pasted = cv2.warpAffine(prd, out_to_roi, (rw, rh), flags=cv2.INTER_CUBIC)
        alpha = cv2.warpAffine(np.ones((R, R), np.float32), out_to_roi, (rw, rh), flags=cv2.INTER_CUBIC)
        alpha = np.clip(alpha, 0.0, 1.0)[..., None]
        image = np.clip(frame_roi * (1.0 - alpha) + pasted * alpha, 0.0, 1.0)
        return _Layer(roi, image, mask_roi, False)

    # Too small a mask (< 4 px across where it is >= 0.1): leave the frame as it is.
    big = np.argwhere(mask_roi[..., 0] >= 0.1)
    if big.size == 0 or min(np.ptp(big[:, 0]), np.ptp(big[:, 1])) < 4:
        return _Layer(roi, frame_roi.copy(), mask_roi, False)

    dst_crop = _to_float(cv2.warpAffine(frame_u8, face_mat, (R, R), flags=cv2.INTER_CUBIC))
    area = (wrk > 0).astype(np.float32)
    seamless = cfg.mode.startswith("seamless")
    if not seamless:
        prd = _colour(cfg, prd, dst_crop, area)
    if cfg.mode == "hist-match":
        prd = image_ops.hist_match(prd, dst_crop, cfg.hist_match_threshold, area if cfg.masked_hist_match else None)

    pasted = cv2.warpAffine(prd, out_to_roi, (rw, rh), dst=frame_roi.copy(), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_TRANSPARENT)
    pasted = np.clip(pasted, 0.0, 1.0)
    if seamless:
        pasted = _seamless(pasted, frame_u8[y0:y1, x0:x1], mask_roi[..., 0])
    image = frame_roi * (1.0 - mask_roi) + pasted * mask_roi

    blur_kernel = 0
    if cfg.motion_blur > 0 and motion.power > 0:
        k = int(motion.power * cfg.motion_blur / 100.0)
        blur_kernel = int(np.clip(k + 1, 2, 50)) if k >= 1 else 0
    degrade = cfg.image_denoise > 0 or cfg.bicubic_degrade > 0
    if ((seamless and cfg.color_transfer != "none") or cfg.mode == "seamless-hist-match" or cfg.motion_blur > 0
            or cfg.sharpen_amount != 0 or degrade):
        # Post-effects on the composited face, re-cropped, then pasted back onto the (degraded) frame.
        out_face = cv2.warpAffine(image, _from_roi(face_mat, x0, y0), (R, R), flags=cv2.INTER_CUBIC)
        if seamless and cfg.color_transfer != "none":
            out_face = _colour(cfg, out_face, dst_crop, area)
        if cfg.mode == "seamless-hist-match":
            out_face = image_ops.hist_match(out_face, dst_crop, cfg.hist_match_threshold)
        if blur_kernel:
            out_face = image_ops.linear_motion_blur(out_face, blur_kernel, motion.angle_deg)
        if cfg.sharpen_amount != 0:
            out_face = image_ops.blur_sharpen(out_face, cfg.sharpen_mode, cfg.sharpen_amount)
        bg_roi = frame_roi if background is None else background[y0:y1, x0:x1]
        new_out = cv2.warpAffine(np.clip(out_face, 0.0, 1.0), _to_roi(invert_affine(face_mat), x0, y0), (rw, rh),
                                 dst=bg_roi.copy(), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
        image = bg_roi * (1.0 - mask_roi) + new_out * mask_roi
    return _Layer(roi, np.clip(image, 0.0, 1.0).astype(np.float32), mask_roi, degrade)


def _seamless(pasted: np.ndarray, frame_roi_u8: np.ndarray, mask: np.ndarray) -> np.ndarray:
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


def compose_frame(frame: np.ndarray, faces: list[FacePrediction], cfg: MergeConfig, resolution: int,
                  face_type: FaceType, motion: Motion | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge every face of a frame: (BGR uint8 image, uint8 H x W mask of where faces went).

    `frame` is the dst frame as read (BGR uint8). Several faces are combined in order, each
    blended over the previous by its own mask; the output mask is their union. A frame with no
    faces comes back unchanged with an empty mask. In raw-predict mode the image is the first
    face's prediction (R x R), or a black R x R image when there is none.
    """
    motion = motion or Motion()
    frame_u8 = frame if frame.dtype == np.uint8 else np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    h, w = frame_u8.shape[:2]
    if cfg.mode == "raw-predict":
        for fp in faces:
            out = _merge_face(frame_u8, None, fp, cfg, resolution, face_type, motion)
            return _to_u8(out[..., :3]), _to_u8(out[..., 3])
        return np.zeros((resolution, resolution, 3), np.uint8), np.zeros((resolution, resolution), np.uint8)
    if not faces:
        return frame_u8.copy(), np.zeros((h, w), np.uint8)

    degrade = cfg.mode not in ("original", "raw-rgb") and (cfg.image_denoise > 0 or cfg.bicubic_degrade > 0)
    background = None
    if degrade:
        frame_f = _to_float(frame_u8)
        background = image_ops.bicubic_degrade(image_ops.denoise(frame_f, cfg.image_denoise), cfg.bicubic_degrade)
    layers = [layer for fp in faces
              if (layer := _merge_face(frame_u8, background, fp, cfg, resolution, face_type, motion)) is not None]
    whole_frame = cfg.color_degrade > 0 and cfg.mode not in ("original", "raw-rgb") and bool(layers)
    if not whole_frame and not any(layer.degrade_background for layer in layers):
        return _compose_in_regions(frame_u8, layers)

    out = (background if background is not None and any(layer.degrade_background for layer in layers)
           else _to_float(frame_u8)).copy()
    mask = np.zeros((h, w), np.float32)
    for i, layer in enumerate(layers):
        x0, y0, x1, y1 = layer.roi
        if i == 0:  # like DFL: the first face's result is taken whole, later ones blend by their mask
            out[y0:y1, x0:x1] = layer.image
        else:
            region = out[y0:y1, x0:x1]
            out[y0:y1, x0:x1] = region * (1.0 - layer.mask) + layer.image * layer.mask
        mask[y0:y1, x0:x1] = np.minimum(1.0, mask[y0:y1, x0:x1] + layer.mask[..., 0])
    if whole_frame:
        reduced = image_ops.reduce_colors(out, 256)
        a = cfg.color_degrade / 100.0
        out = reduced if cfg.color_degrade >= 100 else out * (1.0 - a) + reduced * a
    return _to_u8(out), _to_u8(mask)


def _compose_in_regions(frame_u8: np.ndarray, layers: list[_Layer]) -> tuple[np.ndarray, np.ndarray]:
    """The common case (nothing touches the whole frame): only the faces' regions are converted,
    blended and written back, so a 4K frame costs about what a 480p one does."""
    out = frame_u8.copy()
    mask = np.zeros(frame_u8.shape[:2], np.uint8)
    for i, layer in enumerate(layers):
        x0, y0, x1, y1 = layer.roi
        if i == 0:
            region = layer.image
        else:
            region = _to_float(out[y0:y1, x0:x1]) * (1.0 - layer.mask) + layer.image * layer.mask
        out[y0:y1, x0:x1] = _to_u8(region)
        m = np.minimum(1.0, mask[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0) + layer.mask[..., 0])
        mask[y0:y1, x0:x1] = _to_u8(m)
    return out, mask


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def face_centre(landmarks: np.ndarray) -> np.ndarray:
    """The centre of the face's FULL crop in frame pixels: the point motion is measured on."""
    mat = align(landmarks, 256, FaceType.FULL)
    return transform_points(np.array([128.0, 128.0]), mat, invert=True)


def motion_between(prev_lm: np.ndarray | None, cur_lm: np.ndarray, next_lm: np.ndarray | None) -> Motion:
    """The face's motion at this frame from its neighbours: the mean displacement per frame over
    the previous and next frames (either may be missing), as power (pixels) and angle."""
    cur = face_centre(cur_lm)
    steps = []
    if prev_lm is not None:
        steps.append(cur - face_centre(prev_lm))
    if next_lm is not None:
        steps.append(face_centre(next_lm) - cur)
    if not steps:
        return Motion()
    v = np.mean(steps, axis=0)
    power = float(np.hypot(v[0], v[1]))
    # Image y points down; OpenCV's rotation angle is counter-clockwise on screen.
    return Motion(power, float(-math.degrees(math.atan2(v[1], v[0]))) if power > 0 else 0.0)

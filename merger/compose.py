"""Put predicted faces into a dst frame, frame by frame, with DFL's per-face merge recipe.

The model runs elsewhere (batched, in the main process); this module is pure image work and runs in
the worker processes. One face goes through these steps, each a function below:

1. `face_geometry.face_crops`: the three crops of the face (model input, pasted output scaled by
   `output_face_scale`, mask post-processing at `mask_ops.SUBRES` x resolution);
2. `face_mask`: the mask of `mask_mode`, eroded/dilated and feathered (not in the raw modes);
3. `face_geometry.face_region`: the frame box the face touches (None when it is off the frame);
4. `mask_in_region`: the mask warped back into that box;
5. `blend_face`: the mode's blend, one `FaceLayer` per face; overlay / hist-match / seamless go
   through `_colour_before_paste`, `_paste` (Poisson clone when seamless), and, when any is set,
   `_post_effects` (colour transfer after a seamless clone, seamless hist-match, motion blur,
   sharpen/blur, pasted over the denoised / degraded background).

`compose_frame` then stacks the layers over the frame. Each face is handled inside its own region,
so the cost does not grow with frame size, except for the whole-frame degrade effects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from core.color_transfer import ColourStats, color_transfer, color_transfer_to, stats_name
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from merger import image_ops, mask_ops
from merger.config import MergeConfig
from merger.face_geometry import FaceCrops, FaceRegion, face_crops, face_region

RAW_MODES = ("raw-rgb", "raw-predict")
NO_EFFECT_MODES = ("original", "raw-rgb")  # modes that never denoise, degrade or colour-degrade the frame


@dataclass
class FacePrediction:
    """One dst face and what the model made of it (arrays at the model resolution R)."""

    landmarks: np.ndarray  # (68, 2) in frame pixels
    face: np.ndarray  # (R, R, 3) float32 BGR 0..1
    src_mask: np.ndarray  # (R, R) float32 0..1, learned-prd
    dst_mask: np.ndarray  # (R, R) float32 0..1, learned-dst
    xseg_prd: np.ndarray | None = None  # (R, R) float32 0..1, XSeg-prd: made only for the XSeg mask modes
    xseg_dst: np.ndarray | None = None  # (R, R) float32 0..1, XSeg-dst (see merger.xseg_masks)
    # Temporal merge (merger.temporal) only: the mask-mode mask averaged over the face's track, used instead of
    # the one of this frame's masks, and the dst face's colour statistics averaged likewise.
    blend_mask: np.ndarray | None = None  # (R, R) float32 0..1
    colour_ref: ColourStats | None = None


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
    crop = CropSpec(resolution, face_type).of(landmarks).warp(frame, cv2.INTER_CUBIC)
    return image_ops.to_float(crop)


# --- step 2: the mask in crop pixels ------------------------------------------------------------

@dataclass(frozen=True)
class CropMask:
    """The face's mask in crop pixels, at the model resolution and at subres."""

    at_resolution: np.ndarray  # (R, R) float32 0..1: colour-transfer area, raw-predict's mask
    at_subres: np.ndarray  # (R*SUBRES, R*SUBRES) float32: what is warped into the frame


def face_mask(fp: FacePrediction, cfg: MergeConfig, crops: FaceCrops) -> CropMask:
    """The mask of `cfg.mask_mode`, eroded/dilated and blurred at subres unless the mode is raw."""
    R = crops.resolution
    raw = np.asarray(fp.blend_mask, np.float32).reshape(R, R) if fp.blend_mask is not None \
        else raw_face_mask(fp, cfg.mask_mode, crops.face)
    sub = mask_ops.to_subres(raw, R)
    if cfg.mode not in RAW_MODES:
        sub = mask_ops.post_process(sub, R, cfg.erode, cfg.blur)
    at_r = cv2.resize(sub, (R, R), interpolation=cv2.INTER_CUBIC) if sub.shape[0] != R else sub
    return CropMask(np.clip(at_r, 0.0, 1.0), sub)


def raw_face_mask(fp: FacePrediction, mask_mode: str, face_crop) -> np.ndarray:
    """The mask of `mask_mode` before erode and blur, (R, R) in the model crop `face_crop`'s pixels."""
    R = face_crop.size
    hull = mask_ops.dst_hull(np.asarray(fp.landmarks, np.float64), face_crop) if mask_mode == "dst" else None
    return mask_ops.select_mask(mask_mode, np.asarray(fp.src_mask, np.float32).reshape(R, R),
                                np.asarray(fp.dst_mask, np.float32).reshape(R, R), hull, fp.xseg_prd, fp.xseg_dst)


def raw_prediction(fp: FacePrediction, mask: CropMask) -> tuple[np.ndarray, np.ndarray]:
    """raw-predict mode's output: the prediction itself and its mask (R x R, uint8)."""
    return image_ops.to_u8(_prediction(fp)), image_ops.to_u8(mask.at_resolution)


def _prediction(fp: FacePrediction) -> np.ndarray:
    return np.clip(np.asarray(fp.face, np.float32), 0.0, 1.0)


# --- step 4: the mask in the frame region ---------------------------------------------------------

def mask_in_region(mask: CropMask, crops: FaceCrops, region: FaceRegion) -> np.ndarray:
    """The subres mask warped into the region, (h, w, 1) float32 0..1 with noise zeroed."""
    m = cv2.warpAffine(mask.at_subres, region.to_region(crops.mask), region.size,
                       flags=cv2.INTER_CUBIC)
    m = np.clip(m, 0.0, 1.0)
    m[m < mask_ops.NOISE] = 0.0
    return m[..., None]


# --- step 5: the mode's blend ---------------------------------------------------------------------

@dataclass
class FaceLayer:
    """What one face leaves in its region: the region's new pixels and where they apply."""

    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the frame
    image: np.ndarray  # (h, w, 3) float32 0..1: the region as this face leaves it
    mask: np.ndarray  # (h, w, 1) float32 0..1
    degrade_background: bool  # this face asked for the frame background to be degraded


def blend_face(fp: FacePrediction, mask: CropMask, crops: FaceCrops, region: FaceRegion,
               background: np.ndarray | None, cfg: MergeConfig, motion: Motion) -> FaceLayer:
    """One face's layer in `cfg.mode` (every mode but raw-predict).

    `background` is the degraded frame (float) when the settings degrade it, else None.
    """
    mask_roi = mask_in_region(mask, crops, region)
    if cfg.mode == "original":
        return FaceLayer(region.box, region.frame.copy(), mask_roi, False)
    if cfg.mode == "raw-rgb":
        return FaceLayer(region.box, _paste_square(_prediction(fp), crops, region), mask_roi, False)
    if _too_small(mask_roi):  # leave the frame as it is
        return FaceLayer(region.box, region.frame.copy(), mask_roi, False)
    return _swap(fp, mask, crops, region, mask_roi, background, cfg, motion)


def _paste_square(prd: np.ndarray, crops: FaceCrops, region: FaceRegion) -> np.ndarray:
    """raw-rgb: the whole predicted square over the frame, ignoring the mask."""
    R = crops.resolution
    out_to_roi = region.to_region(crops.out)
    pasted = cv2.warpAffine(prd, out_to_roi, region.size, flags=cv2.INTER_CUBIC)
    alpha = cv2.warpAffine(np.ones((R, R), np.float32), out_to_roi, region.size, flags=cv2.INTER_CUBIC)
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    return np.clip(region.frame * (1.0 - alpha) + pasted * alpha, 0.0, 1.0)


def _too_small(mask_roi: np.ndarray) -> bool:
    """Less than 4 pixels across where the mask is >= 0.1."""
    big = np.argwhere(mask_roi[..., 0] >= 0.1)
    return big.size == 0 or min(np.ptp(big[:, 0]), np.ptp(big[:, 1])) < 4


def _is_seamless(cfg: MergeConfig) -> bool:
    return cfg.mode.startswith("seamless")


def _degrades_background(cfg: MergeConfig) -> bool:
    return cfg.image_denoise > 0 or cfg.bicubic_degrade > 0


@dataclass(frozen=True)
class _DstReference:
    """The dst face in the model's crop and the mask area: what colour matching compares with."""

    crop: np.ndarray  # (R, R, 3) float32
    area: np.ndarray  # (R, R) float32, 1 where the mask is > 0
    stats: ColourStats | None = None  # the crop's colour statistics averaged over time (temporal merge)


def _swap(fp: FacePrediction, mask: CropMask, crops: FaceCrops, region: FaceRegion, mask_roi: np.ndarray,
          background: np.ndarray | None, cfg: MergeConfig, motion: Motion) -> FaceLayer:
    """overlay / hist-match / seamless / seamless-hist-match: colour-match the prediction, paste it
    through the mask, then apply the post-effects."""
    dst_crop = crops.face.warp(region.whole_frame_u8, cv2.INTER_CUBIC)
    dst = _DstReference(image_ops.to_float(dst_crop), (mask.at_resolution > 0).astype(np.float32), fp.colour_ref)
    prd = _colour_before_paste(_prediction(fp), dst, cfg)
    pasted = _paste(prd, crops, region, mask_roi, _is_seamless(cfg))
    image = region.frame * (1.0 - mask_roi) + pasted * mask_roi
    if _needs_post_effects(cfg):
        image = _post_effects(image, crops, region, mask_roi, dst, background, cfg, motion)
    return FaceLayer(region.box, np.clip(image, 0.0, 1.0).astype(np.float32), mask_roi, _degrades_background(cfg))


def _colour_transfer(cfg: MergeConfig, face: np.ndarray, dst: _DstReference) -> np.ndarray:
    if cfg.color_transfer == "none":
        return face
    if dst.stats is not None and stats_name(cfg.color_transfer) is not None:
        return color_transfer_to(cfg.color_transfer, face, dst.stats, dst.area)
    return color_transfer(cfg.color_transfer, face, dst.crop, dst.area)


def _colour_before_paste(prd: np.ndarray, dst: _DstReference, cfg: MergeConfig) -> np.ndarray:
    """Colour transfer (seamless modes do it after the clone instead), then hist-match mode's matching."""
    if not _is_seamless(cfg):
        prd = _colour_transfer(cfg, prd, dst)
    if cfg.mode == "hist-match":
        prd = image_ops.hist_match(prd, dst.crop, cfg.hist_match_threshold, dst.area if cfg.masked_hist_match else None)
    return prd


def _paste(prd: np.ndarray, crops: FaceCrops, region: FaceRegion, mask_roi: np.ndarray, seamless: bool) -> np.ndarray:
    """The prediction warped over the region's frame (the frame kept outside the square), Poisson-
    cloned into it when `seamless`."""
    pasted = cv2.warpAffine(prd, region.to_region(crops.out), region.size, dst=region.frame.copy(),
                            flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
    pasted = np.clip(pasted, 0.0, 1.0)
    if seamless:
        pasted = image_ops.seamless_clone(pasted, region.frame_u8, mask_roi[..., 0])
    return pasted


def _needs_post_effects(cfg: MergeConfig) -> bool:
    """Whether the composited face is re-cropped for effects (a motion blur setting re-crops even
    when this frame's face does not move)."""
    return ((_is_seamless(cfg) and cfg.color_transfer != "none") or cfg.mode == "seamless-hist-match"
            or cfg.motion_blur > 0 or cfg.sharpen_amount != 0 or _degrades_background(cfg))


def motion_blur_kernel(cfg: MergeConfig, motion: Motion) -> int:
    """The motion blur's length in crop pixels (0: none): `motion_blur` % of the face's motion, 2..50."""
    if cfg.motion_blur <= 0 or motion.power <= 0:
        return 0
    k = int(motion.power * cfg.motion_blur / 100.0)
    return int(np.clip(k + 1, 2, 50)) if k >= 1 else 0


def _post_effects(image: np.ndarray, crops: FaceCrops, region: FaceRegion, mask_roi: np.ndarray, dst: _DstReference,
                  background: np.ndarray | None, cfg: MergeConfig, motion: Motion) -> np.ndarray:
    """Effects on the composited face, re-cropped at the model resolution, then pasted back through
    the mask onto the (denoised / degraded) background."""
    R = crops.resolution
    face = cv2.warpAffine(image, region.from_region(crops.face), (R, R), flags=cv2.INTER_CUBIC)
    if _is_seamless(cfg) and cfg.color_transfer != "none":
        face = _colour_transfer(cfg, face, dst)
    if cfg.mode == "seamless-hist-match":
        face = image_ops.hist_match(face, dst.crop, cfg.hist_match_threshold)
    kernel = motion_blur_kernel(cfg, motion)
    if kernel:
        face = image_ops.linear_motion_blur(face, kernel, motion.angle_deg)
    if cfg.sharpen_amount != 0:
        face = image_ops.blur_sharpen(face, cfg.sharpen_mode, cfg.sharpen_amount)
    bg = region.frame if background is None else region.of(background)
    pasted = cv2.warpAffine(np.clip(face, 0.0, 1.0), region.to_region(crops.face), region.size,
                            dst=bg.copy(), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
    return bg * (1.0 - mask_roi) + pasted * mask_roi


# --- the frame ------------------------------------------------------------------------------------

def compose_frame(frame: np.ndarray, faces: list[FacePrediction], cfg: MergeConfig, resolution: int,
                  face_type: FaceType, motion: Motion | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge every face of a frame: (BGR uint8 image, uint8 H x W mask of where faces went).

    `frame` is the dst frame as read (BGR uint8). Several faces are combined in order, each
    blended over the previous by its own mask; the output mask is their union. A frame with no
    faces comes back unchanged with an empty mask. In raw-predict mode the image is the first
    face's prediction (R x R), or a black R x R image when there is none.
    """
    motion = motion or Motion()
    frame_u8 = frame if frame.dtype == np.uint8 else image_ops.to_u8(frame)
    h, w = frame_u8.shape[:2]
    if cfg.mode == "raw-predict":
        if not faces:
            return np.zeros((resolution, resolution, 3), np.uint8), np.zeros((resolution, resolution), np.uint8)
        crops = face_crops(faces[0].landmarks, cfg, resolution, face_type)
        return raw_prediction(faces[0], face_mask(faces[0], cfg, crops))
    if not faces:
        return frame_u8.copy(), np.zeros((h, w), np.uint8)

    background = _degraded_background(frame_u8, cfg)
    layers = face_layers(frame_u8, background, faces, cfg, resolution, face_type, motion)
    whole_frame = cfg.color_degrade > 0 and cfg.mode not in NO_EFFECT_MODES and bool(layers)
    if not whole_frame and not any(layer.degrade_background for layer in layers):
        return _compose_in_regions(frame_u8, layers)
    return _compose_whole_frame(frame_u8, background, layers, cfg, whole_frame)


def _degraded_background(frame_u8: np.ndarray, cfg: MergeConfig) -> np.ndarray | None:
    """The frame denoised and bicubic-degraded (float), or None when the settings leave it alone."""
    if cfg.mode in NO_EFFECT_MODES or not _degrades_background(cfg):
        return None
    return image_ops.bicubic_degrade(image_ops.denoise(image_ops.to_float(frame_u8), cfg.image_denoise), cfg.bicubic_degrade)


def face_layers(frame_u8: np.ndarray, background: np.ndarray | None, faces: list[FacePrediction], cfg: MergeConfig,
                resolution: int, face_type: FaceType, motion: Motion) -> list[FaceLayer]:
    """Each face's layer, in order; faces off the frame leave none."""
    layers = []
    for fp in faces:
        crops = face_crops(fp.landmarks, cfg, resolution, face_type)
        mask = face_mask(fp, cfg, crops)
        region = face_region(frame_u8, crops)
        if region is not None:
            layers.append(blend_face(fp, mask, crops, region, background, cfg, motion))
    return layers


def _compose_whole_frame(frame_u8: np.ndarray, background: np.ndarray | None, layers: list[FaceLayer],
                         cfg: MergeConfig, colour_degrade: bool) -> tuple[np.ndarray, np.ndarray]:
    """Layers over the whole (degraded) frame in float, then the colour degrade if asked."""
    degraded = background is not None and any(layer.degrade_background for layer in layers)
    out = (background if degraded else image_ops.to_float(frame_u8)).copy()
    mask = np.zeros(frame_u8.shape[:2], np.float32)
    for i, layer in enumerate(layers):
        x0, y0, x1, y1 = layer.box
        if i == 0:  # like DFL: the first face's result is taken whole, later ones blend by their mask
            out[y0:y1, x0:x1] = layer.image
        else:
            region = out[y0:y1, x0:x1]
            out[y0:y1, x0:x1] = region * (1.0 - layer.mask) + layer.image * layer.mask
        mask[y0:y1, x0:x1] = np.minimum(1.0, mask[y0:y1, x0:x1] + layer.mask[..., 0])
    if colour_degrade:
        reduced = image_ops.reduce_colors(out, 256)
        a = cfg.color_degrade / 100.0
        out = reduced if cfg.color_degrade >= 100 else out * (1.0 - a) + reduced * a
    return image_ops.to_u8(out), image_ops.to_u8(mask)


def _compose_in_regions(frame_u8: np.ndarray, layers: list[FaceLayer]) -> tuple[np.ndarray, np.ndarray]:
    """The common case (nothing touches the whole frame): only the faces' regions are converted,
    blended and written back, so a 4K frame costs about what a 480p one does."""
    out = frame_u8.copy()
    mask = np.zeros(frame_u8.shape[:2], np.uint8)
    for i, layer in enumerate(layers):
        x0, y0, x1, y1 = layer.box
        if i == 0:
            region = layer.image
        else:
            region = image_ops.to_float(out[y0:y1, x0:x1]) * (1.0 - layer.mask) + layer.image * layer.mask
        out[y0:y1, x0:x1] = image_ops.to_u8(region)
        m = np.minimum(1.0, mask[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0) + layer.mask[..., 0])
        mask[y0:y1, x0:x1] = image_ops.to_u8(m)
    return out, mask


# --- motion between frames ------------------------------------------------------------------------

CENTRE_CROP = CropSpec(256, FaceType.FULL)  # the crop whose centre motion is measured on

def face_centre(landmarks: np.ndarray) -> np.ndarray:
    """The centre of the face's FULL crop in frame pixels: the point motion is measured on."""
    return CENTRE_CROP.of(landmarks).to_frame(np.array([128.0, 128.0]))


def motion_between(prev_lm: np.ndarray | None, cur_lm: np.ndarray, next_lm: np.ndarray | None) -> Motion:
    """The face's motion at this frame from its neighbours: the mean displacement per frame over
    the previous and next frames (either may be missing), as power (pixels) and angle."""
    return motion_of_centres(None if prev_lm is None else face_centre(prev_lm), face_centre(cur_lm),
                             None if next_lm is None else face_centre(next_lm))


def motion_of_centres(prev: np.ndarray | None, cur: np.ndarray, nxt: np.ndarray | None) -> Motion:
    """`motion_between` from the face centres (`face_centre`) already known: a sequence computes each once."""
    steps = []
    if prev is not None:
        steps.append(cur - prev)
    if nxt is not None:
        steps.append(nxt - cur)
    if not steps:
        return Motion()
    v = np.mean(steps, axis=0)
    power = float(np.hypot(v[0], v[1]))
    # Image y points down; OpenCV's rotation angle is counter-clockwise on screen.
    return Motion(power, float(-math.degrees(math.atan2(v[1], v[0]))) if power > 0 else 0.0)

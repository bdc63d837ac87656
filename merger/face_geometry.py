"""Where one face sits in a dst frame: its crops (`facelib.crop.Crop`s) and the frame region it touches.

The merger works on each face inside that region, so compositing costs do not grow with frame size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelib.crop import Crop, CropSpec
from facelib.face_type import FaceType
from merger import image_ops, mask_ops
from merger.config import MergeConfig


@dataclass(frozen=True)
class FaceCrops:
    """The three crops of one face, each computed once from its landmarks."""

    face: Crop  # the model's input crop (R x R): dst crop, colour reference, post-effects
    out: Crop  # where the prediction is pasted (R x R), scaled by output_face_scale
    mask: Crop  # the mask's crop at subres (R * SUBRES), scaled like `out`

    @property
    def resolution(self) -> int:
        """R, the model's resolution."""
        return self.face.size


def crop_specs(cfg: MergeConfig, resolution: int, face_type: FaceType) -> tuple[CropSpec, CropSpec, CropSpec]:
    """The model's input crop, the output crop and the mask's subres crop, as FaceCrops holds them."""
    scale = 1.0 + 0.01 * cfg.output_face_scale
    return (CropSpec(resolution, face_type), CropSpec(resolution, face_type, scale),
            CropSpec(resolution * mask_ops.SUBRES, face_type, scale))


def face_crops(landmarks: np.ndarray, cfg: MergeConfig, resolution: int, face_type: FaceType) -> FaceCrops:
    lm = np.asarray(landmarks, np.float64)
    face, out, mask = crop_specs(cfg, resolution, face_type)
    return FaceCrops(face.of(lm), out.of(lm), mask.of(lm))


@dataclass(frozen=True)
class FaceRegion:
    """The frame box (x0, y0, x1, y1) one face touches, and the frame inside it."""

    box: tuple[int, int, int, int]
    whole_frame_u8: np.ndarray  # (H, W, 3) uint8: the whole frame, for crops that may reach past the box
    frame: np.ndarray  # (h, w, 3) float32 0..1: the frame inside the box

    @property
    def frame_u8(self) -> np.ndarray:
        """The frame inside the box, uint8 (a view)."""
        return self.of(self.whole_frame_u8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as OpenCV's warps take it."""
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0

    def to_region(self, crop: Crop) -> np.ndarray:
        """The crop -> region matrix: the crop's inverse shifted to land in this region."""
        m = crop.inverse
        m[0, 2] -= self.box[0]
        m[1, 2] -= self.box[1]
        return m

    def from_region(self, crop: Crop) -> np.ndarray:
        """The region -> crop matrix: the crop's matrix reading from this region."""
        m = np.array(crop.mat, np.float64)
        m[:, 2] += m[:, :2] @ np.array(self.box[:2], np.float64)
        return m

    def of(self, image: np.ndarray) -> np.ndarray:
        """This region of a whole-frame image."""
        x0, y0, x1, y1 = self.box
        return image[y0:y1, x0:x1]


def face_region(frame_u8: np.ndarray, crops: FaceCrops, margin: int = 2) -> FaceRegion | None:
    """The frame box covering the input and output crop squares, clipped to the frame; None when
    less than 2 pixels of it are on the frame."""
    h, w = frame_u8.shape[:2]
    pts = np.concatenate([crops.face.frame_corners(), crops.out.frame_corners()])
    x0 = max(0, int(math.floor(pts[:, 0].min())) - margin)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - margin)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + margin)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return FaceRegion((x0, y0, x1, y1), frame_u8, image_ops.to_float(frame_u8[y0:y1, x0:x1]))

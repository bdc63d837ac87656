"""Where one face sits in a dst frame: its crops (frame -> crop matrices) and the frame region it touches.

The merger works on each face inside that region, so compositing costs do not grow with frame size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelib.align import transform_points
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from merger import image_ops, mask_ops
from merger.config import MergeConfig


@dataclass(frozen=True)
class FaceCrops:
    """Frame -> crop matrices of one face."""

    resolution: int
    face_mat: np.ndarray  # the model's input crop (R x R): dst crop, colour reference, post-effects
    out_mat: np.ndarray  # where the prediction is pasted (R x R), scaled by output_face_scale
    mask_mat: np.ndarray  # the mask's crop at subres (R * SUBRES), scaled like out_mat


def crop_specs(cfg: MergeConfig, resolution: int, face_type: FaceType) -> tuple[CropSpec, CropSpec, CropSpec]:
    """The model's input crop, the output crop and the mask's subres crop, as FaceCrops holds them."""
    scale = 1.0 + 0.01 * cfg.output_face_scale
    return (CropSpec(resolution, face_type), CropSpec(resolution, face_type, scale),
            CropSpec(resolution * mask_ops.SUBRES, face_type, scale))


def face_crops(landmarks: np.ndarray, cfg: MergeConfig, resolution: int, face_type: FaceType) -> FaceCrops:
    lm = np.asarray(landmarks, np.float64)
    face, out, mask = crop_specs(cfg, resolution, face_type)
    return FaceCrops(resolution, face.matrix(lm), out.matrix(lm), mask.matrix(lm))


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

    def to_region(self, mat_crop_to_frame: np.ndarray) -> np.ndarray:
        """A crop->frame matrix shifted to land in this region."""
        m = np.array(mat_crop_to_frame, np.float64)
        m[0, 2] -= self.box[0]
        m[1, 2] -= self.box[1]
        return m

    def from_region(self, mat_frame_to_crop: np.ndarray) -> np.ndarray:
        """A frame->crop matrix that reads from this region."""
        m = np.array(mat_frame_to_crop, np.float64)
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
    R = crops.resolution
    square = np.array([(0, 0), (R, 0), (R, R), (0, R)], np.float64)
    pts = np.concatenate([transform_points(square, mat, invert=True) for mat in (crops.face_mat, crops.out_mat)])
    x0 = max(0, int(math.floor(pts[:, 0].min())) - margin)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - margin)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + margin)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return FaceRegion((x0, y0, x1, y1), frame_u8, image_ops.to_float(frame_u8[y0:y1, x0:x1]))

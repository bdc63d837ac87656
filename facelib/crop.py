"""A crop as one value: `CropSpec` says "a `size` x `size` crop of type `face_type`, zoomed by `scale`";
`Crop` is that spec placed on one face (its frame -> crop matrix), computed once and passed along.

The geometry itself is `facelib.align.align`; these types only carry its result and apply it. This
module is the only caller of `align`: everything else asks a CropSpec for its crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelib.align import align, invert_affine, transform_points
from facelib.face_type import FaceType


@dataclass(frozen=True)
class CropSpec:
    """A crop of `size` pixels of face type `face_type`; `scale` > 1 zooms in (the crop covers less)."""

    size: int
    face_type: FaceType
    scale: float = 1.0

    def matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """The 2x3 frame -> crop matrix for a face with these 68 landmarks (frame pixels)."""
        return align(landmarks, self.size, self.face_type, self.scale)

    def of(self, landmarks: np.ndarray) -> Crop:
        """This crop placed on the face with these landmarks."""
        return Crop(self, self.matrix(landmarks))

    def to_face(self, landmarks: np.ndarray) -> np.ndarray:
        """The face's own landmarks in this crop's pixels."""
        return self.of(landmarks).to_face(landmarks)


@dataclass(frozen=True, eq=False)
class Crop:
    """One face's crop: the spec and its frame -> crop matrix (2x3, float64)."""

    spec: CropSpec
    mat: np.ndarray

    @property
    def size(self) -> int:
        return self.spec.size

    @property
    def face_type(self) -> FaceType:
        return self.spec.face_type

    @property
    def inverse(self) -> np.ndarray:
        """The crop -> frame matrix."""
        return invert_affine(self.mat)

    @property
    def pixel_scale(self) -> float:
        """Crop pixels per frame pixel (the matrix's linear scale)."""
        return float(np.sqrt(abs(np.linalg.det(self.mat[:, :2]))))

    def warp(self, image: np.ndarray, flags: int = cv2.INTER_LANCZOS4,
             border_mode: int = cv2.BORDER_CONSTANT) -> np.ndarray:
        """The `size` x `size` crop of a frame (or of any image in frame pixels, e.g. a mask)."""
        return cv2.warpAffine(image, self.mat, (self.size, self.size), flags=flags, borderMode=border_mode)

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels -> crop pixels (Nx2 points or one (x, y))."""
        return transform_points(points, self.mat)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels -> frame pixels (Nx2 points or one (x, y))."""
        return transform_points(points, self.mat, invert=True)

    def frame_corners(self) -> np.ndarray:
        """The crop square's corners in frame pixels (4x2: top-left, top-right, bottom-right, bottom-left)."""
        s = float(self.size)
        return self.to_frame(np.array([(0.0, 0.0), (s, 0.0), (s, s), (0.0, s)]))


RECT_CROP = CropSpec(256, FaceType.FULL_NO_ALIGN)  # the upright square a face's rect is taken from


def landmarks_to_rect(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """An upright face rect (l, t, r, b) in frame pixels: the full_face_no_align crop square.

    DFL's `get_rect_from_landmarks` takes the same square but stops one output pixel short (at
    255 of 256); this returns the whole square.
    """
    size = float(RECT_CROP.size)
    (l, t), (r, b) = RECT_CROP.of(landmarks).to_frame(np.array([(0.0, 0.0), (size, size)]))
    return float(l), float(t), float(r), float(b)

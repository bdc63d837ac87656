"""68-point iBUG landmarks with dlib's shape predictor, from any detector's box.

dlib's predictor was trained on boxes from dlib's HOG detector: square, tight around brows to lip,
and it is sensitive to where the box sits (its first guess is the mean shape placed in the box).
Other detectors draw their boxes elsewhere (CenterFace's are taller, reaching forehead and chin),
so each detector's box is first mapped to the HOG convention by a small fitted transform:

    centre_x' = cx + (dx + dx_turn * turn) * w    centre_y' = cy + dy * h    side' = kw * w + kh * h

with (w, h) the detector box size and `turn` the nose tip's horizontal offset from the eyes'
midpoint in box widths, from the detector's five keypoints when it has them (0 otherwise): HOG's
box slides sideways with a turned head, CenterFace's stays centred on the head. The constants were
fitted by least squares on the photos in tests/data (faces, johns, dlib_faces), pairing each
CenterFace box with the HOG box of the same face; `bench/detector_accuracy.py` refits them and
prints the landmark error with and without the fit.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from facelib import model_files
from facelib.detected_face import DetectedFace
from facelib.rotation import rotate_image, rotate_points, rotate_rect, unrotate_points

Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class BoxFit:
    """Maps a detector's box to the square dlib-HOG box of the same face (see module docstring)."""

    dx: float = 0.0
    dy: float = 0.0
    kw: float = 1.0
    kh: float = 0.0
    dx_turn: float = 0.0

    def apply(self, rect: Rect, keypoints: np.ndarray | None = None) -> Rect:
        l, t, r, b = rect
        w, h = r - l, b - t
        shift = self.dx + self.dx_turn * head_turn(rect, keypoints)
        cx, cy = (l + r) / 2.0 + shift * w, (t + b) / 2.0 + self.dy * h
        half = (self.kw * w + self.kh * h) / 2.0
        return (cx - half, cy - half, cx + half, cy + half)


def head_turn(rect: Rect, keypoints: np.ndarray | None) -> float:
    """Nose tip's x offset from the eyes' midpoint, in box widths (0 without keypoints)."""
    if keypoints is None:
        return 0.0
    return float((keypoints[2, 0] - (keypoints[0, 0] + keypoints[1, 0]) / 2.0) / max(rect[2] - rect[0], 1e-6))


IDENTITY = BoxFit()

# Fitted by bench/detector_accuracy.py on the 103 faces of tests/data that both detectors find.
# Landmark error of predictor(CenterFace box) against predictor(HOG box), mean / p90 of the
# inter-ocular distance: raw box 5.4% / 8.5%, fit without the turn term 4.0% / 4.6%, this fit
# 2.4% / 3.8% (two-fold cross-validated).
BOX_FITS: dict[str, BoxFit] = {
    "dlib-hog": IDENTITY,
    "centerface": BoxFit(dx=-0.0095, dy=0.0256, kw=0.672, kh=0.293, dx_turn=1.091),
}


def landmarks(image_bgr: np.ndarray, face: DetectedFace, fit_box: bool = True) -> np.ndarray:
    """68 iBUG landmarks (68x2 float, frame pixels) for a detected face.

    When the detector needed the frame turned (`face.rotation`), the predictor sees the frame turned
    the same way, because it only works on upright faces; the points are mapped back afterwards.
    `fit_box=False` feeds the detector's box unchanged (for measuring what the fit is worth).
    """
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB if image_bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
    upright = rotate_image(rgb, face.rotation)
    rect = rotate_rect(face.rect, face.rotation, rgb.shape)
    if fit_box:
        keypoints = None
        if face.keypoints is not None:
            keypoints = rotate_points(face.keypoints, face.rotation, rgb.shape)
        rect = BOX_FITS.get(face.detector, IDENTITY).apply(rect, keypoints)
    points = _predict(upright, rect)
    return unrotate_points(points, face.rotation, rgb.shape)


def landmarks_from_box(image_bgr: np.ndarray, rect: Rect) -> np.ndarray:
    """68 landmarks from a box already in the HOG convention (manual boxes, benchmarks)."""
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB if image_bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
    return _predict(rgb, rect)


def _predict(rgb: np.ndarray, rect: Rect) -> np.ndarray:
    import dlib

    l, t, r, b = (int(round(v)) for v in rect)
    # our rects are right/bottom exclusive; dlib's are inclusive
    shape = _shape_predictor()(rgb, dlib.rectangle(l, t, r - 1, b - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


@functools.cache
def _shape_predictor():
    import dlib  # deferred: loaded once per process on first use

    return dlib.shape_predictor(str(model_files.shape_predictor_68()))


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the two eye centres (means of points 36-41 and 42-47): the usual normaliser."""
    return float(np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0)))

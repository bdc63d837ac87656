"""Head pose (pitch, yaw, roll) from 68 iBUG landmarks: solvePnP against a generic 3D face.

Why a 3D fit rather than a 2D heuristic: sorting and "best faces" need yaw and pitch on one scale
whatever the face's size, position or in-plane tilt, and a rigid fit separates the three angles.

The model below is a hand-made average adult face in millimetres, only rigid points (brows, eye
corners, nose, mouth corners, chin); the jaw contour is left out because a landmarker puts it on the
visible silhouette, which slides around the head as it turns. Axes as OpenCV's camera: x to the
image's right, y down, z away from the camera (so the nose tip has the smallest z).

Sign conventions (radians):
- yaw > 0: the face turns towards the image's right (the nose points right in the picture);
- pitch > 0: the face looks up (the nose points towards the top of the picture);
- roll > 0: the face is tilted clockwise in the picture (its left-to-right eye line goes down).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

# iBUG index -> (x, y, z) in mm; the origin is between the eyes. x and y are the average frontal
# landmark layout (90 mm between the outer eye corners); the depths are an average adult's.
_MODEL_POINTS: dict[int, tuple[float, float, float]] = {
    17: (-60.0, -9.0, 20.0), 19: (-39.0, -23.5, 4.0), 21: (-13.0, -18.0, -4.0),    # brow, image left
    22: (13.0, -18.0, -4.0), 24: (39.0, -23.5, 4.0), 26: (60.0, -9.0, 20.0),       # brow, image right
    27: (0.0, -4.0, -6.0), 28: (0.0, 9.0, -12.0), 29: (0.0, 22.0, -20.0),           # nose bridge
    30: (0.0, 35.5, -30.0), 31: (-16.5, 43.5, -10.0), 33: (0.0, 48.0, -18.0),       # tip, nostrils
    35: (16.5, 43.5, -10.0),
    36: (-45.0, 0.0, 10.0), 39: (-20.0, 0.5, 0.0),                                  # eye corners
    42: (20.0, 0.5, 0.0), 45: (45.0, 0.0, 10.0),
    48: (-32.0, 68.0, 2.0), 51: (0.0, 62.0, -14.0), 54: (32.0, 68.0, 2.0),          # mouth
    57: (0.0, 86.0, -11.0),
    8: (0.0, 124.0, -2.0),                                                           # chin
}
MODEL_INDICES = np.array(sorted(_MODEL_POINTS), dtype=np.int64)
MODEL_3D = np.array([_MODEL_POINTS[i] for i in MODEL_INDICES], dtype=np.float64)


def estimate_pose(landmarks: np.ndarray, image_size: float | None = None) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in radians of a face, from its 68 landmarks in any pixel frame.

    The camera is a pinhole centred on the landmarks with a focal length of `image_size` (the aligned
    face's width, as DFL does), or four times the landmarks' extent when not given; the angles hardly
    depend on it, since a face is shallow compared with its distance.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"pose needs 68x2 landmarks, got {lm.shape}")
    pts = lm[MODEL_INDICES]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float(max(hi - lo))
    if not extent > 0:
        raise ValueError("cannot estimate pose: the landmarks are all at one point")
    focal = float(image_size) if image_size else 4.0 * extent
    cx, cy = (lo + hi) / 2.0
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    # Start from a frontal face at a plausible distance so the solver never lands on the mirror solution.
    distance = focal * 130.0 / extent
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [-20.0], [distance]])
    ok, rvec, _tvec = cv2.solvePnP(MODEL_3D, pts, camera, None, rvec0, tvec0, useExtrinsicGuess=True,
                                   flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP found no head pose for these landmarks")
    rot, _ = cv2.Rodrigues(rvec)
    return angles_from_rotation(rot)


def angles_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) of a model-to-camera rotation, with this module's sign conventions."""
    forward = -rot[:, 2]  # where the nose points (model -z), in camera axes
    yaw = math.atan2(forward[0], -forward[2])
    pitch = math.atan2(-forward[1], math.hypot(forward[0], forward[2]))
    roll = math.atan2(rot[1, 0], rot[0, 0])
    return pitch, yaw, roll

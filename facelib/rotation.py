"""Quarter-turn rotations of frames and the mapping of points back to the unrotated frame.

Detectors and landmark models only see upright faces, so (like DFL) extraction retries a frame
turned by 90, 270 and 180 degrees. Both the detector runtime and the landmark step need the same
two operations, so they live here once.

Coordinates are continuous pixel coordinates: a W-wide frame spans x in [0, W].
"""
from __future__ import annotations

import cv2
import numpy as np

ROTATIONS = (0, 90, 270, 180)  # DFL's search order
_CV2_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """The image turned clockwise by `degrees` (0, 90, 180 or 270)."""
    if degrees % 360 == 0:
        return image
    return cv2.rotate(image, _CV2_CODES[degrees % 360])


def rotate_points(points: np.ndarray, degrees: int, shape: tuple[int, ...]) -> np.ndarray:
    """Points of an unrotated frame of `shape` (h, w, ...) moved into the frame turned by `degrees`."""
    h, w = shape[:2]
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    d = degrees % 360
    if d == 0:
        out = np.stack([x, y], axis=1)
    elif d == 90:
        out = np.stack([h - y, x], axis=1)
    elif d == 180:
        out = np.stack([w - x, h - y], axis=1)
    elif d == 270:
        out = np.stack([y, w - x], axis=1)
    else:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {degrees}")
    return out


def unrotate_points(points: np.ndarray, degrees: int, shape: tuple[int, ...]) -> np.ndarray:
    """Points found in a frame turned by `degrees`, moved back to the unrotated frame of `shape`."""
    d = degrees % 360
    if d == 0:
        return np.asarray(points, dtype=np.float64).reshape(-1, 2).copy()
    # Turning back by (360 - d) undoes the turn; its frame is the rotated one, whose shape swaps
    # height and width for quarter turns.
    h, w = shape[:2]
    rotated_shape = (w, h) if d in (90, 270) else (h, w)
    return rotate_points(points, 360 - d, rotated_shape)


def rotate_rect(rect: tuple[float, float, float, float], degrees: int,
                shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """An axis-aligned rect of the unrotated frame as the axis-aligned rect in the turned frame."""
    return _bounds(rotate_points(_corners(rect), degrees, shape))


def unrotate_rect(rect: tuple[float, float, float, float], degrees: int,
                  shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """An axis-aligned rect of the turned frame mapped back to the unrotated frame of `shape`."""
    return _bounds(unrotate_points(_corners(rect), degrees, shape))


def _corners(rect: tuple[float, float, float, float]) -> np.ndarray:
    l, t, r, b = rect
    return np.array([[l, t], [r, b]], dtype=np.float64)


def _bounds(pts: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))

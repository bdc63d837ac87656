"""Is this detection a face? A second opinion on a detector's box, from the 68-point fit.

Why: a detector fires now and then on things that are not faces (a wheel hub, a patterned shirt,
a dog); every such "face" lands in the faceset, where it ruins training until someone deletes it by
hand. The 68-point predictor always returns a face-shaped set of points, even on a wall, so the
shape alone says little; what it does give is WHERE the eyes, nose and mouth should be. The check
therefore looks at the pixels through the fit:

- `appearance`: the face is cut out upright through the landmark alignment (the same similarity fit
  to DFL's mean face that every crop uses), and dlib's HOG face model scores that crop. On a real
  face the crop is a textbook frontal-to-three-quarter face and scores high; on a false detection
  the crop shows whatever was there and scores low.
- `shape`: the distance of the fitted brows, eyes, nose and mouth corners to the mean face after the
  similarity fit (in mean-face widths); a fit that had to bend far from any face shape is suspect.

`score` folds both into one number, higher = more face-like, with 0 as the default threshold (the
break-even point measured by bench/detector_accuracy.py on tests/data faces against the non-face
images it lists). The HOG model loads on first use, once per process.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from facelib.align import FIT_INDICES, MEAN_FACE_UNIT, umeyama

DEFAULT_THRESHOLD = -0.5
OFF = -3.0  # a threshold at or below this switches the check off (no detection scores lower)
CHIP = 120  # side of the upright chip HOG scores: the mean face's unit square is the middle 60%
_PAD = 0.35  # margin around the unit square, in unit-square sides (HOG wants some context)
SHAPE_WEIGHT = 4.0  # score points per mean-face width of shape distance


def shape_distance(points68: np.ndarray) -> float:
    """RMS distance, in mean-face widths, of the fitted points to DFL's mean face after the best
    similarity transform (0 for the mean face itself; real faces ~0.03-0.08, turned heads more)."""
    pts = np.asarray(points68, dtype=np.float64)[FIT_INDICES]
    mat = umeyama(pts, MEAN_FACE_UNIT)
    fitted = pts @ mat[:2, :2].T + mat[:2, 2]
    return float(np.sqrt(((fitted - MEAN_FACE_UNIT) ** 2).sum(axis=1).mean()))


def upright_chip(image_bgr: np.ndarray, points68: np.ndarray, size: int = CHIP) -> np.ndarray:
    """The face cut out upright at `size` px through the mean-face fit (grey, uint8)."""
    pts = np.asarray(points68, dtype=np.float64)[FIT_INDICES]
    inner = size / (1.0 + 2 * _PAD)
    target = (MEAN_FACE_UNIT * inner) + _PAD * inner
    mat = umeyama(pts, target)[:2]
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.warpAffine(grey, mat, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def appearance(image_bgr: np.ndarray, points68: np.ndarray) -> float:
    """dlib HOG's best face score on the upright chip (about -1.5 for no face, > 0 for a clear one)."""
    chip = upright_chip(image_bgr, points68)
    _rects, scores, _kinds = _hog().run(chip, 0, -3.0)
    return float(max(scores)) if len(scores) else -3.0


def score(image_bgr: np.ndarray, points68: np.ndarray) -> float:
    """One face-likeness number (see module docstring): appearance minus a shape penalty."""
    return appearance(image_bgr, points68) - SHAPE_WEIGHT * max(0.0, shape_distance(points68) - 0.08)


def is_plausible(image_bgr: np.ndarray, points68: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> bool:
    return score(image_bgr, points68) >= threshold


@functools.cache
def _hog():
    import dlib  # deferred: loaded once per process on first use

    return dlib.get_frontal_face_detector()

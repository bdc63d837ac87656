"""Face masks from an aligned face's metadata: the landmark hull, eye and mouth regions, XSeg polygons.

Training clips its losses to the face mask and weights the eyes and mouth, as DFL's
training does, so these follow DFL's shapes: a hull whose eyebrows are pushed up to take in the forehead,
and eye/mouth regions dilated by h/32 and feathered by h/16. All masks are float32 H x W in 0..1,
in the pixels of the aligned face the landmarks belong to.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # facelib sits below faceset: the type is only named here
    from faceset.meta import FaceMeta

_SHIFT = 4  # fixed-point bits for sub-pixel polygon filling
_ONE = 1 << _SHIFT

# 68-point iBUG indices
JAW = np.arange(0, 17)
RIGHT_BROW, LEFT_BROW = np.arange(17, 22), np.arange(22, 27)  # the face's right = image left
NOSE = np.arange(27, 36)
RIGHT_EYE, LEFT_EYE = np.arange(36, 42), np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
CHIN = 8


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"masks need 68x2 landmarks, got {lm.shape}")
    return lm


def raise_eyebrows(landmarks: np.ndarray, eyebrows_expand_mod: float = 1.0) -> np.ndarray:
    """The landmarks with each eyebrow point moved away from the eye below it by half their distance
    (times `eyebrows_expand_mod`), so a hull through them reaches up onto the forehead."""
    lm = _check_landmarks(landmarks).copy()
    # Under each brow: its outer end pairs with a point a quarter of the way from the eye corner
    # towards the jaw's top, the other four with the eye corner and the upper lid.
    right_under = np.array([0.75 * lm[36] + 0.25 * lm[0], lm[36], lm[37], lm[38], lm[39]])
    left_under = np.array([lm[42], lm[43], lm[44], lm[45], 0.75 * lm[45] + 0.25 * lm[16]])
    k = 0.5 * float(eyebrows_expand_mod)
    lm[RIGHT_BROW] += k * (lm[RIGHT_BROW] - right_under)
    lm[LEFT_BROW] += k * (lm[LEFT_BROW] - left_under)
    return lm


def _fill_hull(mask: np.ndarray, points: np.ndarray) -> None:
    pts = np.rint(np.asarray(points, np.float64) * _ONE).astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1.0, lineType=cv2.LINE_8, shift=_SHIFT)


def hull_mask(shape_hw: tuple[int, int], landmarks: np.ndarray, eyebrows_expand_mod: float = 1.0) -> np.ndarray:
    """1 inside the face (jaw, raised eyebrows, forehead strip), 0 elsewhere.

    A union of convex parts rather than one convex hull: each half of the jaw with its brow, and the
    middle of the brows with the nose and chin, so a turned face does not bridge the background
    beyond the nose or under a jaw that curves inwards.
    """
    lm = raise_eyebrows(landmarks, eyebrows_expand_mod)
    h, w = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((h, w), np.float32)
    parts = (
        np.r_[JAW[:9], RIGHT_BROW, 27],  # right jaw half up to the right brow and the nose bridge
        np.r_[JAW[8:], LEFT_BROW, 27],  # left jaw half
        np.r_[RIGHT_BROW[2:], LEFT_BROW[:3], NOSE, CHIN],  # middle: inner brows, nose, chin
    )
    for idx in parts:
        _fill_hull(mask, lm[idx])
    return mask


def _region_mask(shape_hw: tuple[int, int], landmarks: np.ndarray, groups: tuple[np.ndarray, ...]) -> np.ndarray:
    """Filled hulls of landmark groups, dilated by h/32 and feathered by h/16 (DFL's eye/mouth masks)."""
    lm = _check_landmarks(landmarks)
    h, w = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((h, w), np.float32)
    for idx in groups:
        _fill_hull(mask, lm[idx])
    grow = h // 32
    if grow > 1:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    blur = h // 16
    if blur > 1:
        blur += 1 - blur % 2  # odd kernel
        mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    return np.clip(mask, 0.0, 1.0, out=mask)


def eyes_mask(shape_hw: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Both eyes (points 36-47), slightly grown and feathered."""
    return _region_mask(shape_hw, landmarks, (RIGHT_EYE, LEFT_EYE))


def eyes_mouth_mask(shape_hw: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Both eyes and the mouth (outer lips, points 48-59): where eyes_mouth_prio puts its weight."""
    return _region_mask(shape_hw, landmarks, (RIGHT_EYE, LEFT_EYE, OUTER_LIPS))


def polygons_mask(shape_hw: tuple[int, int], seg_ie_polys: list[dict]) -> np.ndarray:
    """XSeg label polygons: include polygons filled with 1, then exclude polygons cut out (DFL's order)."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((h, w), np.float32)
    for kind in (1, 0):
        polys = [np.rint(np.asarray(p["pts"], np.float64).reshape(-1, 2) * _ONE).astype(np.int32)
                 for p in seg_ie_polys if int(p["type"]) == kind and len(p["pts"]) >= 3]
        if polys:
            cv2.fillPoly(mask, polys, float(kind), lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def has_include_polygon(seg_ie_polys: list[dict] | None) -> bool:
    return bool(seg_ie_polys) and any(int(p["type"]) == 1 and len(p["pts"]) >= 3 for p in seg_ie_polys)


def face_mask(shape_hw: tuple[int, int], meta: FaceMeta) -> np.ndarray:
    """The training mask of a face: its baked XSeg mask (resized) when it has one, else its label
    polygons when they include something, else the landmark hull."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    if meta.xseg_mask is not None:
        mask = meta.xseg_mask
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(mask.astype(np.float32), 0.0, 1.0)
    if has_include_polygon(meta.seg_ie_polys):
        return polygons_mask((h, w), meta.seg_ie_polys)
    return hull_mask((h, w), meta.landmarks, meta.eyebrows_expand_mod)

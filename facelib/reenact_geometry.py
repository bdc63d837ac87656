"""Landmark geometry for reenactment: finding the landmarks of aligned crops, carrying one person's
expression onto another's face shape, and measuring how well a rendered face follows its driver.

Everything works in the pixels of aligned crops (facelib.crop), where head position, roll and scale
are already taken out by the alignment, so the remaining landmark differences are face shape,
expression and out-of-plane turn.
"""
from __future__ import annotations

import functools

import numpy as np

from facelib.align import FIT_INDICES, MEAN_FACE_UNIT, transform_points
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from facelib.landmarks import inter_ocular, landmarks_from_box
from facelib.masks import hull_mask

_REF_OFFSET = 200.0  # where the reference face sits in its made-up frame (any place works)


@functools.lru_cache(maxsize=32)
def crop_box(size: int, face_type: FaceType) -> tuple[float, float, float, float]:
    """The landmarker's box (the full_face_no_align square, as `evaluate` uses) of an average face in a
    `size` px crop of `face_type`: every aligned crop puts the face there, so no detector is needed."""
    lm = np.zeros((68, 2))
    lm[FIT_INDICES] = MEAN_FACE_UNIT * 100.0 + _REF_OFFSET  # align reads only these points (HEAD: yaw 0)
    lm[np.setdiff1d(np.arange(68), FIT_INDICES)] = lm[FIT_INDICES].mean(axis=0)
    to_crop = CropSpec(int(size), face_type).matrix(lm)
    corners = transform_points(CropSpec(256, FaceType.FULL_NO_ALIGN).of(lm).frame_corners(), to_crop)
    return (float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()),
            float(corners[:, 1].max()))


def crop_landmarks(faces: np.ndarray, face_type: FaceType) -> np.ndarray:
    """(N, R, R, 3) aligned BGR crops (float 0..1 or uint8) -> (N, 68, 2) float32 landmarks in crop
    pixels, from dlib's predictor in the box where alignment puts the face (about 4 ms a face)."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.shape[1] != faces.shape[2]:
        raise ValueError(f"faces must be (N, R, R, 3), got {faces.shape}")
    if faces.dtype != np.uint8:
        faces = (np.clip(faces, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    box = crop_box(faces.shape[1], face_type)
    return np.array([landmarks_from_box(np.ascontiguousarray(f), box) for f in faces], np.float32).reshape(-1, 68, 2)


def retarget(driving: np.ndarray, driving_mean: np.ndarray, target_mean: np.ndarray) -> np.ndarray:
    """The target person's face shape making the driver's expression and turn: the driver's offset from
    its own average shape, added to the target's average shape (all in the same aligned crop pixels).
    Averages are per faceset, so a driver with a longer nose does not lengthen the target's."""
    driving = np.asarray(driving, np.float32)
    return (np.asarray(target_mean, np.float32) + (driving - np.asarray(driving_mean, np.float32))).astype(np.float32)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Gap between the inner lips (points 61-63 and 67-65) in eye distances, per face: 0 closed."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    gap = np.linalg.norm(lm[:, [61, 62, 63]] - lm[:, [67, 66, 65]], axis=2).mean(axis=1)
    return (gap / np.maximum([inter_ocular(p) for p in lm], 1e-6)).astype(np.float32)


def expression_error(rendered: np.ndarray, driving: np.ndarray) -> float:
    """How far a rendered face sequence's landmark motion is from its driver's, in eye distances.

    Both (F, 68, 2) in the same crop pixels; each sequence's own average shape is taken out first, so a
    different face shape (the target's proportions) costs nothing and only expression and turn count.
    Needs at least two frames (NaN otherwise)."""
    r, d = np.asarray(rendered, np.float64), np.asarray(driving, np.float64)
    if r.shape != d.shape or r.ndim != 3 or r.shape[1:] != (68, 2):
        raise ValueError(f"need two (F, 68, 2) arrays, got {r.shape} and {d.shape}")
    if len(r) < 2:
        return float("nan")
    diff = (r - r.mean(axis=0)) - (d - d.mean(axis=0))
    return float(np.linalg.norm(diff, axis=2).mean() / max(inter_ocular(d.mean(axis=0)), 1e-6))


def hull_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) -> (N, size, size) float32: facelib.masks.hull_mask of each set (the merger's learned
    masks for Reenact: the face it drew is where its driving landmarks are)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    out = np.zeros((len(lm), size, size), np.float32)
    for k, pts in enumerate(lm):
        if np.isfinite(pts).all():
            out[k] = hull_mask((size, size), np.clip(pts, -size, 2 * size))
    return out

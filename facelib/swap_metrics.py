"""Numbers for a face swap that DFL users otherwise judge by eye: identity, landmark and pose
agreement, and temporal jitter of the face region.
"""
from __future__ import annotations

import numpy as np

from facelib.landmarks import inter_ocular


def identity_similarity(embeddings: np.ndarray, reference: np.ndarray) -> float:
    """1 - mean face-embedding distance (dlib's 128-d space: distances under 0.6 are the same person,
    so a similarity above 0.4 means "looks like the reference")."""
    embeddings = np.atleast_2d(embeddings)
    reference = np.atleast_2d(reference)
    if len(reference) == 1:
        dists = np.linalg.norm(embeddings - reference[0], axis=1)
    else:  # pairwise: embedding i against reference i
        dists = np.linalg.norm(embeddings - reference, axis=1)
    return float(1.0 - dists.mean())


def landmark_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between two 68-point sets, as a fraction of b's inter-ocular distance."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=1).mean() / max(inter_ocular(b), 1e-6))


def crop_jitter(crops: list[np.ndarray]) -> float:
    """Mean absolute change (8-bit levels) between consecutive aligned face crops: the flicker and
    shake a viewer sees in the face region once the head's own motion is aligned away."""
    if len(crops) < 2:
        return 0.0
    stack = np.asarray(crops, np.float32)
    return float(np.abs(np.diff(stack, axis=0)).mean())

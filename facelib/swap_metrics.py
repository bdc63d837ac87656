"""Numbers for a face swap that DFL users otherwise judge by eye: identity, landmark and pose
agreement, and temporal jitter of the face region.
"""
from __future__ import annotations

import cv2
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


def landmark_jitter(points: np.ndarray) -> float:
    """High-pass landmark jitter of a face through consecutive frames, as a fraction of its inter-ocular
    distance: the RMS second temporal difference of the (T, 68, 2) points over sqrt(6). Smooth motion (a
    steady pan or zoom) has none; independent per-frame noise of standard deviation s gives s, so the figure
    reads as "the points shake by this much". NaN for fewer than 3 frames."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        return float("nan")
    acc = pts[2:] - 2.0 * pts[1:-1] + pts[:-2]
    iod = float(np.mean([inter_ocular(p) for p in pts]))
    return float(np.sqrt((acc ** 2).sum(axis=-1).mean() / 6.0) / max(iod, 1e-6))


def frame_motion(prev_gray: np.ndarray, cur_gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The similarity (2x3) that moves the content of `box` (l, t, r, b) in `prev_gray` onto `cur_gray`:
    KLT optical flow on corners inside the box, fitted with RANSAC. None when too few points track."""
    h, w = prev_gray.shape[:2]
    l, t, r, b = (int(round(v)) for v in box)
    l, t, r, b = max(0, l), max(0, t), min(w, r), min(h, b)
    if r - l < 8 or b - t < 8:
        return None
    roi = np.zeros_like(prev_gray, np.uint8)
    roi[t:b, l:r] = 255
    pts = cv2.goodFeaturesToTrack(prev_gray, 200, 0.01, max(3, (r - l) // 30), mask=roi)
    if pts is None or len(pts) < 6:
        return None
    nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev_gray, cur_gray, pts, None, winSize=(21, 21), maxLevel=3)
    ok = ok.reshape(-1).astype(bool)
    if ok.sum() < 6:
        return None
    mat, _ = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    return mat


def mask_edge_flicker(masks: list[np.ndarray], motions: list[np.ndarray | None]) -> float:
    """Frame-to-frame change of a merged mask near its edge, motion compensated: for each frame t >= 1 the
    previous mask is moved by `motions[t]` (frame t-1 -> t pixels, e.g. `frame_motion` of the dst frames;
    None: not compared), and the mean |mask_t - moved mask_t-1| (0..1) is taken over a band around both
    masks' edges (a twentieth of the face's size wide; a soft mask's edge at half its peak). What a viewer
    sees as a crawling blend edge; 0 for a mask that moves exactly with the face. NaN when no pair could be
    compared."""
    values = []
    for t in range(1, len(masks)):
        if motions[t] is None:
            continue
        cur = _as_unit(masks[t])
        prev = cv2.warpAffine(_as_unit(masks[t - 1]), np.asarray(motions[t], np.float64), cur.shape[::-1],
                              flags=cv2.INTER_LINEAR)
        # a soft mask (an early learned one that never reaches 0.5) is measured against its peak: its edge is
        # where it falls to half of that, and the change is scaled back to the mask's own values
        peak = max(float(cur.max()), float(prev.max()))
        if peak <= 0.02:
            continue
        scale = min(1.0, peak)
        cur, prev = cur / scale, prev / scale
        inside = (cur > 0.5) | (prev > 0.5)
        area = int(inside.sum())
        if area == 0:
            continue
        k = max(3, int(round(0.05 * np.sqrt(area))) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        band = np.zeros(cur.shape, bool)
        for m in (cur, prev):
            b = (m > 0.5).astype(np.uint8)
            band |= cv2.morphologyEx(b, cv2.MORPH_GRADIENT, kernel).astype(bool)
        band |= ((cur > 0.02) & (cur < 0.98)) | ((prev > 0.02) & (prev < 0.98))  # the feathered edge itself
        values.append(scale * float(np.abs(cur - prev)[band].mean()))
    return float(np.mean(values)) if values else float("nan")


def _as_unit(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)

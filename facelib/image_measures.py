"""Per-image quality and colour measures of an aligned face, for ordering a faceset (`sort`).

Pure image algorithms: an image and its landmarks in, numbers out; no files, no faceset, no CLI.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facelib.masks import hull_mask


def sharpness(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Edge-width sharpness in the spirit of CPBD (Narvekar & Karam 2011): the share of edges too
    narrow for blur to be noticed. 0 = all edges blurred, 1 = all sharp.

    For each Canny edge pixel whose gradient is mostly horizontal, the edge width is the run of
    strictly monotonic pixels through it along the row; the "just noticeable blur" width is 5 px for
    low-contrast edges and 3 px otherwise, and an edge counts as sharp while its probability of
    noticeable blur 1 - exp(-(w / w_jnb)^3.6) stays under 63%.
    """
    g = grey.astype(np.float32)
    edges = cv2.Canny(grey, 50, 150) > 0
    if mask is not None:
        edges &= cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    rows, cols = np.nonzero(edges & (np.abs(gx) >= np.abs(gy)) & (gx != 0))
    if rows.size == 0:
        return 0.0
    sign = np.sign(gx[rows, cols])
    w = g.shape[1]
    right = cols.copy()
    left = cols.copy()
    for step, ends in ((1, right), (-1, left)):
        active = np.ones(rows.size, bool)
        for _ in range(32):
            nxt = ends + step
            ok = active & (nxt >= 0) & (nxt < w)
            idx = np.nonzero(ok)[0]
            diff = (g[rows[idx], nxt[idx]] - g[rows[idx], ends[idx]]) * step * sign[idx]
            moving = idx[diff > 0]
            ends[moving] += step
            active[:] = False
            active[moving] = True
            if not moving.size:
                break
    width = (right - left).astype(np.float32)
    contrast = np.abs(g[rows, right] - g[rows, left])
    w_jnb = np.where(contrast <= 50, 5.0, 3.0)
    p_blur = 1.0 - np.exp(-np.power(width / w_jnb, 3.6))
    return float(np.mean(p_blur <= 0.63))


def _normalised_hist(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    h = cv2.calcHist([img], [0], mask, [256], [0, 256]).reshape(-1).astype(np.float64)
    total = h.sum()
    return (h / total if total > 0 else np.full(256, 1.0 / 256)).astype(np.float32)


def compute_features(image: np.ndarray, landmarks: np.ndarray, eyebrows_expand_mod: float,
                     wanted: tuple[str, ...]) -> dict[str, Any]:
    """The measures `wanted` of one face image, inside the landmark hull where the background would
    only add noise: sharpness, laplacian_var, hist_grey_hull; over the whole image: hist_bgr,
    hsv_mean, black (pixel count), small (16x16 thumbnail for absdiff: DFL compares full images on
    the GPU; on the CPU a thumbnail keeps an N x N comparison affordable)."""
    out: dict[str, Any] = {}
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mask = (hull_mask(image.shape[:2], landmarks, eyebrows_expand_mod) > 0.5).astype(np.uint8)
    if "sharpness" in wanted:
        out["sharpness"] = sharpness(grey, mask)
    if "laplacian_var" in wanted:
        lap = cv2.Laplacian(grey, cv2.CV_64F, ksize=11)
        out["laplacian_var"] = float(lap[mask > 0].var()) if mask.any() else float(lap.var())
    if "hist_bgr" in wanted:
        out["hist_bgr"] = np.stack([_normalised_hist(image[:, :, c], None) for c in range(3)])
    if "hist_grey_hull" in wanted:
        out["hist_grey_hull"] = _normalised_hist(grey, mask)
    if "hsv_mean" in wanted:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        out["hsv_mean"] = hsv.reshape(-1, 3).mean(axis=0).astype(np.float64)
    if "black" in wanted:
        out["black"] = int(np.count_nonzero(image.max(axis=2) <= 2))  # JPEG leaves 1-2 in flat black
    if "small" in wanted:
        out["small"] = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
    return out

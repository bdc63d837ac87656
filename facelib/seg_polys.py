"""XSeg label polygons: checks that catch labels the mask cannot use, and small list helpers.

Labels are `FaceMeta.seg_ie_polys`, DFL's layout: a list of {"type": 1 include | 0 exclude,
"pts": float32 Nx2 in the aligned face's pixels}. A polygon with fewer than 3 points, one that
crosses itself, one of zero area, or one far outside the face (labels drawn on a face of another
size, e.g. before a resize that did not scale them) rasterises to a wrong mask without any error,
so every reader (editor, fetch, apply, the XSeg trainer) asks `label_problems` first and names the
face and the problem instead of training on a silently wrong target.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from facelib.align import transform_points

INCLUDE, EXCLUDE = 1, 0
KIND_NAMES = {INCLUDE: "include", EXCLUDE: "exclude"}
MAX_POINTS = 5000  # DFL's editor makes tens to hundreds; the crossing test is quadratic
OUTSIDE_MARGIN = 0.5  # points may lie this fraction of the face size beyond its edges (DFL lets you
# click past the border so that a mask reaches it); farther means the label belongs to another size
_CHUNK = 512  # edges per block of the pairwise crossing test (bounds its memory to ~N*512 values)


def polygon_problem(pts: np.ndarray, size: int | None = None) -> str | None:
    """Why this polygon makes no usable mask, or None when it is fine.

    `size` is the side of the (square) face in pixels; without it the bounds are not checked.
    """
    p = np.asarray(pts, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        return f"has points of shape {p.shape} (expected Nx2)"
    n = len(p)
    if n < 3:
        return f"has {n} point{'' if n == 1 else 's'} (a polygon needs 3)"
    if n > MAX_POINTS:
        return f"has {n} points (at most {MAX_POINTS})"
    if not np.isfinite(p).all():
        return "has points that are not finite numbers"
    if size is not None and _outside(p, int(size)):
        return f"lies outside the {int(size)} px face (labels made on a face of another size?)"
    if _crosses_itself(p):
        return "crosses itself"
    if abs(_area(p)) < 1e-6:
        return "has zero area (its points lie on one line)"
    return None


def label_problems(polys: Sequence[dict[str, Any]] | None, size: int | None) -> list[str]:
    """One line per bad polygon of a face's labels, e.g. "polygon 2 (exclude) crosses itself"."""
    out = []
    for i, poly in enumerate(polys or (), start=1):
        kind = KIND_NAMES.get(int(poly["type"]), f"type {poly['type']}")
        problem = polygon_problem(poly["pts"], size)
        if problem is not None:
            out.append(f"label polygon {i} ({kind}) {problem}")
    return out


def count_labels(polys: Sequence[dict[str, Any]] | None) -> tuple[int, int]:
    """(include, exclude) polygon counts."""
    kinds = [int(p["type"]) for p in polys or ()]
    return kinds.count(INCLUDE), kinds.count(EXCLUDE)


def has_labels(polys: Sequence[dict[str, Any]] | None) -> bool:
    """True when the face carries at least one polygon with points (DFL: an 'XSeg labelled' face)."""
    return any(len(p["pts"]) > 0 for p in polys or ())


def transform_polys(polys: Sequence[dict[str, Any]], mat: np.ndarray) -> list[dict[str, Any]]:
    """The polygons after the face pixels went through the 2x3 matrix `mat` (resize, re-crop)."""
    return [{"type": int(p["type"]),
             "pts": transform_points(p["pts"], mat).astype(np.float32) if len(p["pts"])
             else np.zeros((0, 2), np.float32)}
            for p in polys]


def scale_polys(polys: Sequence[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """The polygons of a face resized by `factor`, pixel centres matched as cv2.resize matches them."""
    f = float(factor)
    return transform_polys(polys, np.array([[f, 0.0, (f - 1.0) / 2.0], [0.0, f, (f - 1.0) / 2.0]]))


def _outside(p: np.ndarray, size: int) -> bool:
    """Beyond the margin around the face, or not touching the face at all."""
    lo, hi = -OUTSIDE_MARGIN * size, (1.0 + OUTSIDE_MARGIN) * size
    if (p < lo).any() or (p > hi).any():
        return True
    mins, maxs = p.min(axis=0), p.max(axis=0)
    return bool((maxs < 0).any() or (mins > size - 1).any())


def _area(p: np.ndarray) -> float:
    """Signed area (shoelace), on points moved near the origin to keep precision."""
    q = p - p.mean(axis=0)
    x, y = q[:, 0], q[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sign of the turn a -> b -> c (broadcast over leading axes): >0 left, <0 right, 0 collinear."""
    return np.sign((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


def _crosses_itself(p: np.ndarray) -> bool:
    """True when two non-adjacent edges of the closed polygon cross properly (each edge's ends lie
    strictly on both sides of the other). Touching at a point or running along each other is not
    counted: it rasterises to the intended shape."""
    n = len(p)
    if n < 4:
        return False  # a triangle's edges are all adjacent
    a = p - p.mean(axis=0)
    b = np.roll(a, -1, axis=0)  # edge i runs a[i] -> b[i]
    idx = np.arange(n)
    for start in range(0, n, _CHUNK):
        i = idx[start:start + _CHUNK, None]  # block of edges against all edges
        ai, bi = a[start:start + _CHUNK, None, :], b[start:start + _CHUNK, None, :]
        aj, bj = a[None, :, :], b[None, :, :]
        d1, d2 = _orient(aj, bj, ai), _orient(aj, bj, bi)
        d3, d4 = _orient(ai, bi, aj), _orient(ai, bi, bj)
        gap = np.abs(i - idx[None, :])
        apart = (gap > 1) & (gap < n - 1)  # not the same edge, not neighbours (the last and first are)
        if ((d1 * d2 < 0) & (d3 * d4 < 0) & apart).any():
            return True
    return False

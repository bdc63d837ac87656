"""The training preview image, as DFL's trainer draws it: help lines, a loss graph,
and rows of S | SS | D | DD | SD (plain and masked).
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

HELP_LINES = ("[s]:save [b]:backup [enter]:exit", "[p]:update [space]:next preview [l]:change history range")
GRAPH_HEIGHT = 100
GRAPH_RANGES = (0, 5000, 10000, 50000, 100000)  # 0 = the whole history
MAX_PREVIEW_HEIGHT = 800
COLUMNS = ("S", "SS", "D", "DD", "SD")


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def preview_rows(src: np.ndarray, dst: np.ndarray, out: dict[str, np.ndarray], src_mask: np.ndarray,
                 dst_mask: np.ndarray, masked: bool) -> np.ndarray:
    """One row per sample: src, src->src, dst, dst->dst, src->dst; float inputs in 0..1."""
    n = min(len(src), len(dst))
    cols = [src[:n], out["SS"][:n], dst[:n], out["DD"][:n], out["SD"][:n]]
    if masked:
        masks = [src_mask[:n], out["SSm"][:n], dst_mask[:n], out["DDm"][:n], out["SDm"][:n]]
        cols = [c * m for c, m in zip(cols, masks)]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(n)]
    return to_u8(np.concatenate(rows, axis=0))


def loss_graph(history: np.ndarray, width: int, range_its: int = 0, height: int = GRAPH_HEIGHT) -> np.ndarray:
    """Per-column min..max bands of each loss over the history (or its last `range_its`), grid lines and
    the iteration count; y scaled to twice the mean of the last 80% so early spikes do not flatten it."""
    img = np.full((height, width, 3), 32, np.uint8)
    total = len(history)
    if range_its:
        history = history[-range_its:]
    if len(history):
        start = int(len(history) * 0.2)
        top = max(float(np.nanmean(history[start:])) * 2.0, 1e-6)
        k = history.shape[1]
        colors = [tuple(int(c * 255) for c in colorsys.hsv_to_rgb(i / max(k, 1) * 0.6, 0.8, 1.0))[::-1] for i in range(k)]
        edges = np.linspace(0, len(history), min(width, len(history)) + 1).astype(int)
        xs = np.linspace(0, width - 1, len(edges) - 1).astype(int)
        for j in range(len(edges) - 1):
            chunk = history[edges[j]: max(edges[j + 1], edges[j] + 1)]
            for i in range(k):
                lo, hi = np.nanmin(chunk[:, i]), np.nanmax(chunk[:, i])
                y0 = int((1 - min(hi / top, 1.0)) * (height - 1))
                y1 = int((1 - min(lo / top, 1.0)) * (height - 1))
                cv2.line(img, (int(xs[j]), y0), (int(xs[j]), y1), colors[i], 1)
    for i in range(1, 5):
        y = height * i // 5
        img[y, ::4] = (80, 80, 80)
    cv2.putText(img, f"Iter: {total}", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
    return img


def header(width: int, lines: list[str]) -> np.ndarray:
    line_h = 15
    img = np.full((line_h * len(lines) + 4, width, 3), 16, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(img, text, (4, line_h * (i + 1) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
    return img


def compose_window(preview: np.ndarray, title: str, history: np.ndarray, range_its: int) -> np.ndarray:
    """Help lines, the loss graph and the preview (scaled to at most 800 px high) in one image."""
    if preview.shape[0] > MAX_PREVIEW_HEIGHT:
        scale = MAX_PREVIEW_HEIGHT / preview.shape[0]
        preview = cv2.resize(preview, (int(preview.shape[1] * scale), MAX_PREVIEW_HEIGHT), interpolation=cv2.INTER_AREA)
    width = max(preview.shape[1], 420)
    if preview.shape[1] < width:
        preview = np.pad(preview, ((0, 0), (0, width - preview.shape[1]), (0, 0)))
    return np.concatenate([header(width, [*HELP_LINES, title]), loss_graph(history, width, range_its), preview], axis=0)

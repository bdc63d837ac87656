"""68 iBUG landmarks drawn as a line drawing, one channel per part of the face.

Reenact renders a face from such a drawing: separate channels for the jaw, brows, nose, eyes and
lips let the network tell an open mouth from a raised brow without untangling crossing lines, and a
line drawing (rather than dots) keeps the shape readable at 64 px.
"""
from __future__ import annotations

import cv2
import numpy as np

# (channel, polylines as iBUG index ranges, closed?) -- channel order: jaw, brows, nose, eyes, lips
PARTS: tuple[tuple[int, range, bool], ...] = (
    (0, range(0, 17), False),  # jaw line
    (1, range(17, 22), False),  # right brow (image left)
    (1, range(22, 27), False),  # left brow
    (2, range(27, 31), False),  # nose bridge
    (2, range(30, 36), True),  # nose base, closed through the tip
    (3, range(36, 42), True),  # right eye
    (3, range(42, 48), True),  # left eye
    (4, range(48, 60), True),  # outer lips
    (4, range(60, 68), True),  # inner lips: the mouth's opening
)
CHANNELS = 5
CHANNEL_NAMES = ("jaw", "brows", "nose", "eyes", "lips")
_SHIFT = 4  # cv2 fixed-point bits: lines are placed to 1/16 px, so small moves still change the drawing


def line_width(size: int) -> int:
    """Lines one pixel wide per 64 px of drawing (at least one)."""
    return max(1, int(size) // 64)


def draw_sketch(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(68, 2) landmarks in the pixels of a `size` x `size` crop -> (size, size, CHANNELS) float32 0..1."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"a sketch needs 68x2 landmarks, got {lm.shape}")
    size = int(size)
    out = np.zeros((CHANNELS, size, size), np.uint8)
    if not np.isfinite(lm).all():
        return out.transpose(1, 2, 0).astype(np.float32)  # nothing to draw: a blank drawing, never a crash
    # points far outside the crop are clipped so the fixed-point coordinates cannot overflow
    pts = np.rint(np.clip(lm, -4 * size, 5 * size) * (1 << _SHIFT)).astype(np.int32)
    width = line_width(size)
    for channel, idx, closed in PARTS:
        cv2.polylines(out[channel], [pts[list(idx)].reshape(-1, 1, 2)], closed, 255, width, cv2.LINE_AA, _SHIFT)
    return (out.transpose(1, 2, 0).astype(np.float32) / np.float32(255.0))


def sketch_batch(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) -> (N, size, size, CHANNELS) float32."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    if not len(lm):
        return np.zeros((0, size, size, CHANNELS), np.float32)
    return np.stack([draw_sketch(p, size) for p in lm])


def sketch_preview(sketch: np.ndarray) -> np.ndarray:
    """(..., H, W, CHANNELS) drawing -> (..., H, W, 3) BGR for the preview: each part its own colour."""
    colours = np.array([[0.8, 0.8, 0.8], [0.2, 0.8, 1.0], [1.0, 0.6, 0.2], [0.3, 1.0, 0.3], [0.4, 0.4, 1.0]],
                       np.float32)  # BGR: jaw grey, brows yellow, nose blue, eyes green, lips red
    return np.clip(np.asarray(sketch, np.float32) @ colours, 0.0, 1.0)

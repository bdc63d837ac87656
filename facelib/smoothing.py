"""Landmark smoothing across video frames: `extract --smooth-landmarks`.

Why: per-frame landmarks jitter by a few pixels from frame to frame (the predictor sees slightly
different pixels every frame); aligned faces then shake, and so does the swapped face in the merged
video. The extractor runs detection and landmarks over all frames first, so this smoother is
OFFLINE: it sees the whole sequence, which lets it smooth without lag.

Two steps:

1. **Tracks.** Faces are linked frame to frame by their landmark boxes: the face nearest (in face
   sizes) to where a track's face is predicted to be (last centre + last velocity), with a similar
   size, continues that track. A frame where a track has no face ends it (a cut, an occlusion, a
   missed detection: smoothing across it would blend two different situations), and an unmatched
   face starts a new track. Matching is one-to-one (Hungarian on the centre distance), so two
   crossing faces keep their tracks as long as their predicted paths do.

2. **Filter, per track.** Each frame's 68 points are split into a similarity transform (centre,
   log scale, rotation) of the track's mean shape and a residual shape in the face's own frame
   (expression, pose). Both are smoothed with a forward-backward One-Euro filter: One-Euro
   (Casiez et al. 2012) lowers its cut-off frequency when the face is still and raises it with
   speed, so it smooths a still face strongly and a moving one little; run forwards its output
   lags, run backwards it leads by the same amount, and the average of the two cancels the lag on
   steady motion. Speeds are in face sizes per frame, so the same parameters work at any frame or
   face size. Why the transform split: the rigid motion is where the big, fast movement is, and it
   is 4 numbers measured from all 68 points at once, while the residual is small and slow, so each
   gets its own speed: a head moving fast does not switch off the smoothing of a still
   expression. `bench/landmark_accuracy.py` compares this with filtering the raw points.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SmoothingParams:
    """One-Euro settings, in frames and face sizes (frame-size independent).

    `min_cutoff`: cut-off (cycles per frame) for a still face; lower is smoother.
    `beta`: how fast the cut-off rises with speed (speed in face sizes per frame).
    `d_cutoff`: cut-off for the speed estimate itself.
    """

    min_cutoff: float = 0.01
    beta: float = 10.0
    d_cutoff: float = 0.1
    residual_min_cutoff: float = 0.01
    residual_beta: float = 10.0
    # Chosen by bench/landmark_accuracy.py (15 clips, 5 photos x slow/fast/jump, H.264 crf 23):
    # error 2.15% -> 1.76% of the inter-ocular distance, jitter 3.72% -> 1.62%, no lag. A stronger
    # residual setting (0.005, 5) measured 1.71% / 1.48%, but the synthetic clips have no expression
    # change, so it would be flattered there and lag real mouths and blinks; this one is a hedge.


DEFAULT_PARAMS = SmoothingParams()

# Tracking: a face continues a track when its centre is within this many face sizes of the
# prediction and its size is within this ratio of the track's last size.
MAX_JUMP = 1.0
MAX_SIZE_RATIO = 1.6


@dataclass
class Track:
    """One face followed through consecutive frames: (frame index, index in that frame, points)."""

    frames: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)

    def predicted_centre(self) -> np.ndarray:
        c = _centre(self.points[-1])
        if len(self.points) >= 2:
            c = c + (c - _centre(self.points[-2]))
        return c


def smooth_sequence(frames: list[list[np.ndarray]],
                    params: SmoothingParams = DEFAULT_PARAMS) -> list[list[np.ndarray]]:
    """Smoothed landmarks, same structure as the input: per frame (video order), per face, 68x2."""
    out = [[np.asarray(p, dtype=np.float64).copy() for p in faces] for faces in frames]
    for track in build_tracks(frames):
        smoothed = smooth_track(np.stack(track.points), params)
        for f, slot, pts in zip(track.frames, track.slots, smoothed):
            out[f][slot] = pts
    return out


def build_tracks(frames: list[list[np.ndarray]]) -> list[Track]:
    """Link faces across consecutive frames (see module docstring); every face is in one track."""
    from scipy.optimize import linear_sum_assignment

    done: list[Track] = []
    active: list[Track] = []
    for f, faces in enumerate(frames):
        faces = [np.asarray(p, dtype=np.float64) for p in faces]
        matched: dict[int, Track] = {}
        if active and faces:
            cost = np.full((len(active), len(faces)), np.inf)
            for i, track in enumerate(active):
                pred, size = track.predicted_centre(), _size(track.points[-1])
                for j, pts in enumerate(faces):
                    ratio = _size(pts) / size
                    jump = np.linalg.norm(_centre(pts) - pred) / size
                    if jump <= MAX_JUMP and 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
                        cost[i, j] = jump + abs(np.log(ratio))
            finite = np.where(np.isfinite(cost), cost, 1e6)
            for i, j in zip(*linear_sum_assignment(finite)):
                if np.isfinite(cost[i, j]):
                    matched[j] = active[i]
        next_active = []
        for j, pts in enumerate(faces):
            track = matched.get(j) or Track()
            track.frames.append(f)
            track.slots.append(j)
            track.points.append(pts)
            next_active.append(track)
        done += [t for t in active if t not in next_active]
        active = next_active
    return done + active


def smooth_track(points: np.ndarray, params: SmoothingParams = DEFAULT_PARAMS) -> np.ndarray:
    """Smoothed (T, 68, 2) landmarks of one track: similarity + residual, forward-backward One-Euro."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return points.copy()
    mean_shape = _mean_shape(points)
    centre, log_scale, angle, residual = _decompose(points, mean_shape)
    size = float(np.exp(log_scale).mean())  # face size in pixels: speeds become face sizes/frame
    # rigid parameters in face-size units so one speed measure covers them all
    rigid = np.column_stack([centre / size, log_scale, np.unwrap(angle)])
    rigid = forward_backward(rigid, params.min_cutoff, params.beta, params.d_cutoff)
    residual = forward_backward(residual.reshape(len(points), -1), params.residual_min_cutoff,
                                params.residual_beta, params.d_cutoff, points.shape[1]).reshape(residual.shape)
    return _compose(rigid[:, :2] * size, rigid[:, 2], rigid[:, 3], residual, mean_shape)


def smooth_points(points: np.ndarray, params: SmoothingParams = DEFAULT_PARAMS) -> np.ndarray:
    """The plain alternative, kept for the benchmark: forward-backward One-Euro on the raw points,
    one cut-off per frame for all points (from the face's mean speed), units in face sizes."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return points.copy()
    size = float(np.mean([_size(p) for p in points]))
    flat = points.reshape(len(points), -1) / size
    return forward_backward(flat, params.min_cutoff, params.beta, params.d_cutoff,
                            points.shape[1]).reshape(points.shape) * size


def forward_backward(x: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float,
                     points: int = 1) -> np.ndarray:
    """Mean of a One-Euro pass forwards and one backwards over (T, D) samples: lags cancel."""
    fwd = one_euro(x, min_cutoff, beta, d_cutoff, points)
    bwd = one_euro(x[::-1], min_cutoff, beta, d_cutoff, points)[::-1]
    return (fwd + bwd) / 2.0


def one_euro(x: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float, points: int = 1) -> np.ndarray:
    """One-Euro filter over (T, D) samples one frame apart, one adaptive cut-off per frame.

    The speed is the RMS over `points` of the (low-passed) velocity vector, so all components of a
    face are filtered alike (its shape is not distorted) and the speed of 68 points is that of a
    typical point, not sqrt(68) times the noise of one.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros(x.shape[1])
    a_d = _alpha(d_cutoff)
    for t in range(1, len(x)):
        dx = a_d * (x[t] - out[t - 1]) + (1 - a_d) * dx
        speed = float(np.linalg.norm(dx)) / np.sqrt(points)
        a = _alpha(min_cutoff + beta * speed)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def _alpha(cutoff: float) -> float:
    """Exponential smoothing factor for a cut-off frequency in cycles per frame."""
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau)


def _centre(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return (lo + hi) / 2.0


def _size(points: np.ndarray) -> float:
    """Face size in pixels: geometric mean of the landmark box's sides."""
    w, h = points.max(axis=0) - points.min(axis=0)
    return float(np.sqrt(max(w, 1e-6) * max(h, 1e-6)))


def _mean_shape(points: np.ndarray) -> np.ndarray:
    """Centred, unit-RMS, upright mean of the track's shapes (one Procrustes pass)."""
    ref = points[0] - points[0].mean(axis=0)
    ref /= np.sqrt((ref ** 2).sum(axis=1).mean())
    acc = np.zeros_like(ref)
    for p in points:
        c, s, a = _similarity(p, ref)
        acc += _apply_inverse(p, c, s, a)
    acc -= acc.mean(axis=0)
    return acc / np.sqrt((acc ** 2).sum(axis=1).mean())


def _similarity(points: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centre, scale, angle) with points ~= centre + scale * R(angle) @ ref (least squares)."""
    c = points.mean(axis=0)
    p = points - c
    a = (p * ref).sum()
    b = (ref[:, 0] * p[:, 1] - ref[:, 1] * p[:, 0]).sum()
    denom = (ref ** 2).sum()
    return c, float(np.hypot(a, b) / denom), float(np.arctan2(b, a))


def _apply_inverse(points: np.ndarray, c: np.ndarray, s: float, a: float) -> np.ndarray:
    ca, sa = np.cos(a), np.sin(a)
    rot_inv = np.array([[ca, sa], [-sa, ca]])
    return (points - c) @ rot_inv.T / s


def _decompose(points: np.ndarray, ref: np.ndarray):
    centres, log_scales, angles, residuals = [], [], [], []
    for p in points:
        c, s, a = _similarity(p, ref)
        centres.append(c)
        log_scales.append(np.log(s))
        angles.append(a)
        residuals.append(_apply_inverse(p, c, s, a) - ref)
    return np.array(centres), np.array(log_scales), np.array(angles), np.array(residuals)


def _compose(centres: np.ndarray, log_scales: np.ndarray, angles: np.ndarray, residuals: np.ndarray,
             ref: np.ndarray) -> np.ndarray:
    """Inverse of `_decompose`: points = centre + scale * R(angle) @ (ref + residual)."""
    out = np.empty((len(centres),) + ref.shape)
    for t, (c, ls, a, r) in enumerate(zip(centres, log_scales, angles, residuals)):
        ca, sa = np.cos(a), np.sin(a)
        out[t] = c + np.exp(ls) * (ref + r) @ np.array([[ca, -sa], [sa, ca]]).T
    return out

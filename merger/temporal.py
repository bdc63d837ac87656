"""Temporal merge (`merge --temporal N`): stabilise each tracked dst face over time so the swapped face neither
shakes nor flickers.

Why: the merger works frame by frame, so three per-frame measurements reach the output as noise: the
landmarks (the crop that pastes the face back moves with their jitter: the face shakes), the masks (the blend
edge crawls) and the dst crop's colour statistics (the transferred colour pumps). Along a face's track
(`extract` writes a track id into each dst face; a cut or a gap in the frame numbers ends a run, see
`track_runs`) all three are averaged over the `N` frames on each side:

1. **Crop transform** (`smooth_landmarks`, a pre-pass over the whole run, before any prediction): each
   frame's 68 points are split into a similarity (centre, log scale, rotation) of the run's mean shape and a
   residual shape; both are smoothed by a centred local-linear fit (`smooth_series`). Centred, because merging
   is offline and sees every frame: zero phase, so no lag; local-linear, so a steady pan or zoom passes
   exactly, even at a run's first and last frames. Every crop (the model's input, the paste, the mask) comes
   from these landmarks, so the face moves smoothly and its crops are motion-compensated.
2. **Blend mask** (`stabilise`): the mask-mode mask (learned, XSeg, hull: after they are combined, before
   erode and blur) of each neighbour, in its own crop (the face already aligned by step 1), averaged.
3. **Colour statistics** (`stabilise`): rct's / lct's / mkl's statistics of the dst crop, averaged; the
   predicted face keeps its own, so the result takes the averaged dst colour whatever the prediction does.
   Distribution modes (idt, sot, mix) and the hist-match modes stay per frame.

Steps 2 and 3 need the neighbours' predictions: the batch merger holds each frame back until the model has
predicted `N` frames past it (`merger.pipeline.stabilised_batches`); the window predicts them on demand.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from core.color_transfer import ColourStats, average_stats, image_stats, stats_mask, stats_name
from facelib.crop import CropSpec
from facelib.tracks import frame_numbers
from merger import image_ops
from merger.compose import FacePrediction, face_centre, motion_of_centres, raw_face_mask
from merger.config import MergeConfig
from merger.frames import FrameInfo

FaceKey = tuple[int, int]  # (frame index, face index in that frame)


# --- the runs of a track ----------------------------------------------------------------------------

def track_runs(infos: Sequence[FrameInfo]) -> list[list[FaceKey]]:
    """Runs of one face through consecutive frames: faces with the same track id in neighbouring frames,
    in order. A frame without that track's face, a gap in the frame numbers (missing files) or a track
    id twice in one frame ends a run; faces without a track id are in none. Runs of one face are left out."""
    numbers = frame_numbers([i.path for i in infos])
    runs: list[list[FaceKey]] = []
    open_runs: dict[int, list[FaceKey]] = {}
    for k, info in enumerate(infos):
        ids = [info.track_id(j) for j in range(len(info.landmarks))]
        follows = k > 0 and (numbers is None or numbers[k] - numbers[k - 1] == 1)
        now: dict[int, list[FaceKey]] = {}
        for j, tid in enumerate(ids):
            if tid is None or ids.count(tid) > 1:
                continue
            run = open_runs.get(tid) if follows else None
            if run is None:
                run = []
                runs.append(run)
            run.append((k, j))
            now[tid] = run
        open_runs = now
    return [r for r in runs if len(r) > 1]


def run_index(runs: list[list[FaceKey]]) -> dict[FaceKey, tuple[list[FaceKey], int]]:
    """Each tracked face's run and its position in it."""
    return {key: (run, p) for run in runs for p, key in enumerate(run)}


def window(run: list[FaceKey], pos: int, radius: int) -> list[tuple[FaceKey, float]]:
    """The faces of `run` within `radius` of position `pos`, with their (triangular) weights."""
    lo, hi = max(0, pos - radius), min(len(run), pos + radius + 1)
    return [(run[p], 1.0 - abs(p - pos) / (radius + 1.0)) for p in range(lo, hi)]


# --- step 1: smoothing a series without lag ------------------------------------------------------------

def smooth_series(x: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """(T, D) samples smoothed by a centred, triangular-weighted local-linear fit over `radius` samples on each
    side (one radius for all, or one per sample; 0 leaves that sample alone). Symmetric where the window fits,
    so there is no lag; the linear term keeps a constant or a ramp exactly, also at the ends."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(len(x), -1)
    radii = [int(radius)] * len(x) if np.isscalar(radius) else [int(r) for r in radius]
    out = flat.copy()
    for t, r in enumerate(radii):
        if r <= 0:
            continue
        lo, hi = max(0, t - r), min(len(x), t + r + 1)
        d = np.arange(lo, hi, dtype=np.float64) - t
        w = 1.0 - np.abs(d) / (r + 1.0)
        s0, s1, s2 = w.sum(), (w * d).sum(), (w * d * d).sum()
        x0, x1 = w @ flat[lo:hi], (w * d) @ flat[lo:hi]
        det = s0 * s2 - s1 * s1
        out[t] = (s2 * x0 - s1 * x1) / det if det > 1e-9 else x0 / s0
    return out.reshape(x.shape)


def smooth_track_points(points: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """(T, 68, 2) landmarks of one run, smoothed as a similarity (centre, log scale, unwrapped angle) of the
    run's mean shape plus a residual shape, each by `smooth_series`: a turning head is smoothed as a turn,
    not as points cutting the corner."""
    pts = np.asarray(points, np.float64)
    z = pts[..., 0] + 1j * pts[..., 1]  # (T, 68) complex
    centre = z.mean(axis=1, keepdims=True)
    q = z - centre
    ref = q[0] / np.sqrt((np.abs(q[0]) ** 2).mean())
    for _ in range(2):  # Procrustes mean: align every shape to the reference, average, normalise
        a = (np.conj(ref) * q).sum(axis=1, keepdims=True) / (np.abs(ref) ** 2).sum()
        mean = (q / a).mean(axis=0)
        mean -= mean.mean()
        ref = mean / np.sqrt((np.abs(mean) ** 2).mean())
    a = ((np.conj(ref) * q).sum(axis=1) / (np.abs(ref) ** 2).sum())  # (T,): scale * e^(i angle)
    residual = q / a[:, None] - ref
    params = np.column_stack([centre.real[:, 0], centre.imag[:, 0], np.log(np.abs(a)), np.unwrap(np.angle(a))])
    params = smooth_series(params, radius)
    res = smooth_series(np.concatenate([residual.real, residual.imag], axis=1), radius)
    residual = res[:, :ref.size] + 1j * res[:, ref.size:]
    a = np.exp(params[:, 2] + 1j * params[:, 3])
    z = (params[:, 0] + 1j * params[:, 1])[:, None] + a[:, None] * (ref + residual)
    return np.stack([z.real, z.imag], axis=-1)


def smooth_landmarks(infos: Sequence[FrameInfo], radius_of: Callable[[int], int],
                     runs: list[list[FaceKey]] | None = None) -> list[FrameInfo]:
    """Copies of `infos` whose tracked faces have smoothed landmarks (frame k's with radius_of(k)), and the
    motion (for motion blur) of the smoothed faces. Untracked faces and radius-0 frames are unchanged."""
    runs = track_runs(infos) if runs is None else runs
    out = [dataclasses.replace(i, landmarks=list(i.landmarks)) for i in infos]
    for run in runs:
        radii = [max(0, int(radius_of(k))) for k, _ in run]
        if not any(radii):
            continue
        smoothed = smooth_track_points(np.stack([infos[k].landmarks[j] for k, j in run]), radii)
        for (k, j), pts, r in zip(run, smoothed, radii):
            if r > 0:
                out[k].landmarks[j] = pts
    if all(len(i.landmarks) <= 1 for i in out):  # as merger.frames.set_motion: one face per frame only
        centres = [face_centre(i.landmarks[0]) if i.landmarks else None for i in out]
        for k, info in enumerate(out):
            if centres[k] is not None:
                info.motion = motion_of_centres(centres[k - 1] if k > 0 else None, centres[k],
                                                centres[k + 1] if k + 1 < len(out) else None)
    return out


# --- steps 2 and 3: masks and colour statistics ----------------------------------------------------------

@dataclass(frozen=True)
class FaceSample:
    """What one frame's face lends its neighbours: its mask-mode mask and its dst crop's colour statistics
    (None when the colour mode has no statistics form)."""

    mask: np.ndarray  # (R, R) float32 0..1, in its own model crop
    ref: ColourStats | None


def face_sample(frame: np.ndarray, fp: FacePrediction, cfg: MergeConfig, spec: CropSpec) -> FaceSample:
    """`fp`'s sample under `cfg` (its mask mode and colour transfer), taken as merger.compose takes them."""
    crop = spec.of(np.asarray(fp.landmarks, np.float64))
    mask = raw_face_mask(fp, cfg.mask_mode, crop)
    ref = None
    if stats_name(cfg.color_transfer) is not None:
        dst = image_ops.to_float(crop.warp(frame, cv2.INTER_CUBIC))
        ref = image_stats(cfg.color_transfer, dst, stats_mask(cfg.color_transfer, (mask > 0).astype(np.float32)))
    return FaceSample(mask, ref)


def stabilise(fp: FacePrediction, samples: list[tuple[FaceSample, float]]) -> FacePrediction:
    """`fp` with its blend mask and colour reference averaged over its neighbours' samples (with weights)."""
    if len(samples) < 2:
        return fp
    w = np.array([wt for _, wt in samples], np.float64)
    w /= w.sum()
    mask = sum(wt * s.mask for (s, _), wt in zip(samples, w)).astype(np.float32)
    refs = [(s.ref, wt) for (s, _), wt in zip(samples, w) if s.ref is not None]
    ref = average_stats([r for r, _ in refs], [wt for _, wt in refs]) if len(refs) == len(samples) else None
    return dataclasses.replace(fp, blend_mask=np.clip(mask, 0.0, 1.0), colour_ref=ref)

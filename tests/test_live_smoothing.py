"""Live landmarks: the causal One-Euro filter's jitter cut and lag (the latency it adds, as documented in
facelib/one_euro.py), and the tracker that runs the detector every k frames on a real-face clip."""
from __future__ import annotations

import cv2
import numpy as np

from facelib.align import transform_points
from facelib.detectors import get_detector
from facelib.landmarks import inter_ocular
from facelib.one_euro import OneEuro
from merger.live_pipeline import FaceTracker
from tests.live_standin import photo_landmarks
from tests.test_live import read_frames

FACE = photo_landmarks()


def _noisy_track(speed: float, frames: int = 200, noise: float = 0.5, seed: int = 0):
    """A face moving right at `speed` face sizes per frame, each point with Gaussian jitter (pixels)."""
    rng = np.random.default_rng(seed)
    base = FACE - FACE.min(axis=0)
    size = np.sqrt(np.prod(base.max(axis=0)))
    true = [base + [speed * size * t, 0.0] for t in range(frames)]
    return true, [p + rng.normal(0, noise, p.shape) for p in true], size


def test_one_euro_cuts_the_jitter_of_a_still_face():
    true, noisy, _ = _noisy_track(0.0)
    f = OneEuro()
    out = [f(p) for p in noisy]
    raw = np.mean([np.sqrt(((n - t) ** 2).sum(1).mean()) for n, t in zip(noisy[50:], true[50:])])
    smooth = np.mean([np.sqrt(((o - t) ** 2).sum(1).mean()) for o, t in zip(out[50:], true[50:])])
    assert raw / smooth > 2.0


def test_one_euro_lag_on_a_moving_face_is_the_stated_latency():
    for speed in (0.003, 0.01, 0.03, 0.1):
        true, _, size = _noisy_track(speed)
        f = OneEuro()
        out = [f(p) for p in true]
        lag_frames = float((true[-1] - out[-1])[:, 0].mean() / (speed * size))
        assert abs(lag_frames - f.latency_frames(speed)) < 0.05 * f.latency_frames(speed) + 0.01, speed
    assert OneEuro().latency_frames(0.03) < 0.1  # a normal head move: under a tenth of a frame


def test_one_euro_passes_the_first_frame_and_a_reset_through():
    f = OneEuro()
    a, b = FACE, FACE + 40.0
    assert np.allclose(f(a), a)
    assert not np.allclose(f(b), b)  # smoothed towards a
    f.reset()
    assert np.allclose(f(b), b)


def test_tracker_detects_every_k_frames_and_tracks_the_face_between(face_video):
    frames = read_frames(face_video.path)[:20]
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,)), detect_every=5, smooth=False)
    ran = []
    for i, frame in enumerate(frames):
        lms, detected = tracker(frame)
        ran.append(detected)
        truth = transform_points(FACE, face_video.matrices[i])  # the photo's landmarks moved with the frame
        assert len(lms) == 1
        err = np.sqrt(((lms[0] - truth) ** 2).sum(1)).mean() / inter_ocular(truth)
        assert err < 0.08, (i, detected, err)
    assert [i for i, d in enumerate(ran) if d] == [0, 5, 10, 15]


def test_tracker_detects_again_when_the_face_is_gone(face_video):
    frames = read_frames(face_video.path)[:3]
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,)), detect_every=10)
    assert len(tracker(frames[0])[0]) == 1
    blank = np.zeros_like(frames[1])
    lms, detected = tracker(blank)  # tracking fails the jump / size check, the detector runs and finds nothing
    assert detected and lms == []
    lms, detected = tracker(frames[2])
    assert detected and len(lms) == 1
    assert cv2.countNonZero(blank[..., 0]) == 0

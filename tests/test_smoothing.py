"""Landmark tracking and smoothing across frames, measured against known truth.

The clip is a real photo under a known affine motion (core/synth_video), rendered at 640x480 and
blurred by H.264-like noise (mild Gaussian noise here, for speed; bench/landmark_accuracy.py
encodes and decodes real H.264). Truth: the photo's landmarks mapped by each frame's matrix.
Thresholds come from that benchmark (raw error ~1.6-3.2% of the inter-ocular distance per clip,
jitter ~2.7-5.9%), with headroom for other faces.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.landmark_accuracy import FRAME, Clip, metrics, motion
from core.synth_video import render_frames
from facelib.detectors import get_detector
from facelib.landmarks import inter_ocular, landmarks
from facelib.smoothing import build_tracks, smooth_sequence, smooth_track

FACES = Path(__file__).parent / "data" / "faces"


def _clip(photo_name: str, kind: str, n: int = 50, seed: int = 0) -> Clip:
    det = get_detector()
    photo = cv2.imread(str(FACES / photo_name))
    truth_photo = landmarks(photo, det.detect(photo)[0])
    mats, jump_at = motion(kind, n, (photo.shape[1], photo.shape[0]), seed)
    rng = np.random.default_rng(seed)
    found = []
    for frame in render_frames(photo, mats, FRAME):
        noisy = np.clip(frame + rng.normal(0, 3.0, frame.shape), 0, 255).astype(np.uint8)
        found.append([landmarks(noisy, d) for d in det.detect(noisy)])
    truth = np.stack([truth_photo @ m[:, :2].T + m[:, 2] for m in mats])
    return Clip(f"{photo_name}/{kind}", truth, found, jump_at)


@pytest.fixture(scope="module")
def slow_clip() -> Clip:
    return _clip("obama.jpg", "slow")


@pytest.fixture(scope="module")
def jump_clip() -> Clip:
    return _clip("grace_hopper.jpg", "jump")


@pytest.mark.slow
def test_raw_landmark_error_is_small(slow_clip):
    m = metrics(slow_clip, slow_clip.found)
    assert m["found"] > 0.95
    assert m["err"] < 4.0  # % of inter-ocular distance; measured ~1.7 on obama


@pytest.mark.slow
def test_smoothing_lowers_jitter(slow_clip):
    raw = metrics(slow_clip, slow_clip.found)
    smooth = metrics(slow_clip, smooth_sequence(slow_clip.found))
    assert smooth["jitter"] < 0.7 * raw["jitter"]
    assert smooth["err"] <= raw["err"] + 0.1


@pytest.mark.slow
def test_no_lag_on_a_sudden_jump(jump_clip):
    raw = metrics(jump_clip, jump_clip.found)
    smooth = metrics(jump_clip, smooth_sequence(jump_clip.found))
    assert smooth["jump"] <= raw["jump"] + 0.5  # frames around the jump: not dragged behind
    assert smooth["fast"] <= raw["fast"] + 0.5
    assert smooth["lag"] == 0
    # the track must not be broken by the jump either, or the test proves nothing
    assert len(build_tracks(jump_clip.found)) == 1


def _face(centre, size=100.0, rng=None, noise=0.0):
    """A fake 68-point face: a fixed shape of `size` pixels around `centre`, with optional noise."""
    base = np.random.default_rng(42).uniform(-0.5, 0.5, (68, 2))
    pts = np.asarray(centre, float) + base * size
    if rng is not None:
        pts = pts + rng.normal(0, noise, pts.shape)
    return pts


def test_crossing_faces_keep_their_tracks():
    rng = np.random.default_rng(0)
    n = 40
    # A moves right, B moves left, both 8 px/frame, crossing 30 px apart vertically at frame 20
    frames = []
    for t in range(n):
        a = _face((200 + 8 * t, 240), rng=rng, noise=1.0)
        b = _face((520 - 8 * t, 270), size=90, rng=rng, noise=1.0)
        frames.append([a, b] if t % 2 else [b, a])  # detector order changes from frame to frame
    tracks = build_tracks(frames)
    assert len(tracks) == 2
    for track in tracks:
        xs = np.array([p.mean(axis=0)[0] for p in track.points])
        steps = np.diff(xs)
        assert np.all(np.sign(steps) == np.sign(steps[0]))  # never swaps to the other face
    out = smooth_sequence(frames)
    for t in range(n):
        for raw, smooth in zip(frames[t], out[t]):
            assert np.abs(smooth - raw).mean() < 3.0  # each face smoothed with its own track


def test_missing_face_breaks_the_track_and_new_faces_start_their_own():
    rng = np.random.default_rng(1)
    frames = [[_face((300, 200), rng=rng, noise=1.0)] for _ in range(10)]
    frames += [[]]  # no face: the track ends here
    frames += [[_face((300, 200), rng=rng, noise=1.0), _face((500, 300), rng=rng, noise=1.0)] for _ in range(10)]
    tracks = build_tracks(frames)
    assert sorted(len(t.frames) for t in tracks) == [10, 10, 10]
    out = smooth_sequence(frames)
    assert [len(f) for f in out] == [len(f) for f in frames]
    assert out[10] == []


def test_smoothing_is_frame_size_independent():
    rng = np.random.default_rng(2)
    seq = np.stack([_face((300 + 3 * t, 200), rng=rng, noise=1.5) for t in range(30)])
    small = smooth_track(seq)
    big = smooth_track(seq * 3.0)
    np.testing.assert_allclose(big, small * 3.0, atol=1e-6)


def test_short_tracks_pass_through():
    pts = _face((100, 100))
    assert np.array_equal(smooth_sequence([[pts], [pts + 1]])[1][0], pts + 1)
    assert inter_ocular(pts) > 0

"""The README's main job: `main.py demo` builds a workspace from bundled photos and runs every stage,
from two videos to a merged result with the destination's audio."""
from __future__ import annotations

import re

import numpy as np
import pytest

from core.image_io import read_image
from core.video import probe
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # the whole pipeline through main.py demo (minutes)


def test_demo_runs_every_stage_end_to_end_and_resumes(tmp_path):
    ws = tmp_path / "my workspace"  # a space in the path, as users have
    first = run_cli("demo", "--workspace", str(ws), "--iterations", "4", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    for command in ("extract --input-dir", "train --training-data-src-dir", "merge --input-dir",
                    "videoed video-from-sequence"):
        assert f"==> python main.py {command}" in first.stderr  # the real commands are shown
    dst = probe(ws / "data_dst.mp4")
    result = probe(ws / "result.mp4")
    assert result.has_audio and dst.has_audio
    assert result.count_frames() == dst.count_frames() == 100
    assert (result.width, result.height, result.fps) == (dst.width, dst.height, dst.fps)
    assert len(list((ws / "data_src" / "aligned").glob("*.jpg"))) == 100
    assert len(list((ws / "data_dst" / "aligned").glob("*.jpg"))) == 100
    assert len(list((ws / "data_dst" / "aligned_debug").glob("*.jpg"))) == 100
    assert list((ws / "model").glob("demo_SAEHD_state.npz"))

    # each merged frame equals its dst frame outside the face mask and differs inside it
    frames = sorted((ws / "data_dst").glob("*.png"))
    assert len(frames) == 100
    for frame in frames[::33]:
        original = read_image(frame).astype(np.int16)
        merged = read_image(ws / "data_dst" / "merged" / frame.name).astype(np.int16)
        mask = read_image(ws / "data_dst" / "merged_mask" / frame.name)
        mask = mask[..., 0] if mask.ndim == 3 else mask
        outside, inside = mask == 0, mask > 0  # a few iterations: the learned masks are still soft
        assert outside.mean() > 0.5 and inside.sum() > 2000
        assert np.array_equal(merged[outside], original[outside])
        assert np.abs(merged[inside] - original[inside]).mean() > 3

    # the quality report ran last: the swapped faces are no longer the untouched dst faces
    m = re.search(r"^identity similarity to dst: (\d\.\d+)", first.stdout, flags=re.M)
    assert m and float(m.group(1)) < 0.999, first.stdout[-2000:]
    assert "identity similarity to src:" in first.stdout and (ws / "evaluation.json").exists()

    again = run_cli("demo", "--workspace", str(ws), "--iterations", "6", timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Using existing" in again.stderr and "Resuming: 100 of 100 frames already done" in again.stderr
    assert "at iteration 4" in again.stderr  # the model continues instead of starting over

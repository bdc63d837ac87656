"""The README's main job: `main.py demo` builds a workspace from bundled photos and runs every stage."""
from __future__ import annotations

from core.video import probe
from tests.conftest import run_cli


def test_demo_runs_every_stage_and_resumes(tmp_path):
    ws = tmp_path / "my workspace"  # a space in the path, as users have
    first = run_cli("demo", "--workspace", str(ws), timeout=900)
    assert first.returncode == 0, first.stderr
    assert "==> python main.py extract --input-dir" in first.stderr  # the real commands are shown
    dst = probe(ws / "data_dst.mp4")
    result = probe(ws / "result.mp4")
    assert result.has_audio and dst.has_audio
    assert result.count_frames() == dst.count_frames() == 100
    assert (result.width, result.height, result.fps) == (dst.width, dst.height, dst.fps)
    assert len(list((ws / "data_src" / "aligned").glob("*.jpg"))) == 100
    assert len(list((ws / "data_dst" / "aligned").glob("*.jpg"))) == 100
    assert len(list((ws / "data_dst" / "aligned_debug").glob("*.jpg"))) == 100
    again = run_cli("demo", "--workspace", str(ws), timeout=900)
    assert again.returncode == 0, again.stderr
    assert "Using existing" in again.stderr and "Resuming: 100 of 100 frames already done" in again.stderr

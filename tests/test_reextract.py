"""DFL's dst clean-up loop: delete the debug images of badly aligned frames, then
`extract --manual-output-debug-fix` re-extracts exactly those frames by hand.

The manual window is driven through its controller (mainscripts.manual_extract's state and
transitions, the same ones the window's keys and mouse call), headless: `run_manual_pass` is replaced by
a function that presses the keys on the state machine and returns what the window would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from core.image_io import read_image
from faceset.faceset import Face as StoredFace
from mainscripts import manual_extract as me
from mainscripts.extractor import ExtractSettings, extract
from tests.facesets import make_frames

pytestmark = pytest.mark.usefixtures("no_terminal")

SETTINGS = dict(detector="centerface", face_type="wf", image_size=64, workers=0)
SHIFT = (12.0, -6.0)  # how far the user moves the face's rect in the first frame shown


def _fake_window(seen: dict):
    """Frame 1: unlock the pre-placed rect, move it by SHIFT, lock, Enter. Frame 2: Space (no face)."""
    def run_manual_pass(frames, *, initial=None, window_size=0, track_of=None):
        seen["frames"] = [Path(f).name for f in frames]
        seen["initial"] = dict(initial or {})
        kept = {i: me.manual_rect_from_face(f) for i, f in (initial or {}).items()}
        s = me.start_state(len(frames), centre=(0.0, 0.0), half=40.0, kept=kept)
        assert s.locked  # the old face is shown, locked, on opening
        (cx, cy), _ = me.rect_centre_half(s.rect)
        s = me.on_click(me.on_mouse_move(me.on_click(s), cx + SHIFT[0], cy + SHIFT[1]))
        s = me.on_key(me.on_key(s, 13), 32)
        assert s.finished
        seen["rect"] = s.decisions[0]
        out = {}
        for i, rect in s.decisions.items():
            out[i] = None if rect is None else me.DetectedFace(
                rect=rect, landmarks=me.predict_landmarks(read_image(frames[i]), rect), score=1.0,
                detector=me.MANUAL_DETECTOR)
        return out
    return run_manual_pass


def test_deleted_debug_frames_are_redone_by_hand_and_nothing_else_changes(tmp_path, monkeypatch):
    frames = make_frames("obama.jpg", tmp_path / "frames", count=4)
    out = tmp_path / "aligned"
    extract(tmp_path / "frames", out, ExtractSettings(**SETTINGS, output_debug=True))
    debug = tmp_path / "aligned_debug"
    assert len(list(out.glob("*.jpg"))) == 4 and len(list(debug.glob("*.jpg"))) == 4
    untouched = {p.name: p.read_bytes() for p in out.glob("*.jpg") if p.stem.split("_")[0] in ("00001", "00004")}
    old_rect = StoredFace("00002_0.jpg", out / "00002_0.jpg").meta().source_rect
    (debug / "00002.jpg").unlink()
    (debug / "00003.jpg").unlink()

    seen: dict = {}
    monkeypatch.setattr(me, "run_manual_pass", _fake_window(seen))
    monkeypatch.setattr("core.display.display_problem", lambda: None)
    stats = extract(tmp_path / "frames", out, ExtractSettings(**SETTINGS, manual_output_debug_fix=True))

    assert seen["frames"] == ["00002.png", "00003.png"] and set(seen["initial"]) == {0, 1}
    assert stats["reextracted"] == 2 and stats["faces"] == 1 and stats["no_face"] == 1
    faces = sorted(p.name for p in out.glob("*.jpg"))
    assert faces == ["00001_0.jpg", "00002_0.jpg", "00004_0.jpg"]
    assert {n: (out / n).read_bytes() for n in untouched} == untouched
    new = StoredFace("00002_0.jpg", out / "00002_0.jpg").meta()
    assert new.source_rect == tuple(int(round(v)) for v in seen["rect"]) and new.source_rect != old_rect
    centre = np.mean(np.reshape(new.source_rect, (2, 2)), axis=0)
    assert np.allclose(centre, np.mean(np.reshape(seen["rect"], (2, 2)), axis=0), atol=1)
    trash = [p.name for p in (tmp_path / "aligned_trash").rglob("*.jpg")]
    assert sorted(trash) == ["00002_0.jpg", "00003_0.jpg"]  # the old faces, kept
    assert {p.name for p in debug.glob("*.jpg")} == {f"{n:05d}.jpg" for n in range(1, 5)}
    assert len(frames) == 4

    again = extract(tmp_path / "frames", out, ExtractSettings(**SETTINGS, manual_output_debug_fix=True))
    assert again["reextracted"] == 0  # every debug image is back: nothing to do


def test_the_fix_needs_the_debug_folder(tmp_path):
    make_frames("obama.jpg", tmp_path / "frames", count=3)
    with pytest.raises(UserError, match="debug"):
        extract(tmp_path / "frames", tmp_path / "aligned", ExtractSettings(**SETTINGS, manual_output_debug_fix=True))


VIEW_SCRIPTS = {"4.1_data_src_view_aligned_result": "data_src/aligned",
                "5.1_data_dst_view_aligned_results": "data_dst/aligned",
                "5.1_data_dst_view_aligned_debug_results": "data_dst/aligned_debug"}


def test_view_scripts_open_their_folder_or_say_what_to_do(tmp_path):
    import os
    import subprocess
    repo = Path(__file__).resolve().parent.parent
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    opened = tmp_path / "opened.txt"
    (fake_bin / "xdg-open").write_text(f'#!/bin/sh\necho "$1" >> "{opened}"\n')
    (fake_bin / "xdg-open").chmod(0o755)
    ws = tmp_path / "my workspace"
    base_path = "/usr/bin:/bin"
    for script, folder in VIEW_SCRIPTS.items():
        run = lambda path: subprocess.run(  # noqa: E731
            ["bash", str(repo / "scripts" / f"{script}.sh")], env=dict(os.environ, WORKSPACE=str(ws), PATH=path),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        missing = run(f"{fake_bin}:{base_path}")
        assert missing.returncode == 1 and "No folder" in missing.stderr and "run " in missing.stderr
        (ws / folder).mkdir(parents=True, exist_ok=True)
        assert run(f"{fake_bin}:{base_path}").returncode == 0
        assert opened.read_text().splitlines()[-1] == str(ws / folder)
        if not any(Path(d, "xdg-open").exists() or Path(d, "open").exists() for d in base_path.split(":")):
            viewerless = run(base_path)
            assert viewerless.returncode == 1 and "xdg-utils" in viewerless.stderr

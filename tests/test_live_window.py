"""The live window for real, under Xvfb: `main.py live` (stand-in model, tests/live_standin.py) plays a real-face
clip in real time while the test types the merger's keys; the output video shows when the settings changed."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from core.synth_video import make_video_from_photo
from merger.config import load_config
from tests.conftest import REPO
from tests.live_standin import PHOTO
from tests.test_live import face_regions, read_frames
from tests.xserver import window_process


@pytest.mark.slow  # a 6 s clip played in real time, ~20 s in all
def test_keys_change_the_live_output_and_enter_saves_a_merge_config(xserver, tmp_path):
    clip = make_video_from_photo(PHOTO, tmp_path / "clip.mp4", seconds=6.0, fps=10, frame_size=(320, 240))
    out, saved = tmp_path / "out.mp4", tmp_path / "live.json"
    cmd = [sys.executable, "-m", "tests.live_standin", "--input", str(clip.path), "--output", str(out), "--realtime",
           "--save-config", str(saved)]
    log = tmp_path / "live.log"
    with window_process(xserver, cmd, timeout=40.0, log=log, cwd=REPO) as win:
        win.wait_title(r"^Live - overlay mask=learned-prd\*learned-dst ct=rct erode=0 blur=0 ")
        win.key("Tab", r"^Live - overlay .* - help$")
        win.key("Tab", r"^Live - overlay .*cdegrade=0$")
        win.key("e", r"^Live - overlay .* blur=1 ")
        win.key("grave", r"^Live - original .* blur=1 ")  # the original frame: the swap is off
        win.key("Return", r"^Live - original .* - saved live\.json$")
        win.wait_exit()  # the clip ends: the window closes by itself
    text = log.read_text()
    cfg = load_config(saved)
    assert cfg.mode == "original" and cfg.blur == 1  # what `merge --config live.json` will use

    # The output: every frame is there; swapped until the ` key, the untouched frame after it.
    changed = [int(m.group(1)) for m in re.finditer(r"Frame (\d+): settings changed: mode original", text)]
    assert len(changed) == 1, text[-3000:]
    first_original = changed[0] - 1
    src, dst = read_frames(clip.path), read_frames(out)
    assert len(dst) == len(src) == clip.frame_count
    assert 1 <= first_original <= len(src) - 2, text[-3000:]  # the key came while the clip played
    regions = face_regions(clip, src[0].shape[:2])
    inside = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)[regions[i][0]].mean()
              for i, (a, b) in enumerate(zip(src, dst))]
    assert min(inside[:first_original]) > 12  # swapped
    assert max(inside[first_original:]) < 6  # the input again (re-encoding noise only: 3.5-4.5 here)
    print(f"settings changed at frame {first_original + 1} of {len(src)}")

"""The interactive merger window for real: a subprocess opens it on a private X server and the test
types DFL's keys with xdotool, then checks the merged frames and the saved session.

The window title carries the frame and its settings, so each step waits for the title to show the
key's effect instead of guessing sleeps. The model is the stand-in (tests/merge_standin.py).
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from core.image_io import read_image
from tests.facesets import extract_faces, make_frames
from tests.xserver import Window, XServer, window_process

REPO = Path(__file__).resolve().parent.parent

DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from core import log
from mainscripts import merger_cli
from tests.merge_standin import standin_from_aligned
log.setup()
root = Path({root!r})
model = standin_from_aligned(sorted((root / "dst" / "aligned").glob("*.jpg"))[0], resolution=64)
merger_cli.merge(str(root / "dst"), str(root / "merged"), str(root / "merged_mask"), str(root / "dst" / "aligned"),
                 str(root / "model"), "SAEHD", interactive=True, predictor=model)
"""


@contextlib.contextmanager
def merger_window(server: XServer, root: Path, run: int) -> Iterator[Window]:
    cmd = [sys.executable, "-c", DRIVER.format(repo=str(REPO), root=str(root))]
    with window_process(server, cmd, timeout=40.0, log=root / f"run{run}.log", cwd=REPO) as win:
        yield win


def _soft(mask: np.ndarray) -> int:
    return int(((mask > 0) & (mask < 255)).sum())


def test_keys_change_the_merged_frames_and_the_session(xserver, tmp_path):
    frames = make_frames("obama.jpg", tmp_path / "dst", count=3)
    extract_faces(frames, tmp_path / "dst" / "aligned", size=128)
    merged, masks = tmp_path / "merged", tmp_path / "merged_mask"

    with merger_window(xserver, tmp_path, 1) as win:
        win.wait_title(r"^Merger - frame 1/3 00001\.png .* blur=0 .* - help$")  # opens on the help screen
        win.key("Tab", r"^Merger - frame 1/3 .* blur=0 .*zoom=1\.0$")
        before = read_image(merged / "00001.png")
        mask_before = cv2.imread(str(masks / "00001.png"), cv2.IMREAD_UNCHANGED)
        for n in (1, 2, 3):
            win.key("e", rf" blur={n} ")
        # Three steps of blur already show at the mask edge (the title changes after the file is written).
        edge = (cv2.dilate(mask_before, np.ones((7, 7))) > 0) & (cv2.erode(mask_before, np.ones((7, 7))) < 255)
        step3 = np.abs(read_image(merged / "00001.png").astype(int) - before.astype(int)).sum(axis=2)
        assert step3[edge].max() > 10 and step3[cv2.dilate(mask_before, np.ones((15, 15))) == 0].max() == 0
        for n in (8, 13, 18, 23, 28):
            win.key("shift+e", rf" blur={n} ")  # Shift: steps of 5
        win.key("d", r" blur=27 ")
        win.key("3", r"frame 1/3 00001\.png - seamless ")
        win.key("1", r"frame 1/3 00001\.png - overlay ")
        win.key("period", r"^Merger - frame 2/3 00002\.png - overlay .* blur=27 ")  # the next frame inherits
        win.key("w", r"frame 2/3 .* erode=1 ")
        win.key("comma", r"^Merger - frame 1/3 .* erode=0 blur=27 ")  # frame 1 kept its own settings
        win.key("v", r" checker")
        win.key("equal", r"zoom=1\.1 checker")
        win.press("Escape")
        win.wait_exit()

    session = json.loads((tmp_path / "model" / "new_SAEHD_merger_session.json").read_text())
    cfgs = [f["config"] for f in session["frames"]]
    assert cfgs[0]["blur"] == 27 and cfgs[0]["erode"] == 0 and cfgs[1]["erode"] == 1 and cfgs[2] is None
    assert [f["done"] for f in session["frames"]] == [True, True, False] and session["current"] == 0
    # The blur shows in the written frame: a wider soft edge, pixels changed along the mask edge only.
    after = read_image(merged / "00001.png")
    mask_after = cv2.imread(str(masks / "00001.png"), cv2.IMREAD_UNCHANGED)
    assert _soft(mask_after) > 2 * _soft(mask_before)
    diff = np.abs(after.astype(int) - before.astype(int)).sum(axis=2)
    assert diff[edge].mean() > 3
    far = cv2.dilate(mask_after, np.ones((15, 15))) == 0
    assert diff[far].max() == 0
    assert not (merged / "00003.png").exists()

    # Second start: the saved session is used (default answer), '>' merges the rest and ends.
    with merger_window(xserver, tmp_path, 2) as win:
        win.wait_title(r"^Merger - frame 1/3 .* blur=27 ")
        win.key("Tab", r"^Merger - frame 1/3 .* blur=27 .*zoom=1\.0$")
        win.press("greater")
        win.wait_exit()
    session = json.loads((tmp_path / "model" / "new_SAEHD_merger_session.json").read_text())
    assert [f["done"] for f in session["frames"]] == [True, True, True]
    assert session["frames"][2]["config"]["erode"] == 1 and session["frames"][2]["config"]["blur"] == 27  # inherited
    assert (merged / "00003.png").exists() and (masks / "00003.png").exists()
    assert "All frames are merged" in (tmp_path / "run2.log").read_text()

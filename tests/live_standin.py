"""The stand-in model and a driver for live tests: `python -m tests.live_standin ARGS` runs
`main.py live ARGS` with the stand-in predictor (tests/merge_standin.py) instead of a trained model, so the
whole command (flags, window, sinks, Ctrl+C) runs for real without Keras."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHOTO = REPO / "tests" / "data" / "faces" / "obama.jpg"


@functools.cache
def photo_landmarks() -> np.ndarray:
    """The 68 landmarks of the photo the test clips are made of (frame pixels of the photo)."""
    from facelib.detectors import detect
    from facelib.landmarks import landmarks
    img = cv2.imread(str(PHOTO))
    return landmarks(img, detect(img)[0])


def standin(resolution: int = 64):
    from tests.merge_standin import StandInPredictor
    return StandInPredictor(photo_landmarks(), resolution=resolution)


def main(argv: list[str]) -> int:
    """main.py's own entry with load_model replaced by the stand-in."""
    import main as entry
    from mainscripts import live
    live.load_model = lambda *a, **k: standin()
    return entry.main(["live", "--model-dir", "stand-in", "--model", "SAEHD", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

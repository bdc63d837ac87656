"""Shared fixtures: real face photos, short videos synthesised from them, and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
FACES = DATA / "faces"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip().startswith(("Error", "\x1b[31mError"))]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run `python main.py ARGS` the way a user's script does: no terminal on stdin."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd or REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def no_terminal(monkeypatch):
    """Commands in this process never prompt, even when pytest runs with -s in a terminal
    (a module uses it with `pytestmark = pytest.mark.usefixtures("no_terminal")`)."""
    from core import interact
    monkeypatch.setattr(interact, "is_interactive", lambda: False)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """A 2-second 25 fps 320x240 clip of a real face photo in motion, with a 440 Hz audio track."""
    from core.synth_video import make_video_from_photo
    path = tmp_path_factory.mktemp("video") / "face.mp4"
    return make_video_from_photo(FACES / "obama.jpg", path, seconds=2.0, fps=25, frame_size=(320, 240), audio_hz=440.0)


# The `xserver` fixture (a private Xvfb for window tests), available to every test module.
from tests.xserver import xserver  # noqa: E402,F401

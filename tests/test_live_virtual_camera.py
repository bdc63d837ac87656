"""`live --virtual-camera` sends the merged frames to pyvirtualcam: tested with a stand-in module (pyvirtualcam
is an optional dependency, absent here) that records what a real virtual camera would be given."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from core.errors import UserError
from tests.live_standin import standin


class FakeCamera:
    """pyvirtualcam.Camera's interface: opened once with the frame size, `send` per frame, `close`."""

    opened: list[FakeCamera] = []
    fail: str | None = None

    def __init__(self, width: int, height: int, fps: float, fmt=None, **_):
        if FakeCamera.fail:
            raise RuntimeError(FakeCamera.fail)
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.frames: list[np.ndarray] = []
        self.closed = False
        FakeCamera.opened.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert not self.closed
        self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_pyvirtualcam(monkeypatch):
    module = types.ModuleType("pyvirtualcam")
    module.Camera = FakeCamera
    module.PixelFormat = types.SimpleNamespace(BGR="BGR", RGB="RGB")
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    FakeCamera.opened, FakeCamera.fail = [], None
    return module


def test_the_swapped_frames_go_to_the_virtual_camera(face_video, fake_pyvirtualcam, no_terminal):
    from core.frame_source import open_source
    from mainscripts.live import live
    summary = live("stand-in", None, {"input": str(face_video.path), "window": False, "virtual_camera": True},
                   predictor=standin(), max_frames=6)
    assert summary.frames_out == 6 and len(FakeCamera.opened) == 1
    cam = FakeCamera.opened[0]
    assert (cam.width, cam.height, cam.fmt) == (320, 240, "BGR") and cam.fps == pytest.approx(face_video.fps)
    assert len(cam.frames) == 6 and cam.closed  # every frame, and the camera released at the end
    source = open_source(str(face_video.path))
    try:
        for sent in cam.frames:
            frame = source.read()
            assert sent.shape == frame.shape and sent.dtype == np.uint8 and sent.flags["C_CONTIGUOUS"]
            changed = np.abs(sent.astype(np.int16) - frame.astype(np.int16)).max(axis=2) > 30
            assert 300 < changed.sum() < 0.5 * changed.size  # the face swapped, not the whole frame
    finally:
        source.close()


def test_a_virtual_camera_that_does_not_open_is_one_clear_line(face_video, fake_pyvirtualcam, no_terminal):
    from mainscripts.live import live
    FakeCamera.fail = "no v4l2loopback device"
    with pytest.raises(UserError, match=r"the virtual camera does not open \(no v4l2loopback device\)"):
        live("stand-in", None, {"input": str(face_video.path), "window": False, "virtual_camera": True},
             predictor=standin(), max_frames=3)

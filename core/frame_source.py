"""Where live frames come from: a camera index, a video file, an image folder or a stream URL.

One `open_source(spec)` call decides which and opens it, or raises one UserError line saying what
did not open (a missing camera, a URL that does not answer, an unreadable file), before any model is
loaded. A source says whether it is live (camera, stream: frames keep coming whether we read them or
not, so the pipeline drops frames rather than fall behind) or a file/folder (every frame, in order).
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from core.errors import UserError
from core.fileio import list_images
from core.image_io import read_image

OPEN_TIMEOUT_MS = 8000  # a stream URL that does not answer within this is reported, not waited on
READ_TIMEOUT_MS = 8000
DEFAULT_FPS = 25.0
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class FrameSource:
    """A sequence of BGR uint8 frames; `read()` returns None at the end (or when a live source stops)."""

    name: str = ""
    live: bool = False  # frames arrive in real time: drop rather than fall behind
    fps: float = DEFAULT_FPS
    video_path: Path | None = None  # a video file (its audio can go into the output)
    frame_count: int | None = None  # known for files and folders

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class CaptureSource(FrameSource):
    """OpenCV's VideoCapture: cameras, video files and stream URLs."""

    def __init__(self, cap: cv2.VideoCapture, name: str, live: bool, video_path: Path | None = None):
        self.cap, self.name, self.live, self.video_path = cap, name, live, video_path
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if (not live and count > 0) else None
        self._first: np.ndarray | None = None

    def peek(self) -> np.ndarray | None:
        """The first frame, read once at opening to prove the source gives frames."""
        if self._first is None:
            ok, frame = self.cap.read()
            self._first = frame if ok and frame is not None and frame.size else None
        return self._first

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return _bgr(frame)
        ok, frame = self.cap.read()
        return _bgr(frame) if ok and frame is not None and frame.size else None

    def close(self) -> None:
        self.cap.release()


class FolderSource(FrameSource):
    """The images of a folder in natural name order (00001.png, 00002.png, ...)."""

    def __init__(self, folder: Path, fps: float = DEFAULT_FPS):
        self.name, self.fps = str(folder), fps
        self.paths = list_images(folder)
        if not self.paths:
            raise UserError("no images in this folder", folder)
        self.frame_count = len(self.paths)
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.paths):
            return None
        path = self.paths[self._next]
        self._next += 1
        return _bgr(read_image(path))


def _bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def describe(spec: str) -> str:
    """What kind of input `spec` names: camera, url, folder or file."""
    spec = spec.strip()
    if spec.isdigit():
        return "camera"
    if _URL.match(spec):
        return "url"
    return "folder" if Path(spec).is_dir() else "file"


def open_source(spec: str, fps: float | None = None) -> FrameSource:
    """Open `spec`: a camera index ("0"), a stream URL (rtsp://, http://...), an image folder or a video
    file. Raises a UserError naming it when it does not open or gives no frame. `fps` overrides the
    rate for a folder (and for sources that do not say theirs)."""
    kind = describe(spec)
    if kind == "camera":
        index = int(spec)
        cap = cv2.VideoCapture(index)
        source = CaptureSource(cap, f"camera {index}", live=True)
        if not cap.isOpened() or source.peek() is None:
            cap.release()
            raise UserError(f"camera {index} does not open (no such camera, or another program is using it; "
                            f"cameras are numbered from 0)")
    elif kind == "url":
        cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        source = CaptureSource(cap, _safe_url(spec), live=True)
        if not cap.isOpened() or source.peek() is None:
            cap.release()
            raise UserError(f"stream {_safe_url(spec)} does not open (no answer within {OPEN_TIMEOUT_MS // 1000} s, "
                            f"or not a video stream OpenCV can read)")
    elif kind == "folder":
        source = FolderSource(Path(spec))
    else:
        path = Path(spec)
        if not path.exists():
            raise UserError("input not found (give a camera index, a video file, an image folder or a URL)", path)
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        source = CaptureSource(cap, str(path), live=False, video_path=path)
        if not cap.isOpened() or source.peek() is None:
            cap.release()
            raise UserError("not a readable video", path)
    if fps and fps > 0:
        source.fps = float(fps)
    return source


def _safe_url(url: str) -> str:
    """The URL without a password (rtsp://user:secret@host -> rtsp://user:***@host)."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", url)

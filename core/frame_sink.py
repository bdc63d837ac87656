"""Where live frames go besides the window: a video file (through ffmpeg) or a virtual camera.

`VideoSink` pipes raw BGR frames into one ffmpeg encode (core.video.run_ffmpeg, in a thread) into a
temporary video-only file; `close()` ends the encode and then muxes the audio of the source video
(when given and it has one) in a second, copy-only ffmpeg pass, and renames the result into place
(core.fileio.atomic_path). So a Ctrl+C still leaves a complete, playable file of the frames written
so far, and a crash leaves no half-written one under the output's name. The caller passes the
container metadata options (the synthetic-media marker of `video-from-sequence`), since core knows
nothing of the commands.
"""
from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from core.errors import UserError
from core.fileio import atomic_path, disk_error, ensure_writable_dir, partial_name, remove_stale_partials
from core.video import fps_to_fraction, probe, run_ffmpeg

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}
_END = object()


class VideoSink:
    """Frames in, one H.264 video out at `fps`; all frames must have the first one's size."""

    def __init__(self, path: str | Path, fps: float, audio_from: Path | None = None,
                 metadata_args: Sequence[str] = (), crf: int = 18):
        self.path = Path(path)
        container = CONTAINERS.get(self.path.suffix.lower())
        if container is None:
            raise UserError(f"unsupported output type '{self.path.suffix}'; use one of {', '.join(CONTAINERS)}", self.path)
        ensure_writable_dir(self.path.parent)
        remove_stale_partials(self.path.parent, [self.path.name])
        self.container, self.fps, self.audio_from, self.crf = container, fps_to_fraction(fps), audio_from, crf
        self.metadata_args = list(metadata_args)
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._video_tmp: Path | None = None  # the first pass's video-only file (a partial of the output's name)
        self._encoded = 0

    def _chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item

    def _movflags(self) -> list[str]:
        if self.container not in ("mp4", "mov"):
            return []
        return ["-movflags", "+faststart+use_metadata_tags" if self.metadata_args else "+faststart"]

    def _start(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        self._size = (w, h)
        try:
            fd, name = tempfile.mkstemp(prefix=partial_name(self.path, keep_suffix=True), suffix=self.path.suffix,
                                        dir=self.path.parent)
        except OSError as e:
            raise disk_error(e, self.path) from None
        os.close(fd)
        self._video_tmp = Path(name)
        pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if (w % 2 or h % 2) else []  # yuv420p needs even sizes
        args = ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(self.fps), "-i", "pipe:",
                *pad, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), "-preset", "veryfast",
                "-r", str(self.fps), "-f", self.container, str(self._video_tmp)]

        def encode() -> None:
            try:
                self._encoded = run_ffmpeg(args, path=self.path, desc=f"Writing {self.path.name}",
                                           stdin_chunks=self._chunks())
            except BaseException as e:  # noqa: BLE001 - raised in the writer's thread by write()/close()
                self._error = e
                with contextlib.suppress(queue.Empty):  # unblock a writer waiting on a full queue
                    while True:
                        self._queue.get_nowait()

        self._thread = threading.Thread(target=encode, name="video-sink", daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._start(frame)
        if (frame.shape[1], frame.shape[0]) != self._size:
            raise UserError(f"frame size changed from {self._size[0]}x{self._size[1]} to "
                            f"{frame.shape[1]}x{frame.shape[0]}; a video keeps one size", self.path)
        self._queue.put(np.ascontiguousarray(frame, np.uint8).tobytes())
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the encode, mux the audio and put the file in place; None when no frame was written."""
        if self._thread is None:
            return None
        self._queue.put(_END)
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            if self._encoded == 0:
                return None
            self._finish()
        finally:
            if self._video_tmp is not None:
                with contextlib.suppress(OSError):
                    self._video_tmp.unlink()
        return self.path

    def _finish(self) -> None:
        """The second pass: copy the video, add the source's first audio track cut to the video's length,
        and the metadata."""
        inputs = ["-i", str(self._video_tmp)]
        maps = ["-map", "0:v:0"]
        audio: list[str] = []
        if self.audio_from is not None and probe(self.audio_from).has_audio:
            inputs += ["-i", str(self.audio_from)]
            maps += ["-map", "1:a:0"]
            audio = ["-c:a", "aac", "-b:a", "192k", "-shortest"]
        with atomic_path(self.path, keep_suffix=True) as out:
            run_ffmpeg([*inputs, *maps, "-c:v", "copy", *audio, *self.metadata_args, *self._movflags(),
                        "-f", self.container, str(out)], path=self.path, desc="Muxing")


class VirtualCamera:
    """Frames to a virtual camera through the optional `pyvirtualcam` package (OBS's or v4l2loopback's)."""

    def __init__(self, fps: float):
        self.fps = fps
        self._cam = None
        self._module = require_pyvirtualcam()

    def write(self, frame: np.ndarray) -> None:
        if self._cam is None:
            h, w = frame.shape[:2]
            try:
                self._cam = self._module.Camera(width=w, height=h, fps=self.fps, fmt=self._module.PixelFormat.BGR)
            except Exception as e:  # no OBS virtual camera / v4l2loopback device
                raise UserError(f"the virtual camera does not open ({e})") from None
        self._cam.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()


def require_pyvirtualcam():
    """The pyvirtualcam module, or a UserError saying how to get it (it is an optional dependency)."""
    try:
        import pyvirtualcam
    except ImportError:
        raise UserError("--virtual-camera needs the optional package pyvirtualcam, which is not installed: "
                        "pip install pyvirtualcam (and a virtual camera driver: OBS, or v4l2loopback on Linux)") from None
    return pyvirtualcam

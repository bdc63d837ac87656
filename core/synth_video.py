"""Short videos made from still photos with a known motion, for the demo and for tests.

Because every frame is the photo under a known affine transform, anything measured on the photo
(face landmarks, say) is known exactly in every frame: the ground truth for landmark accuracy and
jitter measurements, without shipping any video.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import ffmpeg
import numpy as np

from core.video import run_ffmpeg


@dataclass
class SynthVideo:
    """A synthesised clip: where it is, and the photo->frame matrix of every frame."""

    path: Path
    fps: int
    width: int
    height: int
    matrices: list[np.ndarray] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.matrices)


def smooth_motion(n_frames: int, photo_size: tuple[int, int], frame_size: tuple[int, int], *,
                  focus: tuple[float, float, float, float] | None = None, seed: int = 0, shift: float = 0.08,
                  rotation_deg: float = 6.0, zoom: float = 0.06) -> list[np.ndarray]:
    """Photo->frame matrices for a slow hand-held-camera drift.

    The `focus` box of the photo (l, t, r, b; default the whole photo) is fitted into the frame and
    centred, then the view pans by up to `shift` of the frame, turns by up to `rotation_deg` and
    zooms by up to `zoom`, each a slow sine with a random phase (from `seed`).
    """
    rng = np.random.default_rng(seed)
    fw, fh = frame_size
    l, t, r, b = focus if focus is not None else (0, 0, photo_size[0], photo_size[1])
    base_scale = min(fw / (r - l), fh / (b - t))
    fx, fy = (l + r) / 2, (t + b) / 2
    phases = rng.uniform(0, 2 * np.pi, size=4)
    periods = rng.uniform(0.6, 1.4, size=4) * max(n_frames, 2)
    mats = []
    for i in range(n_frames):
        wave = np.sin(2 * np.pi * i / periods + phases)
        m = cv2.getRotationMatrix2D((fx, fy), rotation_deg * wave[0], base_scale * (1.0 + zoom * wave[1]))
        m[:, 2] += np.array([fw / 2 + shift * fw * wave[2] - fx, fh / 2 + shift * fh * wave[3] - fy])
        mats.append(m.astype(np.float64))
    return mats


def render_frames(photo_bgr: np.ndarray, matrices: list[np.ndarray], frame_size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The photo warped by each matrix onto a frame of `frame_size` (w, h); outside the photo is black
    (a mirrored border would show phantom faces)."""
    for m in matrices:
        yield cv2.warpAffine(photo_bgr, m, frame_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def write_video(path: str | Path, frames: Iterator[np.ndarray], *, fps: int, frame_size: tuple[int, int],
                n_frames: int, audio_hz: float | None = 440.0, crf: int = 16) -> Path:
    """Encode BGR frames as H.264 (yuv420p) with an optional sine-tone AAC audio track."""
    path = Path(path)
    w, h = frame_size
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{w}x{h}", r=fps)
    streams = [video]
    out_kwargs: dict = {"vcodec": "libx264", "pix_fmt": "yuv420p", "crf": crf, "r": fps}
    if audio_hz:
        duration = n_frames / fps
        streams.append(ffmpeg.input(f"sine=frequency={audio_hz}:sample_rate=48000:duration={duration}", f="lavfi"))
        out_kwargs.update({"acodec": "aac", "audio_bitrate": "128k"})
    args = ffmpeg.output(*streams, str(path), **out_kwargs).get_args()
    run_ffmpeg(args, path=path, total_frames=n_frames, desc=f"Writing {path.name}",
               stdin_chunks=(np.ascontiguousarray(f).tobytes() for f in frames))
    return path


def make_video_from_photo(photo_path: str | Path, out_path: str | Path, *, seconds: float = 2.0, fps: int = 25,
                          frame_size: tuple[int, int] = (320, 240), audio_hz: float | None = 440.0,
                          seed: int = 0, focus: tuple[float, float, float, float] | None = None,
                          **motion) -> SynthVideo:
    """One call for tests and the demo: photo in, moving clip (with tone) out, matrices returned."""
    photo = cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise FileNotFoundError(photo_path)
    n = int(round(seconds * fps))
    mats = smooth_motion(n, (photo.shape[1], photo.shape[0]), frame_size, focus=focus, seed=seed, **motion)
    write_video(out_path, render_frames(photo, mats, frame_size), fps=fps, frame_size=frame_size,
                n_frames=n, audio_hz=audio_hz)
    return SynthVideo(Path(out_path), fps, frame_size[0], frame_size[1], mats)

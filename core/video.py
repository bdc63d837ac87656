"""Video I/O through ffmpeg: find the binary, probe a file, run an encode with a progress bar.

The ffmpeg binary is the one on PATH, else the one inside the `imageio-ffmpeg` wheel. That wheel has
no ffprobe, so `probe` reads ffmpeg's own description of the input (`ffmpeg -i`), which every build
prints the same way.
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from core.errors import UserError

# Demuxers that read still images: a .png given as a "video" is a mistake, not a 1-frame clip.
_IMAGE_DEMUXERS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: PATH first, then the imageio-ffmpeg wheel's."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # the wheel is missing or has no binary for this platform
        raise UserError(f"ffmpeg not found: install requirements.txt (imageio-ffmpeg) or put ffmpeg on PATH ({e})") from None


def fps_to_fraction(fps: float) -> Fraction:
    """Exact frame rate from a decimal one: 29.97 -> 30000/1001, 25.0 -> 25."""
    for base in (24, 30, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a video file."""

    path: Path
    container: str
    width: int
    height: int
    fps: Fraction
    duration: float | None
    audio_streams: int

    @property
    def has_audio(self) -> bool:
        return self.audio_streams > 0

    def count_frames(self) -> int:
        """Exact number of frames (decodes the file; seconds for a short clip)."""
        out = _run_capture([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(self.path), "-map", "0:v:0",
                            "-f", "null", "-progress", "pipe:1", "-"], self.path)
        frames = re.findall(r"^frame=(\d+)", out.stdout, flags=re.M)
        if not frames:
            raise UserError("could not count frames (is the video stream readable?)", self.path)
        return int(frames[-1])


def _run_capture(cmd: Sequence[str], path: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise UserError(f"could not run ffmpeg ({e})", path) from None


def probe(path: str | Path) -> VideoInfo:
    """Read container, size, frame rate, duration and audio streams of a video, or explain why not."""
    path = Path(path)
    if not path.exists():
        raise UserError("video file not found", path)
    if not path.is_file():
        raise UserError("expected a video file, found a folder", path)
    text = _run_capture([ffmpeg_exe(), "-hide_banner", "-i", str(path)], path).stderr
    container = re.search(r"Input #0, ([^,]+)", text)
    video = re.search(r"Stream #0:\d+.*?: Video: (.*)", text)
    if not container or not video:
        reason = text.strip().splitlines()[-1] if text.strip() else "unreadable"
        reason = reason.replace(str(path), "").strip(": ")
        raise UserError(f"not a readable video ({reason})", path)
    if container.group(1) in _IMAGE_DEMUXERS:
        raise UserError("this is a still image, not a video", path)
    desc = video.group(1)
    size = re.search(r"[ ,](\d{2,5})x(\d{2,5})[ ,\[]", desc)
    rate = re.search(r"([\d.]+)(k?) fps", desc) or re.search(r"([\d.]+)(k?) tbr", desc)
    if not size or not rate:
        raise UserError("video stream has no size or frame rate", path)
    fps_value = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
    return VideoInfo(
        path=path,
        container=container.group(1),
        width=int(size.group(1)),
        height=int(size.group(2)),
        fps=fps_to_fraction(fps_value),
        duration=duration,
        audio_streams=len(re.findall(r"Stream #0:\d+.*?: Audio:", text)),
    )


def run_ffmpeg(args: Sequence[str], *, path: Path, total_frames: int | None = None, desc: str = "ffmpeg",
               stdin_chunks: Iterable[bytes] | None = None) -> int:
    """Run ffmpeg with a tqdm bar in frames and return the number of frames it wrote.

    On failure raise a UserError naming `path` with ffmpeg's most telling error line.

    `stdin_chunks`, when given, is streamed into ffmpeg's stdin (one chunk per frame for image2pipe).
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-y"]
    if stdin_chunks is None:
        cmd.append("-nostdin")
    else:
        cmd.append("-xerror")  # a corrupt frame in a sequence must fail the encode, not be skipped
    cmd.extend(args)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_chunks is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise UserError(f"could not run ffmpeg ({e})", path) from None
    stderr_lines: list[str] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(
        line.decode("utf-8", "replace").rstrip() for line in proc.stderr), daemon=True)
    drain.start()
    bar = tqdm(total=total_frames, desc=desc, unit="frame", dynamic_ncols=True)
    feeder = None
    feed_error: list[BaseException] = []
    if stdin_chunks is not None:
        def feed() -> None:
            try:
                for chunk in stdin_chunks:
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # ffmpeg stopped early; its stderr says why
            except BaseException as e:  # e.g. an unreadable frame file
                feed_error.append(e)
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    try:
        done = 0
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("frame="):
                frame = int(line.split("=", 1)[1] or 0)
                bar.update(frame - done)
                done = frame
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        bar.close()
        if feeder is not None:
            feeder.join()
        drain.join()
    if feed_error:
        raise feed_error[0]
    if proc.returncode != 0:
        raise UserError(f"ffmpeg failed: {_main_error(stderr_lines) or f'exit code {proc.returncode}'}", path)
    return done


def _main_error(stderr_lines: list[str]) -> str:
    """The most telling line of ffmpeg's error output, without its '[codec @ 0x...]' prefixes."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in stderr_lines]
    lines = [line for line in lines if line]
    for line in lines:
        if "rror" in line:
            return line
    return lines[-1] if lines else ""

"""`videoed`: video <-> frame sequences, cutting and denoising (DFL's VideoEd, without its bugs).

Every output is produced under a temporary name and moved into place only when ffmpeg succeeded, so
a failed or interrupted run never leaves a half-written video or frame folder behind.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from core import interact, log
from core.errors import UserError
from core.fileio import (
    atomic_path,
    ensure_writable_dir,
    list_image_sequence,
    list_images,
    pid_alive,
    remove_stale_partials,
    require_dir,
    resolve_wildcard_ext,
)
from core.video import VideoInfo, fps_to_fraction, probe, run_ffmpeg

FRAME_EXTS = ("png", "jpg")
VIDEO_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}
# ffmpeg decoder for frames piped through image2pipe, by file extension.
_PIPE_CODECS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff",
                ".webp": "webp"}
JPEG_QSCALE = 2  # ffmpeg's -q:v for JPEG: 2 is visually lossless (DFL's choice)


def _frame_output_options(ext: str) -> dict:
    return {"pix_fmt": "rgb24"} if ext == "png" else {"q:v": JPEG_QSCALE, "pix_fmt": "yuvj444p"}


@contextlib.contextmanager
def _staging_dir(parent: Path, label: str):
    """A temporary folder `.<label>.partial-<pid>-<random>` inside `parent` (same filesystem, so moving
    out of it is a rename). Staging folders of killed runs of the same step are removed first."""
    _remove_stale_staging(parent, label)
    tmp = Path(tempfile.mkdtemp(prefix=f".{label}.partial-{os.getpid()}-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_staging(parent: Path, label: str) -> None:
    """Delete `.<label>.partial-*` folders whose process is gone (older versions put no pid in the
    name: those are always stale). A running extraction's folder is left alone."""
    pattern = re.compile(rf"^\.{re.escape(label)}\.partial-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+$")
    for folder in parent.glob(f".{label}.partial-*"):
        m = pattern.match(folder.name)
        if m is None or not folder.is_dir() or folder.is_symlink():
            continue
        if m.group("pid") is not None and pid_alive(int(m.group("pid"))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info(f"Removed {folder.name}, left behind by an interrupted run")


def _remove_stale_partials(out_path: Path) -> None:
    """Remove the partial files of `out_path` that killed encodes left (never another output's)."""
    for p in remove_stale_partials(out_path.parent, [out_path.name]):
        log.info(f"Removed {p.name}, left behind by an interrupted run")


# --- extract-video -----------------------------------------------------------------------------

def extract_video(input_file: str, output_dir: str, output_ext: str | None = None, fps: float | None = None) -> list[Path]:
    """Write every frame (or `fps` frames per second) of a video as 00001.png ... into `output_dir`."""
    import ffmpeg  # ffmpeg-python, imported where used: the CLI's parser loads without it
    source = resolve_wildcard_ext(input_file)
    info = probe(source)
    out_dir = ensure_writable_dir(output_dir)
    fps = interact.pick(fps, lambda: interact.ask_float(
        "Enter FPS", 0, help_text="How many frames of every second of video to extract. 0 = full frame rate."))
    if fps < 0:
        raise UserError(f"--fps must be 0 (full rate) or positive, got {fps}")
    ext = interact.pick(output_ext, lambda: interact.ask_str(
        "Output image format", "png", choices=FRAME_EXTS,
        help_text="png is lossless but larger; jpg is smaller and high quality."))
    if ext not in FRAME_EXTS:
        raise UserError(f"--output-ext must be png or jpg, got '{ext}'")

    expected = _expected_frame_count(info, fps)
    log.info(f"Extracting {source.name} ({info.width}x{info.height}, {float(info.fps):.3f} fps) to {out_dir}")
    with _staging_dir(out_dir, "extract") as staging:
        stream = ffmpeg.input(str(source))["v:0"]
        if fps > 0:
            stream = stream.filter("fps", fps=str(fps_to_fraction(fps)))
        out = stream.output(str(staging / f"%05d.{ext}"), fps_mode="passthrough",
                            **_frame_output_options(ext))
        run_ffmpeg(out.get_args(), path=source, total_frames=expected, desc="Extracting frames")
        frames = sorted(staging.glob(f"*.{ext}"))
        if not frames:
            raise UserError("ffmpeg produced no frames from this video", source)
        old = [p for p in out_dir.iterdir() if p.is_file() and p.suffix.lower() == f".{ext}"]
        if old:
            log.info(f"Replacing {len(old)} existing .{ext} frames in {out_dir}")
            for p in old:
                p.unlink()
        for p in frames:
            os.replace(p, out_dir / p.name)
    log.info(f"Extracted {len(frames)} frames")
    return [out_dir / p.name for p in frames]


def _expected_frame_count(info: VideoInfo, fps: float) -> int | None:
    if info.duration is None:
        return None
    rate = fps if fps > 0 else float(info.fps)
    return max(1, int(round(info.duration * rate)))


# --- cut-video ---------------------------------------------------------------------------------

def parse_time(text: str) -> float:
    """'HH:MM:SS.mmm', 'MM:SS' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*", text)
    if not match:
        raise UserError(f"time '{text}' is not HH:MM:SS.mmm, MM:SS or seconds")
    parts = [p for p in match.groups()[:2] if p is not None]
    seconds = float(match.group(3))
    for i, p in enumerate(reversed(parts)):
        seconds += int(p) * 60 ** (i + 1)
    return seconds


def cut_video(input_file: str, from_time: str | None = None, to_time: str | None = None,
              audio_track_id: int | None = None, bitrate: int | None = None) -> Path:
    """Write `<stem>_cut<ext>` holding [from_time, to_time) of the video, re-encoded with libx264."""
    import ffmpeg  # ffmpeg-python, imported where used: the CLI's parser loads without it
    source = resolve_wildcard_ext(input_file)
    info = probe(source)
    if source.suffix.lower() not in VIDEO_CONTAINERS:
        raise UserError(f"cannot write a {source.suffix} container; use one of {', '.join(VIDEO_CONTAINERS)}", source)
    ensure_writable_dir(source.parent)
    start = parse_time(interact.pick(from_time, lambda: interact.ask_str("From time", "00:00:00.000")))
    end_text = interact.pick(to_time, lambda: interact.ask_str(
        "To time", "end", help_text="HH:MM:SS.mmm, or 'end' for the end of the video"))
    end = info.duration if end_text in ("", "end") else parse_time(end_text)
    if end is None:
        raise UserError("the video's duration is unknown: give --to-time", source)
    if info.duration is not None:
        end = min(end, info.duration)
        if start >= info.duration:
            raise UserError(f"--from-time {start:.3f}s is past the end of the video ({info.duration:.3f}s)", source)
    if end <= start:
        raise UserError(f"--to-time ({end:.3f}s) must be after --from-time ({start:.3f}s)", source)
    track = interact.pick(audio_track_id, lambda: interact.ask_int("Specify audio track id", 0)) if info.has_audio else None
    if track is not None and not 0 <= track < info.audio_streams:
        raise UserError(f"--audio-track-id {track}: the video has {info.audio_streams} audio track(s)", source)
    rate = interact.pick(bitrate, lambda: interact.ask_int("Bitrate of output file in MB/s", 25, (1, 1000)))

    out_path = source.with_name(f"{source.stem}_cut{source.suffix}")
    src = ffmpeg.input(str(source), ss=f"{start:.3f}", to=f"{end:.3f}")
    streams = [src["v:0"]]
    kwargs: dict = {"vcodec": "libx264", "pix_fmt": "yuv420p", "video_bitrate": f"{rate}M",
                    "f": VIDEO_CONTAINERS[source.suffix.lower()]}
    if track is not None:
        streams.append(src[f"a:{track}"])
        kwargs.update({"acodec": "aac", "audio_bitrate": "192k"})
    log.info(f"Cutting {source.name} from {start:.3f}s to {end:.3f}s")
    _remove_stale_partials(out_path)
    with atomic_path(out_path, keep_suffix=True) as tmp:
        args = ffmpeg.output(*streams, str(tmp), **kwargs).get_args()
        run_ffmpeg(args, path=source, total_frames=int(round((end - start) * float(info.fps))), desc="Cutting")
    log.info(f"Wrote {out_path}")
    return out_path


# --- denoise-image-sequence --------------------------------------------------------------------

def denoise_image_sequence(input_dir: str, factor: int | None = None) -> int:
    """Denoise a frame sequence in place with ffmpeg's temporal hqdn3d filter (strength = factor)."""
    import ffmpeg  # ffmpeg-python, imported where used: the CLI's parser loads without it
    folder = require_dir(input_dir, "image folder")
    images, ext = list_image_sequence(folder)
    factor = interact.pick(factor, lambda: interact.ask_int(
        "Denoise factor", 7, (1, 20), help_text="Strength of the temporal denoiser: 1 weak ... 20 strong."))
    if not 1 <= factor <= 20:
        raise UserError(f"--factor must be from 1 to 20, got {factor}")
    ensure_writable_dir(folder)
    codec = _PIPE_CODECS.get(ext)
    if codec is None:
        raise UserError(f"cannot denoise {ext} images; use png or jpg", folder)
    out_ext = "png" if ext == ".png" else ext.lstrip(".")
    log.info(f"Denoising {len(images)} frames in {folder} with factor {factor}")
    with _staging_dir(folder, "denoise") as staging:
        src = ffmpeg.input("pipe:", format="image2pipe", vcodec=codec, framerate=25)
        # Filter in planar RGB: letting ffmpeg pick a 4:2:0 format would blur colour for every factor.
        out = (src.filter("format", "gbrp").filter("hqdn3d", factor, factor, 5, 5)
               .output(str(staging / f"%06d.{out_ext}"), fps_mode="passthrough",
                       **_frame_output_options("png" if out_ext == "png" else "jpg")))
        run_ffmpeg(out.get_args(), path=folder, total_frames=len(images), desc="Denoising",
                   stdin_chunks=(p.read_bytes() for p in images))
        produced = sorted(staging.glob(f"*.{out_ext}"))
        if len(produced) != len(images):
            raise UserError(f"ffmpeg returned {len(produced)} frames for {len(images)} inputs; nothing was changed", folder)
        for new, original in zip(produced, images):
            os.replace(new, original)
    log.info(f"Denoised {len(images)} frames")
    return len(images)


# --- video-from-sequence -----------------------------------------------------------------------

SYNTHETIC_COMMENT = "synthetic media: made with facekit face swap"
SYNTHETIC_TAG = ("synthetic_media", "face swap made with facekit")  # a custom key for machine readers


def synthetic_media_args() -> list[str]:
    """ffmpeg output options that mark the video as synthetic in its container metadata: the
    standard comment tag and a custom `synthetic_media` key (MP4/MOV keep custom keys only with
    movflags use_metadata_tags, which the caller adds)."""
    key, value = SYNTHETIC_TAG
    return ["-metadata", f"comment={SYNTHETIC_COMMENT}", "-metadata", f"{key}={value}"]


def video_from_sequence(input_dir: str, output_file: str, reference_file: str | None = None, ext: str | None = None,
                        fps: float | None = None, bitrate: int | None = None, include_audio: bool = False,
                        lossless: bool = False, synthetic_marker: bool = True) -> Path:
    """Encode a frame sequence as a video; frame rate and audio come from the reference video.

    The video is tagged as synthetic media in its container metadata unless `synthetic_marker` is
    False (merged face swaps should say what they are)."""
    import ffmpeg  # ffmpeg-python, imported where used: the CLI's parser loads without it
    folder = require_dir(input_dir, "frame folder")
    out_path = Path(output_file)
    container = VIDEO_CONTAINERS.get(out_path.suffix.lower())
    if container is None:
        raise UserError(f"unsupported output type '{out_path.suffix}'; use one of {', '.join(VIDEO_CONTAINERS)}", out_path)
    ensure_writable_dir(out_path.parent)
    if ext:
        ext = "." + ext.lower().lstrip(".")
        images = [p for p in list_images(folder) if p.suffix.lower() == ext]
        if not images:
            raise UserError(f"no {ext} images in this folder", folder)
    else:
        images, ext = list_image_sequence(folder)
    codec = _PIPE_CODECS[ext]

    reference = probe(resolve_wildcard_ext(reference_file)) if reference_file else None
    if fps is None or fps <= 0:
        fps = float(reference.fps) if reference else interact.ask_float("Enter FPS", 25.0, (1, 1000))
    rate = fps_to_fraction(fps)
    if not lossless:
        bitrate = interact.pick(bitrate, lambda: interact.ask_int("Bitrate of output file in MB/s", 16, (1, 1000)))

    streams = [ffmpeg.input("pipe:", format="image2pipe", vcodec=codec, framerate=str(rate))]
    kwargs: dict = {"vcodec": "libx264", "r": str(rate), "f": container}
    if lossless:
        kwargs.update({"qp": 0, "pix_fmt": "yuv444p", "preset": "medium"})
    else:
        kwargs.update({"pix_fmt": "yuv420p", "video_bitrate": f"{bitrate}M"})
    if include_audio:
        if reference is None:
            raise UserError("--include-audio needs --reference-file (the video whose audio to copy)")
        if reference.has_audio:
            streams.append(ffmpeg.input(str(reference.path))["a:0"])
            kwargs.update({"acodec": "aac", "audio_bitrate": "192k", "ar": 48000})
        else:
            log.warning(f"{reference.path}: no audio track; writing a silent video")
    if container in ("mp4", "mov"):
        kwargs["movflags"] = "+faststart+use_metadata_tags" if synthetic_marker else "+faststart"

    log.info(f"Encoding {len(images)} frames from {folder} at {float(rate):.3f} fps to {out_path}")
    _remove_stale_partials(out_path)
    with atomic_path(out_path, keep_suffix=True) as tmp:
        args = ffmpeg.output(*streams, str(tmp), **kwargs).get_args()
        if synthetic_marker:
            args = args[:-1] + synthetic_media_args() + args[-1:]  # options go before the output name
        written = run_ffmpeg(args, path=folder, total_frames=len(images), desc="Encoding",
                             stdin_chunks=(p.read_bytes() for p in images))
        if written != len(images):
            raise UserError(f"ffmpeg encoded {written} of {len(images)} frames; {out_path.name} was not written", folder)
    log.info(f"Wrote {out_path}")
    return out_path

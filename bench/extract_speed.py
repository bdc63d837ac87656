"""Extraction speed, end to end: frames per second on a 720p synthetic one-face video.

Decode (extract-video), then `extract` (detect, landmarks, align, write) per detector and worker
count, plus the peak resident memory of the extract process tree. Prints figures; no pass/fail.

    .venv/bin/python -m bench.extract_speed [--seconds 8] [--workers 1 2] [--detectors centerface dlib-hog]
                                            [--tracks on off]

The frames are a video's (00001.png ...), so `extract` links faces into tracks by default; `--tracks on off`
times both modes on the same frames (3 seconds = 75 frames is the clip the track pass was measured on).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.synth_video import make_video_from_photo  # noqa: E402


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "main.py"), *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes so far: steadier than wall time on a
    shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--detectors", nargs="+", default=["centerface", "dlib-hog"])
    parser.add_argument("--tracks", nargs="+", choices=["on", "off"], default=["on"],
                        help="time extract with face tracks (the default for a video's frames) and/or --no-tracks")
    parser.add_argument("--photo", default=str(REPO / "tests/data/faces/grace_hopper.jpg"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = make_video_from_photo(args.photo, tmp / "clip.mp4", seconds=args.seconds, fps=25,
                                      frame_size=(1280, 720), audio_hz=None)
        n = video.frame_count
        t = _run(["videoed", "extract-video", "--input-file", str(video.path), "--output-dir", str(tmp / "frames"),
                  "--output-ext", "png", "--fps", "0"])
        print(f"decode to png: {n} frames 1280x720 in {t:.1f}s = {n / t:.1f} fps")
        for detector in args.detectors:
            for workers in args.workers:
                for tracks in args.tracks:
                    out = tmp / f"aligned_{detector}_{workers}_{tracks}"
                    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                    cpu = _cpu_seconds()
                    t = _run(["extract", "--input-dir", str(tmp / "frames"), "--output-dir", str(out),
                              "--detector", detector, "--face-type", "wf", "--image-size", "512",
                              "--workers", str(workers), "--force", "--tracks" if tracks == "on" else "--no-tracks"])
                    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                    cpu = _cpu_seconds() - cpu
                    faces = len(list(out.glob("*.jpg")))
                    print(f"extract {detector:10s} workers={workers} tracks={tracks:3s}: {n} frames in {t:.1f}s = "
                          f"{n / t:.2f} fps, {cpu:.1f} s CPU ({faces} faces), peak RSS of the largest process "
                          f"{max(peak, before) / 1024:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()

"""`demo`: a first run without any data of one's own.

Builds `workspace/data_src.mp4` and `workspace/data_dst.mp4` from bundled public-domain photos (two
different people; the destination has an audio track), then runs every stage: frames, faces, a small
model (SAEHD by default; `--model` picks AMP, Original, Quick96 or Reenact), a batch merge and the final
video, printing each command so the user learns the real commands. Re-running reuses what is already
there (the model continues to the target iteration).
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core import log
from core.errors import UserError
from core.synth_video import make_video_from_photo
from core.video import probe

REPO = Path(__file__).resolve().parent.parent
DEMO_PHOTOS = REPO / "tests" / "data" / "faces"
SRC_PHOTO = DEMO_PHOTOS / "obama.jpg"
DST_PHOTO = DEMO_PHOTOS / "biden.jpg"
DEMO_SECONDS = 4.0
DEMO_FPS = 25
DEMO_FRAME_SIZE = (640, 480)
DEMO_ITERATIONS = 1500  # a small SAEHD at 64 px: about 3-4 minutes on 2 CPU cores
# A small SAEHD: big enough to show a recognisable swap after a few minutes on a CPU.
DEMO_MODEL_OPTIONS = ["--resolution", "64", "--face-type", "f", "--archi", "df-ud", "--ae-dims", "128",
                      "--e-dims", "32", "--d-dims", "32", "--d-mask-dims", "16", "--batch-size", "8"]


@dataclass(frozen=True)
class DemoModel:
    """How the demo trains one model class: its option flags, default iterations and model name."""

    options: tuple[str, ...]
    iterations: int
    name: str  # --force-model-name: one name per class, so demos of several models share a workspace


DEMO_MODELS: dict[str, DemoModel] = {
    "SAEHD": DemoModel(tuple(DEMO_MODEL_OPTIONS), DEMO_ITERATIONS, "demo"),
    # Quick96 is fixed (96 px, batch 4): fewer, slower steps
    "Quick96": DemoModel((), 600, "demo_quick96"),
    # a small AMP at its smallest resolution; the morph factor stays the merger's default (0.75)
    "AMP": DemoModel(("--resolution", "64", "--face-type", "wf", "--ae-dims", "128", "--inter-dims", "256",
                      "--e-dims", "32", "--d-dims", "32", "--d-mask-dims", "16", "--batch-size", "8"), 1500, "demo_amp"),
    # the classic 64 px autoencoder at its defaults
    "Original": DemoModel(("--resolution", "64", "--face-type", "f", "--batch-size", "8"), 1500, "demo_original"),
    # 64 px and a narrow generator: about 0.4 s an iteration on 2 cores (the 128 px default is ten times slower)
    "Reenact": DemoModel(("--resolution", "64", "--g-dims", "16"), 1500, "demo_reenact"),
}


def _announce(*args: str) -> None:
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "main.py", *args])
    log.info(f"\n==> {command}")


def head_and_shoulders(photo: Path) -> tuple[float, float, float, float]:
    """The part of a portrait to film: the detected face, widened to show head and shoulders."""
    from core.image_io import read_image
    from facelib.detectors import detect
    faces = detect(read_image(photo))
    if not faces:
        raise UserError("no face found in a demo photo", photo)
    (cx, cy), side = faces[0].centre, max(faces[0].width, faces[0].height)
    return cx - 1.6 * side, cy - 1.0 * side, cx + 1.6 * side, cy + 1.4 * side


def _ensure_video(path: Path, photo: Path, audio_hz: float | None, seed: int) -> None:
    if path.exists():
        try:
            probe(path)
            log.info(f"Using existing {path}")
            return
        except Exception:
            log.warning(f"{path} is unreadable; making it again")
    log.info(f"Making {path.name} from {photo.name} (public domain, see tests/data/ORIGIN.md)")
    make_video_from_photo(photo, path, seconds=DEMO_SECONDS, fps=DEMO_FPS, frame_size=DEMO_FRAME_SIZE,
                          audio_hz=audio_hz, seed=seed, focus=head_and_shoulders(photo))


def run_demo(workspace: str, iterations: int | None = None, device_args: Sequence[str] = (),
             model: str = "SAEHD") -> Path:
    """Run every stage as a separate `main.py` command; `device_args` (--cpu-only, --force-gpu-idxs)
    go to each stage that computes (extract, train, merge, evaluate). `model`: one of DEMO_MODELS;
    `iterations` None: that model's default."""
    if model not in DEMO_MODELS:
        raise UserError(f"the demo trains one of {', '.join(DEMO_MODELS)}, not {model!r}")
    demo_model = DEMO_MODELS[model]
    iterations = demo_model.iterations if iterations is None else iterations
    ws = Path(workspace)
    device = list(device_args)
    ws.mkdir(parents=True, exist_ok=True)
    src_video, dst_video = ws / "data_src.mp4", ws / "data_dst.mp4"
    _ensure_video(src_video, SRC_PHOTO, None, seed=1)
    _ensure_video(dst_video, DST_PHOTO, 440.0, seed=2)

    def extract_args(side: str, debug: bool) -> list[str]:
        return ["extract", "--input-dir", str(ws / side), "--output-dir", str(ws / side / "aligned"),
                "--detector", "centerface", "--face-type", "wf", "--max-faces-from-image", "0",
                "--image-size", "512", "--jpeg-quality", "90", "--output-debug" if debug else "--no-output-debug",
                "--resume", *device]

    steps = [
        ["videoed", "extract-video", "--input-file", str(src_video), "--output-dir", str(ws / "data_src"),
         "--output-ext", "png", "--fps", "0"],
        ["videoed", "extract-video", "--input-file", str(dst_video), "--output-dir", str(ws / "data_dst"),
         "--output-ext", "png", "--fps", "0"],
        extract_args("data_src", debug=False),
        extract_args("data_dst", debug=True),
        ["train", "--training-data-src-dir", str(ws / "data_src" / "aligned"),
         "--training-data-dst-dir", str(ws / "data_dst" / "aligned"), "--model-dir", str(ws / "model"),
         "--model", model, "--force-model-name", demo_model.name, "--silent-start", "--no-preview",
         "--target-iteration", str(iterations), *demo_model.options, *device],
        ["merge", "--input-dir", str(ws / "data_dst"), "--output-dir", str(ws / "data_dst" / "merged"),
         "--output-mask-dir", str(ws / "data_dst" / "merged_mask"), "--aligned-dir", str(ws / "data_dst" / "aligned"),
         "--model-dir", str(ws / "model"), "--model", model, "--force-model-name", demo_model.name,
         "--no-interactive", *device],
        ["videoed", "video-from-sequence", "--input-dir", str(ws / "data_dst" / "merged"),
         "--output-file", str(ws / "result.mp4"), "--reference-file", str(dst_video), "--include-audio", "--bitrate", "16"],
        ["evaluate", "--workspace", str(ws), "--max-frames", "50", *device],
    ]
    for args in steps:  # run exactly the printed commands, as separate processes like the user would
        _announce(*args)
        if subprocess.run([sys.executable, str(REPO / "main.py"), *args], stdin=subprocess.DEVNULL).returncode != 0:
            raise UserError(f"demo step failed: main.py {' '.join(args[:2])} (see the message above)")
    result = ws / "result.mp4"
    info = probe(result)
    log.info(f"\nDemo finished: {result} ({info.width}x{info.height}, {float(info.fps):.2f} fps, "
             f"{'with' if info.has_audio else 'without'} audio)")
    return result

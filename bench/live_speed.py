"""Live speed: frames per second, per-stage milliseconds and capture-to-output latency of `live`.

    python bench/live_speed.py --model-dir M --model Quick96 [--model-dir M2 --model SAEHD ...]
    python bench/live_speed.py --make-models        # train Quick96 and SAEHD 128 (liae-ud, wf) for 1 iteration first
    python bench/live_speed.py                      # the stand-in model only (the pipeline without a network)

Input: a clip of a real face photo in motion (core.synth_video) at each size. Two runs per model and size:
- "file": every frame, as fast as the stages go (throughput: the fps a recorded video is swapped at);
- "camera": the clip delivered as a live source at 30 fps in real time (frames are dropped when the
  pipeline is busy): output fps, dropped frames and the capture-to-output latency a webcam user sees.
- "cpu-time": each step's CPU time per frame, one after the other, and the fps an idle 2-core machine
  would reach from it (see cpu_profile): the figure least disturbed by other load.
The window and the video writer are left out (a window costs ~1 ms a frame; the writer runs in ffmpeg's
own process). Per-stage ms are each stage's own time on a frame; since stages overlap on threads they
add up to more than 1000 / fps. The first WARMUP frames (graph tracing, model loading) are not counted.
On a shared machine fps moves with the other load; the per-stage ms move less.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
WARMUP = 10
STAGES = ("capture", "faces", "predict", "compose")


class CameraReplay:
    """A clip as a camera: frames at `fps` in real time, whether they are read or not (live: the pipeline drops)."""

    live = True
    video_path = None
    frame_count = None

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0):
        self.frames, self.fps, self.name = frames, fps, "camera replay"
        self.t0: float | None = None

    def read(self) -> np.ndarray | None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        k = int((time.perf_counter() - self.t0) * self.fps)
        if k >= len(self.frames):
            return None
        # a camera blocks until its next frame
        time.sleep(max(0.0, self.t0 + (k + 1) / self.fps - time.perf_counter()))
        return self.frames[min(k + 1, len(self.frames) - 1)].copy()

    def close(self) -> None:
        pass


class ListSource(CameraReplay):
    live = False

    def __init__(self, frames: list[np.ndarray]):
        self.frames, self.fps, self.name, self.k = frames, 25.0, "file", 0

    def read(self) -> np.ndarray | None:
        if self.k >= len(self.frames):
            return None
        self.k += 1
        return self.frames[self.k - 1].copy()


def clip(root: Path, size: tuple[int, int], seconds: float) -> list[np.ndarray]:
    import cv2

    from core.synth_video import make_video_from_photo
    path = root / f"live_{size[0]}x{size[1]}_{seconds:g}s.mp4"
    if not path.exists():
        make_video_from_photo(REPO / "tests/data/faces/obama.jpg", path, seconds=seconds, fps=25, frame_size=size,
                              audio_hz=None)
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def measure(frames: list[np.ndarray], predictor, camera: bool, detect_every: int, predict_every: int = 1) -> dict:
    from facelib.detectors import get_detector
    from mainscripts.live import DETECT_SIDE
    from merger.config import default_config
    from merger.live_pipeline import FaceTracker, LivePipeline, LiveSettings

    source = CameraReplay(frames) if camera else ListSource(frames)
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,), max_side=DETECT_SIDE), detect_every)
    pipe = LivePipeline(source, tracker, predictor, LiveSettings(default_config(predictor.default_mode)),
                        predict_every=predict_every).start()
    outs, t_out, lat = [], [], []
    for item in pipe.frames():
        now = time.perf_counter()
        outs.append(item)
        t_out.append(now)
        lat.append((now - item.t_capture) * 1000.0)
    pipe.stop()
    w = min(WARMUP, len(outs) // 3)  # a slow model on a camera gives few frames
    n = len(outs) - w
    span = t_out[-1] - t_out[w]
    return {"fps": round((n - 1) / span, 1) if span > 0 else 0.0, "frames_out": len(outs), "dropped": pipe.dropped,
            "latency_ms": round(float(np.median(lat[w:])), 0),
            **{f"{s}_ms": round(float(np.median([o.ms.get(s, 0.0) for o in outs[w:]])), 1) for s in STAGES},
            "faces_found": round(float(np.mean([len(o.landmarks) > 0 for o in outs])), 2)}


def cpu_profile(frames: list[np.ndarray], predictor, detect_every: int) -> dict:
    """Each step's CPU time per frame (process CPU, all threads: TensorFlow's own pool included), run one
    after the other in one thread. CPU time is what the other load on a shared machine disturbs least; an
    idle 2-core machine would run the overlapped pipeline at about 1000 / (sum / 2) fps (see estimate)."""
    from facelib.detectors import get_detector
    from mainscripts.live import DETECT_SIDE
    from merger.compose import compose_frame, crop_for_model
    from merger.config import default_config
    from merger.live_pipeline import FaceTracker, LiveFrame, LivePipeline, LiveSettings

    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,), max_side=DETECT_SIDE), detect_every)
    pipe = LivePipeline(ListSource([]), tracker, predictor, LiveSettings(default_config(predictor.default_mode)))
    cfg = default_config(predictor.default_mode)
    cpu: dict[str, list[float]] = {"detect": [], "track": [], "predict": [], "compose": []}
    for k, frame in enumerate(frames):
        t = time.process_time()
        lms, detected = tracker(frame)
        crops = [crop_for_model(frame, lm, pipe.spec.size, pipe.spec.face_type) for lm in lms]
        cpu["detect" if detected else "track"].append(time.process_time() - t)
        item = LiveFrame(k, frame, 0.0, lms, crops)
        t = time.process_time()
        pipe._predict(item)
        cpu["predict"].append(time.process_time() - t)
        t = time.process_time()
        compose_frame(frame, item.faces, cfg, pipe.spec.size, pipe.spec.face_type)
        cpu["compose"].append(time.process_time() - t)
    ms = {k: float(np.median(v[2:] if len(v) > 4 else v)) * 1000.0 if v else 0.0 for k, v in cpu.items()}
    faces = (ms["detect"] + (detect_every - 1) * ms["track"]) / detect_every
    def estimate(predict_every: int) -> float:
        # both cores busy (the model's own thread pool spreads its step over both), but no faster than the
        # single-threaded steps allow
        total = faces + ms["predict"] / predict_every + ms["compose"]
        return round(1000.0 / max(total / 2.0, faces, ms["compose"]), 1)
    return {**{f"cpu_{k}_ms": round(v, 1) for k, v in ms.items()}, "cpu_faces_per_frame_ms": round(faces, 1),
            "idle_2core_fps_estimate": estimate(1), "idle_2core_fps_estimate_predict_every_2": estimate(2)}


def load(model_dir: str | None, model: str | None):
    if model_dir is None:
        from tests.live_standin import standin
        return standin(128), "stand-in 128"
    from models.loader import load_predictor
    p = load_predictor(Path(model_dir), model)
    return p, f"{model} {p.resolution}"


def one(spec: dict) -> list[dict]:
    """All sizes and both modes for one model, in this process."""
    predictor, label = load(spec.get("model_dir"), spec.get("model"))
    root = Path(spec["root"])
    rows = []
    for name in spec["sizes"]:
        frames = clip(root, SIZES[name], spec["seconds"])
        rows.append({"model": label, "size": name, "mode": "cpu-time", **cpu_profile(frames[:40], predictor,
                                                                                    spec["detect_every"])})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        for camera in (False, True):
            r = measure(frames, predictor, camera, spec["detect_every"], spec["predict_every"])
            rows.append({"model": label, "size": name, "mode": "camera" if camera else "file", **r})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def make_models(root: Path) -> list[tuple[str, str]]:
    """Quick96 and SAEHD 128 liae-ud wf trained for one iteration (speed does not depend on training)."""
    from tests.facesets import extract_faces, make_frames
    faces = root / "faces"
    if not (faces / "aligned").is_dir():
        extract_faces(make_frames("obama.jpg", faces, count=8, frame_size=(640, 480)), faces / "aligned", size=256)
    made = []
    for name, extra in (("Quick96", []), ("SAEHD", ["--resolution", "128", "--archi", "liae-ud", "--face-type", "wf",
                                                     "--batch-size", "4"])):
        model_dir = root / f"model_{name}"
        if not list(model_dir.glob(f"*_{name}_state.npz")):
            subprocess.run([sys.executable, str(REPO / "main.py"), "train", "--training-data-src-dir",
                            str(faces / "aligned"), "--training-data-dst-dir", str(faces / "aligned"), "--model-dir",
                            str(model_dir), "--model", name, "--silent-start", "--no-preview", "--target-iteration", "1",
                            *extra], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        made.append((str(model_dir), name))
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", action="append", default=[])
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--make-models", action="store_true")
    ap.add_argument("--no-standin", action="store_true", help="skip the stand-in model")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--seconds", type=float, default=6.0, help="clip length (frames = 25 x seconds)")
    ap.add_argument("--detect-every", type=int, default=5)
    ap.add_argument("--predict-every", type=int, default=1, help="live's --predict-every for the file and camera runs")
    ap.add_argument("--workdir", default=None, help="keep clips and models here between runs")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one model's runs as JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    root = Path(args.workdir or Path(tempfile.gettempdir()) / "facekit_live_bench")
    root.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str | None, str | None]] = [] if args.no_standin else [(None, None)]
    models += list(zip(args.model_dir, args.model))
    if args.make_models:
        models += make_models(root)
    rows = []
    for model_dir, model in models:  # each model in a fresh process: no model's threads or memory left behind
        spec = {"model_dir": model_dir, "model": model, "root": str(root), "sizes": args.sizes,
                "seconds": args.seconds, "detect_every": args.detect_every, "predict_every": args.predict_every}
        out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], stdout=subprocess.PIPE,
                             text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    cols = ["model", "size", "mode", "fps", "latency_ms", "dropped", *[f"{s}_ms" for s in STAGES], "faces_found"]
    print(" | ".join(cols))
    for r in rows:
        if r["mode"] != "cpu-time":
            print(" | ".join(str(r[c]) for c in cols))
    print("\nCPU time per frame, steps run one after the other (ms):")
    for r in rows:
        if r["mode"] == "cpu-time":
            print(f"{r['model']} {r['size']}: " + ", ".join(f"{k[4:-3]} {v}" for k, v in r.items() if k.startswith("cpu_"))
                  + f"; idle 2-core estimate {r['idle_2core_fps_estimate']} fps "
                  f"({r['idle_2core_fps_estimate_predict_every_2']} with --predict-every 2)")


if __name__ == "__main__":
    main()

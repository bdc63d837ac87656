"""Live speed: frames per second, per-stage milliseconds and capture-to-output latency of `live`.

    python bench/live_speed.py --model-dir M --model Quick96 [--model-dir M2 --model SAEHD ...]
    python bench/live_speed.py --make-models        # Quick96 and SAEHD 128 (liae-ud, wf), fresh weights, saved first
    python bench/live_speed.py                      # the stand-in model only (the pipeline without a network)
    python bench/live_speed.py --make-models --runtime int8   # live's --runtime (keras, onnx, int8)
    KERAS_BACKEND=jax python bench/live_speed.py --model-only --models SAEHD256 Quick96 --json out.json

--model-only (for a GPU machine without TensorFlow, dlib or ffmpeg): an untrained model built in-process,
its predict call at batch 1 (live's) timed after a warm-up: latency per frame and the frames/s it allows;
and the steps that need no dlib at 1280x720 (align/warp of the crop, the merger's compositing), on the
photo's stored landmarks. A table, and JSON to --json.

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
# --model-only: class and options of each model (untrained: speed does not depend on the weights)
MODEL_ONLY = {"Quick96": ("Quick96", {}), "SAEHD128": ("SAEHD", {"resolution": 128, "archi": "liae-ud", "face_type": "wf"}),
              "SAEHD256": ("SAEHD", {"resolution": 256, "archi": "liae-ud", "face_type": "wf"})}
# the 68 landmarks (dlib) of tests/data/faces/obama.jpg, so that --model-only needs no dlib
PHOTO_LANDMARKS = np.array([
    372, 222, 375, 254, 378, 286, 385, 318, 395, 349, 413, 377, 435, 402, 461, 421, 493, 426, 525, 418, 552, 396, 575, 371,
    594, 343, 603, 313, 609, 282, 611, 251, 612, 221, 398, 209, 412, 191, 433, 183, 456, 184, 478, 188, 515, 188, 536, 181,
    558, 181, 580, 190, 592, 207, 496, 209, 496, 231, 496, 251, 496, 274, 464, 285, 479, 289, 495, 292, 511, 288, 527, 284,
    425, 217, 437, 211, 450, 210, 464, 217, 450, 218, 437, 219, 528, 216, 541, 209, 555, 210, 567, 217, 554, 218, 541, 217,
    434, 322, 453, 314, 477, 311, 495, 314, 512, 310, 535, 312, 554, 318, 536, 343, 514, 357, 496, 360, 477, 359, 454, 347,
    440, 324, 477, 319, 495, 321, 512, 318, 549, 320, 513, 341, 495, 344, 477, 342], np.float64).reshape(68, 2)
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


def load(model_dir: str | None, model: str | None, runtime: str = "keras"):
    if model_dir is None:
        from tests.live_standin import standin
        return standin(128), "stand-in 128"
    from mainscripts.live import with_runtime
    from models.loader import load_predictor
    p = with_runtime(load_predictor(Path(model_dir), model), runtime)
    return p, f"{model} {p.resolution} {runtime}"


def build_untrained(name: str, folder: Path, save: bool = False):
    """A MODEL_ONLY model with fresh weights, in inference mode (saved when `save`: the ONNX cache keys on it)."""
    from models.loader import model_class
    from models.model_files import ModelFiles
    class_name, overrides = MODEL_ONLY[name]
    cls = model_class(class_name)
    options: dict = {}
    for opt in cls.OPTIONS:
        options[opt.key] = opt.default_for(options)
    options.update(overrides)
    model = cls(ModelFiles(folder, name.lower(), class_name), options, training=False)
    if save:
        model.save()
    return model


def frame_of_photo(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo scaled into a `size` frame (its face a third of the frame's height) and the face's landmarks there."""
    import cv2
    photo = cv2.imread(str(REPO / "tests/data/faces/obama.jpg"))
    w, h = size
    face_h = PHOTO_LANDMARKS[:, 1].max() - PHOTO_LANDMARKS[:, 1].min()
    scale = h / 3.0 / face_h
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lm = PHOTO_LANDMARKS * scale
    frame = np.zeros((h, w, 3), np.uint8)
    ox = int(w / 2 - lm[:, 0].mean())
    oy = int(h / 2 - lm[:, 1].mean())
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(w, ox + small.shape[1]), min(h, oy + small.shape[0])
    frame[y0:y1, x0:x1] = small[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return frame, lm + (ox, oy)


def model_only(names: list[str], size_name: str, frames: int, warmup: int, runtime: str,
               precision: str = "auto") -> list[dict]:
    """Each model's predict at batch 1, and align + compositing at `size_name`, timed one after the other."""
    from core import keras_backend as kb
    kb.prepare(precision)
    from merger.compose import FacePrediction, compose_frame, crop_for_model
    from merger.config import default_config
    frame, lm = frame_of_photo(SIZES[size_name])
    backend = kb.backend_name()
    device = "gpu" if kb.accelerator_count() else "cpu"
    if backend == "jax":
        import jax
        device = str(jax.devices()[0])
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix="live-model-only-") as tmp:
            t0 = time.perf_counter()
            model = build_untrained(name, Path(tmp), save=runtime != "keras")
            build_s = time.perf_counter() - t0
            predictor = model
            if runtime != "keras":
                from mainscripts.live import with_runtime
                predictor = with_runtime(model, runtime)
            R, ft = int(model.resolution), model.face_type
            cfg = default_config(getattr(model, "default_mode", None))
            align_ms, predict_ms, compose_ms = [], [], []
            t0 = time.perf_counter()
            for k in range(warmup + frames):
                a = time.perf_counter()
                crop = crop_for_model(frame, lm, R, ft)
                b = time.perf_counter()
                pred = predictor.predict(crop[None])
                c = time.perf_counter()
                face = FacePrediction(lm, np.asarray(pred.face[0], np.float32), np.asarray(pred.src_mask[0], np.float32),
                                      np.asarray(pred.dst_mask[0], np.float32))
                compose_frame(frame, [face], cfg, R, ft)
                d = time.perf_counter()
                if k == warmup - 1 or (warmup == 0 and k == 0):
                    first_s = d - t0  # build + compile + the warm-up frames
                if k >= warmup:
                    align_ms.append((b - a) * 1000)
                    predict_ms.append((c - b) * 1000)
                    compose_ms.append((d - c) * 1000)
        med = float(np.median(predict_ms))
        row = {"model": name, "resolution": R, "runtime": runtime, "backend": backend, "device": device,
               "precision": kb.precision_name(), "frames": frames, "size": size_name,
               "predict_ms_median": round(med, 2), "predict_ms_p90": round(float(np.percentile(predict_ms, 90)), 2),
               "predict_fps": round(1000.0 / med, 1) if med > 0 else 0.0,
               "align_ms": round(float(np.median(align_ms)), 2), "compose_ms": round(float(np.median(compose_ms)), 2),
               "serial_fps": round(1000.0 / (med + float(np.median(align_ms)) + float(np.median(compose_ms))), 1),
               "build_s": round(build_s, 1), "warmup_s": round(first_s, 1)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def one(spec: dict) -> list[dict]:
    """All sizes and both modes for one model, in this process."""
    predictor, label = load(spec.get("model_dir"), spec.get("model"), spec.get("runtime", "keras"))
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
    """Quick96 and SAEHD 128 (liae-ud, wf) with fresh weights, saved (speed does not depend on training)."""
    made = []
    for name in ("Quick96", "SAEHD128"):
        class_name = MODEL_ONLY[name][0]
        model_dir = root / f"model_{name}"
        if not list(model_dir.glob(f"*_{class_name}_state.npz")):
            model_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, __file__, "--save-untrained", name, str(model_dir)], check=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        made.append((str(model_dir), class_name))
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
    ap.add_argument("--runtime", default="keras", choices=("keras", "onnx", "int8"), help="live's --runtime for the models")
    ap.add_argument("--model-only", action="store_true", help="the models' predict call and the dlib-free steps only "
                    "(untrained models built here; no TensorFlow, dlib or ffmpeg needed with KERAS_BACKEND=jax/torch)")
    ap.add_argument("--models", nargs="+", default=["Quick96", "SAEHD256"], choices=list(MODEL_ONLY),
                    help="--model-only's models")
    ap.add_argument("--frames", type=int, default=50, help="--model-only: frames timed per model")
    ap.add_argument("--warmup", type=int, default=5, help="--model-only: frames run first, not timed")
    ap.add_argument("--json", default=None, help="--model-only: write the rows here as JSON")
    ap.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                    help="--model-only: the Keras dtype policy")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one model's runs as JSON
    ap.add_argument("--save-untrained", nargs=2, default=None, help=argparse.SUPPRESS)  # internal: NAME FOLDER
    args = ap.parse_args()
    if args.save_untrained:
        from core import keras_backend as kb
        kb.prepare("auto")
        build_untrained(args.save_untrained[0], Path(args.save_untrained[1]), save=True)
        return
    if args.model_only:
        rows = [r for size in args.sizes[-1:] for r in model_only(args.models, size, args.frames, args.warmup,
                                                                 args.runtime, args.precision)]
        cols = ["model", "resolution", "runtime", "device", "precision", "predict_ms_median", "predict_ms_p90",
                "predict_fps", "align_ms", "compose_ms", "serial_fps", "warmup_s"]
        print(" | ".join(cols))
        for r in rows:
            print(" | ".join(str(r[c]) for c in cols))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
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
                "seconds": args.seconds, "detect_every": args.detect_every, "predict_every": args.predict_every,
                "runtime": args.runtime if model_dir else "keras"}
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

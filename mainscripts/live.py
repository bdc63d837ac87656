"""`live`: swap faces in real time from a camera, a video file, an image folder or a stream URL.

Orchestration only: check everything that can be checked before a model loads (the input opens, a
display for the window, pyvirtualcam when asked for, the merge config file), load the model (a
trained model folder, run by Keras or, converted once and cached, by onnxruntime (--runtime, see
models.onnx_cache); or a DeepFaceLive .dfm), then run merger.live_pipeline and hand each merged
frame to the window, the output video (core.frame_sink, with the input's audio and the
synthetic-media marker of `video-from-sequence`) and the virtual camera. Ctrl+C (or SIGTERM, see
core.termination) ends like Esc: the stages stop and the output video is finished.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from core import log
from core.errors import UserError
from core.settings import Option, resolve
from facelib.face_type import SHORT_NAMES, FaceType

PRINT_EVERY_S = 2.0
DETECT_SIDE = 384  # the detector works on the frame shrunk to this longest side (as extract does at 640)
RUNTIMES = ("auto", "keras", "onnx", "int8")

LIVE_OPTIONS: tuple[Option, ...] = (
    Option("input", "0", "What to swap: a camera index (0 is the first camera), a video file, an image folder or "
           "a stream URL (rtsp://, http://...).", "Input (camera index, video file, image folder or URL)"),
    Option("output", "", "Also write the swapped stream to this video file (.mp4/.mov/.mkv/.avi); a file input's "
           "audio goes with it. Empty: no file.", "Output video file (empty: none)"),
    Option("window", True, "Show the swapped stream in a window with the merger's keys.", "Show a window?", "bool",
           switch=True, negative="--no-window", negative_help="no window (servers, scripts, tests)"),
    Option("virtual_camera", False, "Send the swapped stream to a virtual camera (needs the optional package "
           "pyvirtualcam and a virtual camera driver).", "Send to a virtual camera?", "bool", switch=True),
    Option("detect_every", 5, "Run the full face detector every N frames and track the faces from their landmarks "
           "in between (1: detect every frame).", "Detect faces every N frames", "int", valid_range=(1, 60)),
    Option("predict_every", 1, "Run the model on every Nth frame only; the frames between reuse its face at their "
           "own landmarks (the face follows the head at once, its expression lags up to N-1 frames): about N times "
           "less model time, for a CPU that cannot run the model on every frame. 1: every frame.",
           "Run the model every N frames", "int", valid_range=(1, 4)),
    Option("max_faces", 1, "Swap at most this many faces per frame (the largest).", "Faces per frame", "int",
           valid_range=(1, 8)),
    Option("smooth", True, "Smooth the landmarks with a causal One-Euro filter (less jitter, under a third of a "
           "frame of lag on a moving face; see facelib/one_euro.py).", "Smooth landmarks?", "bool", switch=True),
    Option("realtime", False, "Read a video file or folder at its frame rate, as a camera would deliver it, instead "
           "of as fast as the machine goes (every frame is kept either way).", "Play files in real time?", "bool",
           switch=True),
    Option("detector", "centerface", "Face detector.", "Face detector", choices=("centerface", "dlib-hog")),
    Option("runtime", "auto", "What runs the model: keras; onnx (onnxruntime on the same weights, converted once "
           "and cached beside the model: faster on a CPU, the same faces); int8 (onnxruntime with 8-bit convolutions: "
           "about 2x faster again on a CPU, faces within ~2e-3 of float32 on average); auto: on a machine without a "
           "GPU, int8 when its faces come within 40 dB PSNR of the Keras model's on the model's own faces (kept in "
           "its state), else onnx, where they can run (the TensorFlow backend, onnxruntime installed, a model with "
           "an ONNX export); keras on a GPU. A .dfm always runs on onnxruntime.", "Model runtime", choices=RUNTIMES),
    Option("xseg_model_dir", "", "Folder of the XSeg model for the XSeg mask modes (default: the model folder, "
           "where DFL keeps it); loaded when a mask mode needs it.", "XSeg model folder (empty: the model folder)"),
    Option("dfm_face_type", "wf", "Face type of a .dfm model that does not record its own.", "Face type of the .dfm",
           choices=SHORT_NAMES),
)


@dataclass
class LiveSummary:
    frames_in: int
    frames_out: int
    dropped: int
    figures: dict
    output: Path | None


def load_model(model_dir: str, model_class: str | None, model_name: str | None, dfm_face_type: str,
               runtime: str = "keras"):
    """A trained model folder through models.loader (run by `runtime`, see with_runtime), or a .dfm file
    through models.dfm_predictor."""
    path = Path(model_dir)
    if path.suffix.lower() == ".dfm":
        if not path.is_file():
            raise UserError("model file not found", path)
        from models.dfm_predictor import load_dfm_predictor  # onnxruntime: only for .dfm models
        return load_dfm_predictor(path, FaceType.from_string(dfm_face_type), spin=False)
    if not model_class:
        model_class, model_name = newest_face_model(path, model_name)
    from models.loader import load_predictor  # Keras: imported only now
    return with_runtime(load_predictor(path, model_class, model_name), runtime)


def with_runtime(model, runtime: str):
    """The Keras model, or the same model on onnxruntime (models.onnx_cache): `onnx`/`int8` must work (a
    UserError naming the model otherwise); `auto` takes onnx when it can and says why not when it cannot."""
    if runtime == "keras":
        return model
    if runtime == "auto" and getattr(model, "export_model", None) is not None:
        from core import keras_backend as kb
        if kb.accelerator_count():
            log.info("Model runtime: keras (on the GPU)")
            return model
    try:
        import onnxruntime  # noqa: F401 - an optional dependency for Keras models
    except ImportError:
        if runtime != "auto":
            raise UserError(f"--runtime {runtime} needs onnxruntime (pip install onnxruntime)") from None
        log.info("Model runtime: keras (onnxruntime is not installed)")
        return model
    from models.onnx_cache import CacheError, onnx_predictor
    if runtime == "auto":
        faithful = _faithful_int8(model)
        if faithful is not None:
            return faithful
    try:
        predictor = onnx_predictor(model, "int8" if runtime == "int8" else "fp32")
    except CacheError as e:
        if runtime != "auto":
            raise UserError(f"--runtime {runtime}: {e}", model.files.state) from None
        log.info(f"Model runtime: keras ({e})")
        return model
    log.info(f"Model runtime: onnxruntime {'int8' if runtime == 'int8' else 'float32'} (max difference to Keras "
             f"{predictor.max_abs_diff:.1e} on {_probe_kind(model)})")
    return predictor


AUTO_INT8_MAX_RMS = 0.01  # auto takes int8 when its faces are within this RMS of Keras' (40 dB PSNR) on the model's own


def _faithful_int8(model):
    """For `auto` on a CPU: the int8 predictor when it reproduces the Keras model on the model's own preview
    faces (real faces kept in its state) within AUTO_INT8_MAX_RMS, else None (float32 is taken). Measured on
    a trained Quick96 and 50 real dst faces: RMS difference 0.003 (50.8 dB), mean 0.0023, at half the CPU time."""
    from models.onnx_cache import CacheError, has_real_probe, onnx_predictor
    if not has_real_probe(model):
        return None  # nothing real to check it on (an untrained or imported model without previews)
    try:
        predictor = onnx_predictor(model, "int8")
    except CacheError as e:  # the float32 attempt that follows says why, if it fails too
        log.debug(f"int8 cannot be made ({e}); trying float32")
        return None
    psnr = _psnr(predictor.rms_diff)
    if predictor.rms_diff > AUTO_INT8_MAX_RMS:
        log.info(f"Model runtime: int8 reaches PSNR {psnr:.1f} dB against the Keras model on its own preview faces "
                 f"(under {_psnr(AUTO_INT8_MAX_RMS):.0f} dB); taking float32")
        return None
    log.info(f"Model runtime: onnxruntime int8 (PSNR {psnr:.1f} dB against the Keras model on its own preview "
             f"faces, max difference {predictor.max_abs_diff:.1e}; --runtime onnx for float32)")
    return predictor


def _psnr(rms: float) -> float:
    import math
    return 20.0 * math.log10(1.0 / max(rms, 1e-6))


def _probe_kind(model) -> str:
    from models.onnx_cache import has_real_probe
    return "the model's own faces" if has_real_probe(model) else "probe faces"


def newest_face_model(folder: Path, name: str | None) -> tuple[str, str]:
    """Without --model: the most recently saved face-swapping model of the folder (any class; the XSeg
    model beside it does not count), or the one named `name`."""
    from models.loader import MODEL_NAMES
    from models.model_files import SEGMENTATION_CLASSES, saved_models
    if not folder.is_dir():
        raise UserError("model folder not found", folder)
    found = [(n, c) for n, c in saved_models(folder)
             if c in MODEL_NAMES and c not in SEGMENTATION_CLASSES and (name is None or n == name)]
    if not found:
        raise UserError("no trained face model in this folder" + (f" named {name!r}" if name else "")
                        + " (train one first, or give a .dfm file)", folder)
    log.info(f"Using {found[0][1]} model {found[0][0]!r}, the most recently saved (choose with --model / --force-model-name)")
    return found[0][1], found[0][0]


def default_save_path(model_dir: str) -> Path:
    """Where Enter saves the settings: beside the model."""
    path = Path(model_dir)
    if path.suffix.lower() == ".dfm":
        return path.with_name(f"{path.stem}_merge_config.json")
    return path / "live_merge_config.json"


def xseg_folder(model_dir: str, given: str) -> Path:
    """Where the XSeg model is: --xseg-model-dir, else the model folder (DFL keeps it there), else a .dfm's folder."""
    if given:
        return Path(given)
    path = Path(model_dir)
    return path.parent if path.suffix.lower() == ".dfm" else path


def live(model_dir: str, model_class: str | None = None, settings: Mapping[str, Any] | None = None,
         config_path: str | None = None, save_config_path: str | None = None, model_name: str | None = None,
         predictor=None, max_frames: int | None = None, xseg=None) -> LiveSummary:
    """Run the live swap until the input ends, Esc, or Ctrl+C. `settings`: the command line's LIVE_OPTIONS
    values (asked on a terminal when missing, else their defaults); `predictor` skips loading a model, `xseg`
    (a merger.xseg_masks.Masker) loading the XSeg model."""
    opts = resolve(LIVE_OPTIONS, None, dict(settings or {}), ask_overrides=False)
    from core.frame_sink import require_pyvirtualcam
    from core.frame_source import open_source
    from merger.config import load_config

    if opts["virtual_camera"]:
        require_pyvirtualcam()
    if opts["window"]:
        from core.display import display_problem
        problem = display_problem()
        if problem is not None:
            raise UserError(f"the live window needs a display ({problem}); run with --no-window "
                            f"(and --output FILE or --virtual-camera)")
    xseg_dir = xseg_folder(model_dir, opts["xseg_model_dir"])
    if config_path:  # a bad file is an error before anything opens
        from merger.xseg_masks import needs_xseg
        mask_mode = load_config(config_path).mask_mode
        if needs_xseg(mask_mode) and xseg is None:
            from mainscripts.merger_cli import check_xseg_model
            check_xseg_model(xseg_dir, f"mask mode {mask_mode} of {config_path}")
    source = open_source(opts["input"])
    try:
        return _run(source, opts, model_dir, model_class, model_name, predictor, config_path, save_config_path,
                    max_frames, xseg_dir, xseg)
    finally:
        source.close()


def _run(source, opts: dict, model_dir: str, model_class: str | None, model_name: str | None, predictor,
         config_path: str | None, save_config_path: str | None, max_frames: int | None, xseg_dir: Path,
         xseg) -> LiveSummary:
    from core.frame_sink import VideoSink, VirtualCamera
    from facelib.detectors import get_detector
    from mainscripts.video_ed import synthetic_media_args
    from merger.config import default_config, load_config
    from merger.live_pipeline import FaceTracker, LivePipeline, LiveSettings, LiveStats, SharedMasker
    from merger.xseg_masks import LazyMasker, needs_xseg

    how = "live: frames are dropped rather than fall behind" if source.live else "every frame, in order"
    log.info(f"Input: {source.name} ({how}, {source.fps:.2f} fps)")
    if predictor is None:
        predictor = load_model(model_dir, model_class, model_name, opts["dfm_face_type"], opts["runtime"])
    log.info(f"Model: {getattr(predictor, 'resolution', '?')} px, {FaceType(predictor.face_type).long_name}")
    base = default_config(getattr(predictor, "default_mode", None), getattr(predictor, "default_mask_mode", None))
    morph = bool(getattr(predictor, "has_morph", False))
    cfg = load_config(config_path, base) if config_path else base
    live_settings = LiveSettings(cfg)

    def load_xseg():
        if xseg is not None:
            return xseg
        from mainscripts.merger_cli import load_xseg_model
        return load_xseg_model(xseg_dir, "the XSeg mask modes")
    masker = SharedMasker(LazyMasker(load_xseg))  # loaded when a mask mode needs it, once
    if needs_xseg(cfg.mask_mode) and masker.get() is None:
        raise UserError(f"mask mode {cfg.mask_mode}: {masker.problem}")
    # Upright faces only (a camera is upright; the rotation search would cost 4x on frames without a face),
    # found on the frame shrunk to DETECT_SIDE: faces in front of a camera are large.
    detector = get_detector(opts["detector"], max_faces=opts["max_faces"], rotations=(0,), max_side=DETECT_SIDE)
    tracker = FaceTracker(detector, opts["detect_every"], opts["max_faces"], opts["smooth"])

    sinks: list = []
    video = None
    if opts["output"]:
        video = VideoSink(opts["output"], source.fps, audio_from=source.video_path, metadata_args=synthetic_media_args())
        sinks.append(video)
    if opts["virtual_camera"]:
        sinks.append(VirtualCamera(source.fps))
    window = None
    if opts["window"]:
        from merger.live_window import LiveWindow
        window = LiveWindow(live_settings, Path(save_config_path) if save_config_path else default_save_path(model_dir),
                            getattr(predictor, "default_mode", "overlay"), morph, masker.usable)

    pipeline = LivePipeline(source, tracker, predictor, live_settings, realtime=opts["realtime"],
                            max_frames=max_frames, predict_every=opts["predict_every"], xseg=masker).start()
    stats = LiveStats()
    out_frames, last_print, last_cfg = 0, time.perf_counter(), cfg
    log.info("Settings:\n" + cfg.describe(morph=morph) + ("\nTab in the window shows the keys; Esc ends." if window else
                                               "\nCtrl+C ends."))
    interrupted = False
    try:
        for item in pipeline.frames(poll=window.poll if window else None):
            if item.cfg is not None and item.cfg != last_cfg:
                log.info(f"Frame {item.index + 1}: settings changed: {_changes(last_cfg, item.cfg)}")
                last_cfg = item.cfg
            for sink in sinks:
                sink.write(fit_to(item.image, item.frame.shape))
            stats.add(item)
            out_frames += 1
            if window is not None:
                window.show(item.image, stats, len(item.faces))
                if window.quit:
                    break
            now = time.perf_counter()
            if now - last_print >= PRINT_EVERY_S:
                log.info(f"Live: {stats.line()}")
                last_print = now
    except KeyboardInterrupt:
        interrupted = True
        log.info("Stopping (Ctrl+C)" + (f": finishing {video.path}" if video is not None and video.frames else ""))
    finally:
        pipeline.stop()
        if pipeline.alive:
            log.warning(f"stages still busy after stopping: {', '.join(pipeline.alive)}")
        if window is not None:
            window.close()
        written = None
        for sink in sinks:
            result = sink.close()
            if sink is video:
                written = result
    figures = stats.summary()
    log.info(f"Live: {pipeline.read} frames in, {out_frames} out ({pipeline.dropped} dropped), "
             f"{figures['fps']:.1f} fps, latency {figures['latency_ms']:.0f} ms, ms per frame: "
             + " ".join(f"{s} {figures[s + '_ms']:.0f}" for s in ("capture", "faces", "predict", "compose"))
             + (f" (of which xseg {figures['xseg_ms']:.0f})" if "xseg_ms" in figures else "")
             + f", {tracker.detections} full detections, {pipeline.predictions} model runs")
    if written is not None:
        log.info(f"Wrote {written} ({video.frames} frames{', with the input audio' if source.video_path else ''})")
    if interrupted:
        log.info("Stopped by Ctrl+C")
    return LiveSummary(pipeline.read, out_frames, pipeline.dropped, figures, written)


def fit_to(image, shape):
    """`image` on a black frame of `shape`, scaled to fit: raw-predict mode's R x R face in a video that keeps the
    input's size (every other mode already has it)."""
    import cv2
    import numpy as np
    if image.shape == shape:
        return image
    h, w = shape[:2]
    scale = min(w / image.shape[1], h / image.shape[0])
    iw, ih = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
    out = np.zeros(shape, np.uint8)
    y, x = (h - ih) // 2, (w - iw) // 2
    out[y:y + ih, x:x + iw] = cv2.resize(image, (iw, ih), interpolation=cv2.INTER_LINEAR).reshape(ih, iw, -1)
    return out


def _changes(old, new) -> str:
    a, b = old.to_dict(), new.to_dict()
    return ", ".join(f"{k} {b[k]}" for k in b if a.get(k) != b[k]) or "none"

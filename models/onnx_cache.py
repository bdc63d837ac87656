"""A trained Keras model as an onnxruntime predictor for live use, converted once and cached beside the model.

Why: at batch 1 on a CPU, onnxruntime runs our models faster than Keras' compiled call (Quick96 on one AVX2
core: 126 ms against ~190 ms of CPU), and its int8 variant (models.export_onnx.quantize_int8) halves that
again; live needs every millisecond. The conversion (models.export_onnx, TensorFlow backend, ~10 s for
Quick96) runs once: the graph is written, atomically, to `<name>_<Class>_live_<variant>.onnx` next to the
model's state file, keyed by that file's size and modification time (a newer save rebuilds it).

The cache file is untrusted input like any .dfm (someone else's folder): it is read through
models.dfm_predictor (size bounded, one self-contained ONNX graph, DeepFaceLive's signature, finite outputs
of the right shapes), its key must match, and its outputs must match the Keras model's on probe faces
within the variant's tolerance; otherwise it is rebuilt.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from core import log
from core.errors import UserError
from core.fileio import atomic_write_bytes

VARIANTS = ("fp32", "int8")
TOLERANCE = {"fp32": 1e-3, "int8": 0.25}  # max |onnxruntime - Keras| on the probe faces (measured: 1e-7; ~0.01)
META_KEY = "facekit.live_cache_key"
CACHE_FORMAT = 2  # 2: int8 calibrated on the model's preview faces
PROBE_FACES = 2
PREVIEW_FACES_MAX = 8  # per side: a state from someone else's folder may hold any number


class CacheError(RuntimeError):
    """The model cannot run through onnxruntime (no exporter for it, conversion failed); the message says why."""


def cache_path(model: Any, variant: str) -> Path:
    return Path(model.files.state).with_name(f"{model.files.prefix}_live_{variant}.onnx")


def cache_key(model: Any, variant: str) -> str:
    """What the cached graph was made from: the state file's identity, the variant, onnxruntime's version."""
    import onnxruntime as ort
    st = Path(model.files.state).stat()
    return (f"format {CACHE_FORMAT}; {model.files.prefix}; {st.st_size} bytes; mtime_ns {st.st_mtime_ns}; "
            f"iteration {model.iteration}; {variant}; onnxruntime {ort.__version__}")


def onnx_predictor(model: Any, variant: str = "fp32", threads: int | None = None, spin: bool = False) -> Any:
    """A models.dfm_predictor.DfmPredictor running `model` (a loaded SwapAutoencoder or AMP) through onnxruntime,
    from the cache when it is valid, else converted now and cached. Raises CacheError when the model cannot be
    converted (the caller falls back to Keras or says so)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if getattr(model, "export_model", None) is None:
        raise CacheError(f"{type(model).__name__} models have no ONNX export")
    import keras
    if keras.backend.backend() != "tensorflow":
        raise CacheError("the ONNX conversion runs on the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    path, key = cache_path(model, variant), cache_key(model, variant)
    probe = _probe(model)
    want = _keras_outputs(model, probe)
    predictor = _cached(path, key, model, variant, probe, want, threads, spin)
    if predictor is None:
        start = time.perf_counter()
        data = _convert(model, variant, key)
        atomic_write_bytes(path, data)
        predictor = _checked(path, model, variant, probe, want, threads, spin)
        if predictor is None:
            raise CacheError(f"the converted graph's outputs differ from the model's (see {path.name})")
        log.info(f"Converted the model for onnxruntime ({variant}) in {time.perf_counter() - start:.1f} s; cached as "
                 f"{path.name}")
    for attr in ("default_mode", "default_mask_mode", "iteration"):  # what the merger reads of the Keras model
        if hasattr(model, attr):
            setattr(predictor, attr, getattr(model, attr))
    predictor.name = f"{model.files.name} ({variant} onnxruntime)"
    return predictor


def _probe(model: Any) -> np.ndarray:
    """Stable inputs for comparing the two runtimes: the model's own preview faces (real dst and src faces the
    trainer keeps in the state) when it has them, else smooth random faces (low-frequency colour fields)."""
    import cv2
    R = int(model.resolution)
    real = _preview_faces(model)
    if len(real):
        return real[:: max(1, len(real) // PROBE_FACES)][:PROBE_FACES]
    rng = np.random.default_rng(0)
    small = rng.uniform(0.15, 0.85, (PROBE_FACES, 6, 6, 3)).astype(np.float32)
    return np.stack([cv2.resize(s, (R, R), interpolation=cv2.INTER_CUBIC) for s in small]).clip(0, 1)


def has_real_probe(model: Any) -> bool:
    """Whether the model's state holds real faces to check a runtime on (its preview samples)."""
    return len(_preview_faces(model)) > 0


def _preview_faces(model: Any) -> np.ndarray:
    """The real faces a model's state holds (its fixed preview samples: dst first, then src), float32 0..1,
    (N, R, R, 3); empty when it holds none of the model's resolution."""
    stored = getattr(model, "preview_samples", None) or {}
    sides = (stored.get(k) for k in ("dst_face", "src_face"))
    faces = [np.asarray(f)[:PREVIEW_FACES_MAX] for f in sides if f is not None]
    if faces:
        R = int(model.resolution)
        faces = [f for f in faces if f.ndim == 4 and f.shape[1:] == (R, R, 3) and f.dtype == np.uint8]
    if not faces:
        return np.zeros((0, 1, 1, 3), np.float32)
    return np.concatenate(faces).astype(np.float32) / 255.0


def _keras_outputs(model: Any, faces: np.ndarray) -> np.ndarray:
    """The Keras model's swapped faces (morph at DeepFaceLive's default for AMP, as the ONNX graph's probe uses)."""
    from models.dfm_contract import DEFAULT_MORPH
    extra = {"morph": DEFAULT_MORPH} if getattr(model, "has_morph", False) else {}
    return np.asarray(model.predict(faces, **extra).face, np.float32)


def _cached(path: Path, key: str, model: Any, variant: str, probe: np.ndarray, want: np.ndarray,
            threads: int | None, spin: bool) -> Any:
    """The cached predictor when the file exists, is a valid graph made from this very state, and agrees."""
    if not path.is_file():
        return None
    from models.dfm_predictor import read_dfm
    try:
        _, meta = read_dfm(path)
    except UserError as e:
        log.warning(f"ignoring the live model cache: {e}")
        return None
    if meta.get(META_KEY) != key:
        log.info(f"{path.name} was made from another save of the model: converting again")
        return None
    try:
        return _checked(path, model, variant, probe, want, threads, spin)
    except UserError as e:
        log.warning(f"ignoring the live model cache: {e}")
        return None


def _checked(path: Path, model: Any, variant: str, probe: np.ndarray, want: np.ndarray, threads: int | None,
             spin: bool) -> Any:
    """Load `path` as a .dfm (all its checks) and compare it with Keras on `probe`; None when they differ."""
    from models.dfm_predictor import dfm_from_bytes, read_dfm
    data, meta = read_dfm(path)
    predictor = dfm_from_bytes(path, data, meta, model.face_type, threads=threads, spin=spin, announce=False)
    got = predictor.predict(probe).face
    diff = float(np.max(np.abs(got - want)))
    predictor.max_abs_diff = diff
    predictor.rms_diff = float(np.sqrt(np.mean(np.square(got - want))))  # what the eye sees: 0.01 = 40 dB PSNR
    if not np.isfinite(diff) or diff > TOLERANCE[variant]:
        log.warning(f"{path.name}: onnxruntime's faces differ from Keras' by {diff:.3g} (more than "
                    f"{TOLERANCE[variant]:g})")
        return None
    log.debug(f"{path.name}: max |onnxruntime - Keras| {diff:.2e} on {len(probe)} probe faces")
    return predictor


def _convert(model: Any, variant: str, key: str) -> bytes:
    """The model as DeepFaceLive-signature ONNX bytes (the exporter's converter), int8 when asked."""
    from models import dfm_contract as C
    from models import export_onnx as X
    res = int(model.resolution)
    keras_model = model.export_model()
    inputs = [X.TensorSpec(C.IN_FACE, (None, res, res, 3))]
    if len(keras_model.inputs) == 2:  # AMP: the morph factor, one value for the batch
        keras_model = X.with_morph_vector(keras_model)
        inputs.append(X.TensorSpec(C.MORPH_VALUE, (1,)))
    meta = {C.META_FACE_TYPE: model.face_type.short_name or C.DFL_DEFAULT_FACE_TYPE,
            C.META_MODEL_CLASS: model.files.class_name, C.META_MODEL_NAME: model.files.name,
            C.META_ITERATION: str(model.iteration), META_KEY: key}
    try:
        proto = X.keras_to_onnx(keras_model, inputs, C.OUTPUTS, C.DFM_OPSET)
        X.set_metadata(proto, meta)
        if variant == "int8":
            proto = X.quantize_int8(proto, _calibration(model, len(inputs) == 2))
        return X.serialize(proto)
    except X.ExportError as e:
        raise CacheError(str(e)) from e


def _calibration(model: Any, morph: bool, rounds: int = 3, faces: int = 4) -> list[dict[str, np.ndarray]]:
    """Inputs for the int8 activation ranges. A trained model's real preview faces (and their mirror images)
    when the state holds them: the activations of the faces live will see. Else smooth random faces, then the
    model's own outputs fed back in (`rounds` times: a trained decoder turns anything into faces of its
    domain). One face per feed."""
    import cv2

    from models import dfm_contract as C
    real = _preview_faces(model)
    if len(real):
        batches = [real, real[:, :, ::-1]]
    else:
        rng = np.random.default_rng(1)
        R = int(model.resolution)
        x = np.stack([cv2.resize(rng.uniform(0.1, 0.9, (8, 8, 3)).astype(np.float32), (R, R),
                                 interpolation=cv2.INTER_CUBIC) for _ in range(faces)]).clip(0, 1)
        batches = [x]
        extra = {"morph": C.DEFAULT_MORPH} if morph else {}
        for _ in range(rounds - 1):
            x = np.clip(np.asarray(model.predict(x, **extra).face, np.float32), 0, 1)
            batches.append(x)
    feeds = []
    for batch in batches:
        for face in batch:
            feed = {C.IN_FACE: np.ascontiguousarray(face[None])}
            if morph:
                feed[C.MORPH_VALUE] = np.array([C.DEFAULT_MORPH], np.float32)
            feeds.append(feed)
    return feeds

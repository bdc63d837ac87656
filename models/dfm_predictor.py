"""A `.dfm` file (DeepFaceLive's ONNX face swapper: ours, DFL's, or a community model) as a FacePredictor.

The file is untrusted: its size is bounded before it is read, tensors stored outside it (ONNX external data,
a path the file names) are refused, and nothing in it runs but the ONNX graph, through onnxruntime's
operators. Every problem with it (not ONNX, DeepFaceLive's signature broken, outputs of the wrong shape or
not finite) is one UserError naming the file. No Keras is imported: merging with a .dfm needs only
onnxruntime.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from core import log
from core.errors import UserError
from facelib.face_type import FaceType
from models.dfm_contract import (
    DEFAULT_MORPH,
    DFL_DEFAULT_FACE_TYPE,
    META_FACE_TYPE,
    META_ITERATION,
    OUT_CELEB_FACE,
    OUT_CELEB_FACE_MASK,
    OUT_FACE_MASK,
    DfmContractError,
    check_dfm_signature,
)
from models.predictor import Prediction

MAX_DFM_BYTES = 2 * 1024**3  # protobuf's own limit for one ONNX file; a larger one is refused unread
MAX_BATCH = 8  # faces per onnxruntime call: memory stays bounded whatever the caller hands in
MAX_ITERATION = 10**12
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def cpu_share() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # Windows, macOS
        return max(1, os.cpu_count() or 1)


def providers(available: list[str]) -> list[str]:
    """onnxruntime's execution providers for this process: a GPU one (CUDA, else DirectML) when onnxruntime
    has it and the device choice allows a GPU (--cpu-only sets CUDA_VISIBLE_DEVICES=-1), then the CPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() == "-1":
        return ["CPUExecutionProvider"]
    gpu = [p for p in ("CUDAExecutionProvider", "DmlExecutionProvider") if p in available]
    return gpu[:1] + ["CPUExecutionProvider"]


class DfmPredictor:
    """A loaded .dfm in inference mode (models.predictor.FacePredictor). Build it with load_dfm_predictor."""

    model_class = "DFM"
    default_mode = "overlay"
    needs_landmarks = False

    def __init__(self, path: Path, session, resolution: int, face_type: FaceType, iteration: int, has_morph: bool,
                 batch: int | None, in_dtype: type, morph_dtype: type = np.float32):
        self.path = path
        self.name = path.stem
        self._session = session
        self.resolution = resolution
        self.face_type = face_type
        self.iteration = iteration
        self.has_morph = has_morph
        self._fixed_batch = batch  # the file's fixed batch size, or None when it is free (DFL: free)
        self._in_dtype = in_dtype
        self._morph_dtype = morph_dtype
        self._inputs = [i.name for i in session.get_inputs()]
        outs = [o.name for o in session.get_outputs()]
        # DeepFaceLive unpacks by position; a file naming all three outputs is read by name.
        self._outputs = [OUT_FACE_MASK, OUT_CELEB_FACE, OUT_CELEB_FACE_MASK] \
            if set(outs) == {OUT_FACE_MASK, OUT_CELEB_FACE, OUT_CELEB_FACE_MASK} else outs

    def predict(self, faces: np.ndarray, morph: float | None = None) -> Prediction:
        """faces: (N, R, R, 3) float32 BGR 0..1; `morph` (AMP files, 0..1; default DeepFaceLive's 0.75)."""
        faces = np.asarray(faces, np.float32)
        R = self.resolution
        if faces.ndim != 4 or faces.shape[1:] != (R, R, 3):
            raise ValueError(f"faces must be (N, {R}, {R}, 3), got {faces.shape}")
        n = faces.shape[0]
        step = self._fixed_batch or MAX_BATCH
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for start in range(0, n, step):
            chunk = faces[start:start + step]
            parts.append(self._run(chunk, morph))
        face = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, R, R, 3), np.float32)
        dst = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, R, R), np.float32)
        src = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, R, R), np.float32)
        return Prediction(face=face, src_mask=src, dst_mask=dst)

    def _run(self, chunk: np.ndarray, morph: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One onnxruntime call: (face, dst mask, src mask) of the chunk's faces, checked and clipped to 0..1."""
        n, R = len(chunk), self.resolution
        if self._fixed_batch and n < self._fixed_batch:  # a file with a fixed batch: pad the last chunk
            chunk = np.concatenate([chunk, np.zeros((self._fixed_batch - n, R, R, 3), np.float32)])
        feed = {self._inputs[0]: chunk.astype(self._in_dtype, copy=False)}
        if self.has_morph:
            value = DEFAULT_MORPH if morph is None else float(np.clip(morph, 0.0, 1.0))
            feed[self._inputs[1]] = np.array([value], self._morph_dtype)
        try:
            outs = self._session.run(self._outputs, feed)
        except Exception as e:  # onnxruntime's own errors: a graph that cannot run on these shapes
            raise UserError(f"onnxruntime could not run this .dfm: {_first_line(e)}", self.path) from None
        named = dict(zip(self._outputs, outs))
        face = self._check(named[self._outputs[1]], n, 3, "the swapped face")
        dst_mask = self._check(named[self._outputs[0]], n, 1, "the dst mask")
        src_mask = self._check(named[self._outputs[2]], n, 1, "the src mask")
        return face, dst_mask.reshape(n, R, R), src_mask.reshape(n, R, R)

    def _check(self, out, n: int, channels: int, what: str) -> np.ndarray:
        R = self.resolution
        out = np.asarray(out)
        ok_shapes = [(len(out), R, R, channels)] + ([(len(out), R, R)] if channels == 1 else [])
        if out.dtype.kind != "f" or out.shape not in ok_shapes or len(out) < n:
            raise UserError(f"{what} output is {out.dtype} {list(out.shape)}, expected float32 "
                            f"[N, {R}, {R}, {channels}] (a .dfm for {R} px faces)", self.path)
        out = out[:n].astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise UserError(f"{what} output holds NaN or infinite values (a broken or mis-exported model)", self.path)
        return np.clip(out, 0.0, 1.0)


def load_dfm_predictor(path: str | Path, face_type: FaceType | None = None,
                       ask_face_type: Callable[[], FaceType] | None = None, threads: int | None = None,
                       spin: bool = True) -> DfmPredictor:
    """Open a .dfm with onnxruntime and check it as DeepFaceLive does (models.dfm_contract), then once on a
    grey face (outputs of the right shapes, finite) so that a broken file stops before any frame is merged.

    The face type is the file's own (metadata META_FACE_TYPE, which our exporter writes), else `face_type`
    (--dfm-face-type), else `ask_face_type()` (a prompt on a terminal), else DeepFaceLive's whole face.
    `threads`/`spin`: onnxruntime's intra-op threads (default: this process's CPU share) and whether they
    spin while waiting (live turns it off: a spinning thread takes the core the other stages need)."""
    path = Path(path)
    data, meta = read_dfm(path)
    return dfm_from_bytes(path, data, meta, face_type, ask_face_type, threads, spin)


def read_dfm(path: Path) -> tuple[bytes, dict[str, str]]:
    """The file's bytes (size bounded) and its metadata, refused when it is not a self-contained ONNX model."""
    data = _read_bounded(path)
    model = _parse(path, data)
    meta = {p.key: p.value for p in model.metadata_props}
    return data, meta


def dfm_from_bytes(path: Path, data: bytes, meta: dict[str, str], face_type: FaceType | None = None,
                   ask_face_type: Callable[[], FaceType] | None = None, threads: int | None = None,
                   spin: bool = True, announce: bool = True) -> DfmPredictor:
    """load_dfm_predictor on bytes read_dfm returned: the signature checks, the probe, the predictor (and
    a line saying what was loaded, unless not `announce`)."""
    session = _session(path, data, threads, spin)
    del data
    ins = session.get_inputs()
    outs = session.get_outputs()
    try:
        shape = check_dfm_signature([(i.name, list(i.shape)) for i in ins], [(o.name, list(o.shape)) for o in outs])
    except DfmContractError as e:
        raise UserError(f"not a usable .dfm: {e}", path) from None
    if ins[0].type not in _FLOAT_TYPES or (shape.has_morph and ins[1].type not in _FLOAT_TYPES):
        raise UserError(f"not a usable .dfm: inputs must be float tensors (found {[i.type for i in ins]})", path)
    morph_shape = list(ins[1].shape) if shape.has_morph else []
    if len(morph_shape) > 1 or (morph_shape and isinstance(morph_shape[0], int) and morph_shape[0] != 1):
        raise UserError(f"not a usable .dfm: {ins[1].name!r} must be [1] (found {list(ins[1].shape)})", path)
    batch = ins[0].shape[0] if isinstance(ins[0].shape[0], int) and ins[0].shape[0] > 0 else None
    if batch is not None and batch > 64:
        raise UserError(f"not a usable .dfm: a fixed batch of {batch} faces", path)

    chosen, said = _face_type(path, meta, face_type, ask_face_type)
    iteration = _iteration(path, meta)
    predictor = DfmPredictor(path, session, shape.resolution, chosen, iteration, shape.has_morph, batch,
                             _FLOAT_TYPES[ins[0].type],
                             _FLOAT_TYPES[ins[1].type] if shape.has_morph else np.float32)
    predictor.predict(np.full((1, shape.resolution, shape.resolution, 3), 0.5, np.float32))  # checks the outputs
    (log.info if announce else log.debug)(f"DFM {path.name}: {shape.resolution} px, face type {chosen.short_name} ({said})"
             + (", AMP morph input" if shape.has_morph else "") + (f", iteration {iteration}" if iteration else ""))
    return predictor


def _read_bounded(path: Path) -> bytes:
    if not path.is_file():
        raise UserError("no such .dfm file" if not path.exists() else "not a file", path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_DFM_BYTES:
            raise UserError(f"{size / 1024**3:.1f} GB: larger than any .dfm can be ({MAX_DFM_BYTES // 1024**3} GB); "
                            "not read", path)
        data = f.read(MAX_DFM_BYTES + 1)
    if len(data) > MAX_DFM_BYTES:
        raise UserError("grew past the size limit while being read; not used", path)
    return data


def _parse(path: Path, data: bytes):
    """The ONNX ModelProto; refused when it is not ONNX or keeps tensors in other files (a path it names)."""
    import onnx
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, or worse on hostile bytes
        raise UserError("not an ONNX model (a .dfm is an ONNX file)", path) from None
    if not model.HasField("graph") or not model.graph.node:
        raise UserError("not an ONNX model (no graph in it)", path)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise UserError("keeps weights in other files (ONNX external data); a .dfm must be one file", path)
    return model


def _tensors(graph):
    """Every TensorProto of a graph and its subgraphs (initializers and constant attributes)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _session(path: Path, data: bytes, threads: int | None = None, spin: bool = True):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_share()
    opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # onnxruntime's warnings are not the user's business; errors are raised
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=providers(ort.get_available_providers()))
    except Exception as e:  # onnxruntime raises its own types (InvalidGraph, Fail, NotImplemented ...)
        raise UserError(f"onnxruntime cannot load it: {_first_line(e)}", path) from None


def _face_type(path: Path, meta: dict[str, str], given: FaceType | None,
               ask: Callable[[], FaceType] | None) -> tuple[FaceType, str]:
    """(face type, where it came from)."""
    if META_FACE_TYPE in meta:
        try:
            own = FaceType.from_string(meta[META_FACE_TYPE])
        except UserError:
            raise UserError(f"its metadata {META_FACE_TYPE} is {meta[META_FACE_TYPE][:40]!r}, not a face type",
                            path) from None
        if given is not None and FaceType(given) != own:
            log.warning(f"{path.name} says its face type is {own.short_name}: --dfm-face-type "
                        f"{FaceType(given).short_name} is ignored")
        return own, "from the file"
    if given is not None:
        return FaceType(given), "from --dfm-face-type"
    if ask is not None:
        return FaceType(ask()), "as answered"
    return FaceType.from_string(DFL_DEFAULT_FACE_TYPE), \
        "the file does not say: DeepFaceLive's whole face; set it with --dfm-face-type"


def _iteration(path: Path, meta: dict[str, str]) -> int:
    text = meta.get(META_ITERATION)
    if text is None:
        return 0
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ITERATION:
        log.warning(f"{path.name}: metadata {META_ITERATION} {text[:40]!r} is not an iteration; 0 is used")
        return 0
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]

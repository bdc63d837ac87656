"""`exportdfm` and `exportonnx`: a trained model folder -> a .dfm (DeepFaceLive, FaceFusion) or an XSeg ONNX.

The model is chosen as `merge` chooses it, loaded in float32 inference mode, handed over by the model
as one functional Keras model (export_model), converted (models.export_onnx), checked (DeepFaceLive's
load-time checks, and onnxruntime's outputs against Keras' on probe faces) and only then written,
atomically: a failed export leaves no file behind and never replaces a good one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import log
from core.errors import UserError
from core.fileio import atomic_write_bytes, remove_stale_partials
from core.settings import Option, resolve
from models import dfm_contract as C

DFM_MODELS = ("SAEHD", "Quick96", "AMP")
ONNX_MODELS = ("XSeg",)
PROBE_FACES = 2  # random faces run through Keras and onnxruntime to prove the conversion
TOLERANCE = 1e-3  # max |onnxruntime - Keras| accepted for a float32 export (measured: ~1e-7)
TOLERANCE_FP16 = 5e-2  # the same for float16 weights (rounding of every weight to 11 bits)

QUANTIZE = Option("quantize", False, "store conv/dense weights as float16: about half the file, outputs within "
                  "~1e-2 of the float32 export (DFL's \"Export quantized\")", "Export quantized", "bool", switch=True,
                  negative_help="keep float32 weights (default)")
EXPORT_OPTIONS = (QUANTIZE,)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    seconds: float  # load + convert + check + write
    size_bytes: int
    max_abs_diff: float  # onnxruntime vs Keras on the probe faces
    quantized_weights: int  # weight tensors stored as float16 (0 without --quantize)


def default_output(model_dir: Path, name: str, class_name: str, suffix: str) -> Path:
    """`<name>_<Model>.dfm` / `.onnx` in the model folder (DFL's own file is `<name>_<Model>_model.dfm`)."""
    return Path(model_dir) / f"{name}_{class_name}{suffix}"


def _choose(model_dir: str | Path, class_name: str, name: str | None, output_file: str | Path | None,
            suffix: str) -> tuple[str, Path]:
    """(the saved model to export, as merge chooses it; where to write), both checked before anything loads."""
    from models.loader import choose_saved_model
    name = choose_saved_model(Path(model_dir), class_name, name)
    out = Path(output_file) if output_file else default_output(Path(model_dir), name, class_name, suffix)
    if out.is_dir():
        raise UserError("is a folder; --output-file needs a file name", out)
    if not out.parent.is_dir():
        raise UserError("folder for the exported file not found", out.parent)
    return name, out


def _load(model_dir: str | Path, class_name: str, name: str) -> Any:
    from models.loader import load_predictor
    return load_predictor(model_dir, class_name, name, precision="float32")  # ONNX export needs float32


def _convert_and_check(keras_model: Any, inputs: list, outputs: tuple[str, ...], opset: int,
                       meta: dict[str, str], quantize: bool, probe: list[np.ndarray], where: Path) -> tuple[bytes, float, int]:
    """The checked bytes, the max difference to Keras on `probe`, the number of float16 weights."""
    from models import export_onnx as X
    try:
        proto = X.keras_to_onnx(keras_model, inputs, outputs, opset)
        halves = X.quantize_weights_fp16(proto) if quantize else 0
        X.set_metadata(proto, meta)
        data = X.serialize(proto)
        sess = X.session(data)
    except X.ExportError as e:
        raise UserError(f"export failed: {e}", where) from e  # --debug shows the converter's traceback
    ins, outs = X.signature(sess)
    if opset == C.DFM_OPSET:
        try:
            C.check_dfm_signature(ins, outs)
        except C.DfmContractError as e:
            raise UserError(f"export failed: the result breaks DeepFaceLive's contract: {e}", where) from None
    result = keras_model(probe[0] if len(probe) == 1 else probe)
    want = [np.asarray(r) for r in (result if isinstance(result, (list, tuple)) else [result])]
    try:
        got = sess.run(None, {spec.name: x for spec, x in zip(inputs, probe)})
    except Exception as e:  # onnxruntime's own exception types
        raise UserError(f"export failed: onnxruntime cannot run the converted graph ({e})", where) from e
    if [g.shape for g in got] != [w.shape for w in want]:
        raise UserError(f"export failed: onnxruntime's output shapes {[g.shape for g in got]} are not the model's "
                        f"{[w.shape for w in want]}", where)
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    limit = TOLERANCE_FP16 if quantize else TOLERANCE
    if not np.isfinite(diff) or diff > limit:
        raise UserError(f"export failed: onnxruntime's outputs differ from the model's by {diff:.3g} (more than "
                        f"{limit:g}); nothing was written", where)
    return data, diff, halves


def _write(out: Path, data: bytes) -> None:
    remove_stale_partials(out.parent, targets=[out.name])
    atomic_write_bytes(out, data)


def export_dfm(model_dir: str | Path, class_name: str, name: str | None = None, output_file: str | Path | None = None,
               settings: dict[str, Any] | None = None) -> ExportReport:
    """Export a trained SAEHD, Quick96 or AMP model as a .dfm; `settings`: the CLI's values of EXPORT_OPTIONS
    (quantize is asked on a terminal when not given, no without one)."""
    if class_name not in DFM_MODELS:
        raise UserError(f"exportdfm exports {', '.join(DFM_MODELS)} models, not {class_name!r}"
                        + (" (use exportonnx for XSeg)" if class_name == "XSeg" else ""))
    name, out = _choose(model_dir, class_name, name, output_file, ".dfm")
    quantize = bool(resolve(EXPORT_OPTIONS, None, settings or {}, ask_overrides=False)["quantize"])
    start = time.perf_counter()
    model = _load(model_dir, class_name, name)
    build = getattr(model, "export_model", None)
    if build is None:
        raise UserError(f"{class_name} models cannot be exported yet", model.files.state)
    keras_model = build()
    res = model.resolution
    rng = np.random.default_rng(0)
    probe = [rng.random((PROBE_FACES, res, res, 3), dtype=np.float32)]
    inputs = [_spec(C.IN_FACE, (None, res, res, 3))]
    if len(keras_model.inputs) == 2:  # AMP: the morph factor, one value for the whole batch
        from models.export_onnx import with_morph_vector
        try:
            keras_model = with_morph_vector(keras_model)
        except ValueError as e:
            raise UserError(f"export failed: {e}", model.files.state) from None
        inputs.append(_spec(C.MORPH_VALUE, (1,)))
        probe.append(np.array([C.DEFAULT_MORPH], np.float32))
    face_type = model.face_type.short_name or C.DFL_DEFAULT_FACE_TYPE
    meta = {C.META_FACE_TYPE: face_type, C.META_MODEL_CLASS: class_name, C.META_MODEL_NAME: name,
            C.META_ITERATION: str(model.iteration)}
    data, diff, halves = _convert_and_check(keras_model, inputs, C.OUTPUTS, C.DFM_OPSET, meta, quantize, probe, out)
    _write(out, data)
    report = ExportReport(out, time.perf_counter() - start, len(data), diff, halves)
    _say(report, f"{class_name} model {name!r} (iteration {model.iteration}, {res} px, face type {face_type})")
    return report


def export_xseg_onnx(model_dir: str | Path, class_name: str = "XSeg", name: str | None = None,
                     output_file: str | Path | None = None) -> ExportReport:
    """Export a trained XSeg model as ONNX: in_face:0 [N,R,R,3] BGR 0..1 -> out_mask:0 [N,R,R,1] 0..1."""
    if class_name not in ONNX_MODELS:
        raise UserError(f"exportonnx exports {', '.join(ONNX_MODELS)} models, not {class_name!r}"
                        + (" (use exportdfm for face models)" if class_name in DFM_MODELS else ""))
    from models.export_onnx import xseg_export_model
    name, out = _choose(model_dir, class_name, name, output_file, ".onnx")
    start = time.perf_counter()
    model = _load(model_dir, class_name, name)
    res = model.resolution
    keras_model = xseg_export_model(model.nets["xseg"])
    probe = [np.random.default_rng(0).random((PROBE_FACES, res, res, 3), dtype=np.float32)]
    meta = {C.META_FACE_TYPE: model.face_type.short_name or "", C.META_MODEL_CLASS: class_name,
            C.META_MODEL_NAME: name, C.META_ITERATION: str(model.iteration)}
    from models.xseg import hull_gated
    if hull_gated(model.options):  # trained on program-made targets scored inside the hull only
        meta[C.META_XSEG_CUT_TO_HULL] = "1"
        log.warning(f"XSeg model {name!r} was trained with --generic: its mask is only meant inside the face's "
                    f"landmark hull, which this toolkit cuts it to; the ONNX file has no landmarks input, so a "
                    f"program that uses it must cut the mask to the hull itself (metadata {C.META_XSEG_CUT_TO_HULL}=1)")
    data, diff, halves = _convert_and_check(keras_model, [_spec(C.XSEG_IN, (None, res, res, 3))], (C.XSEG_OUT,),
                                            C.XSEG_OPSET, meta, False, probe, out)
    _write(out, data)
    report = ExportReport(out, time.perf_counter() - start, len(data), diff, halves)
    _say(report, f"XSeg model {name!r} (iteration {model.iteration}, {res} px)")
    return report


def _spec(name: str, shape: tuple) -> Any:
    from models.export_onnx import TensorSpec
    return TensorSpec(name, shape)


def _say(report: ExportReport, what: str) -> None:
    fp16 = f", {report.quantized_weights} weight tensors in float16" if report.quantized_weights else ""
    log.info(f"Exported {what} to {report.path}: {report.size_bytes / 2**20:.1f} MiB in {report.seconds:.1f} s{fp16}; "
             f"onnxruntime matches Keras within {report.max_abs_diff:.1e}")

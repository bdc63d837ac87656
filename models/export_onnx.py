"""Keras model -> ONNX bytes with fixed tensor names: the conversion behind `exportdfm` and `exportonnx`.

Path: tf2onnx (1.17, what Keras 3's own `Model.export(format="onnx")` calls) on a tf.function running the
Keras model with its weights as inputs (see _tf2onnx for why not model.export itself), at the opset
asked; the weights go back in as initializers and onnxruntime's basic rewrites fold the layout
transposes (_fold); then the `onnx` package renames the graph's inputs, names the outputs in the
order the consumer unpacks them (DeepFaceLive and FaceFusion read them by position), sets the batch
dimension's name and the metadata, and optionally stores conv/dense weights as float16 (DFL's "Export
quantized"). Nothing here knows a model's architecture: the models hand over a functional Keras model
(SwapAutoencoder.export_model, AMP.export_model, xseg_export_model below).
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

BATCH_DIM = "N"  # the name of the dynamic batch dimension in the exported graph
WEIGHT_OPS = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1}  # op -> index of its weight input
WEIGHT_PREFIX = "facekit_weight_"  # graph inputs carrying the weights while tf2onnx converts (see _tf2onnx)
MAX_PROTO_BYTES = (2 << 30) - (64 << 20)  # protobuf's 2 GiB message limit, with room for the graph


class ExportError(RuntimeError):
    """The conversion failed or its result breaks the contract; the message says what happened."""


@dataclass(frozen=True)
class TensorSpec:
    """A graph input: the ONNX name (e.g. "in_face:0") and shape (None: the dynamic batch)."""

    name: str
    shape: tuple[int | None, ...]


def keras_to_onnx(model: Any, inputs: Sequence[TensorSpec], outputs: Sequence[str], opset: int) -> Any:
    """Convert a functional Keras model (float32, inputs in `inputs` order) to an onnx.ModelProto whose
    inputs and outputs carry the given names, outputs in the model's output order."""
    import keras
    import onnx

    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"ONNX export runs on the TensorFlow backend (KERAS_BACKEND=tensorflow); this run uses "
                          f"{keras.backend.backend()!r}")
    if len(model.inputs) != len(inputs) or len(model.outputs) != len(outputs):
        raise ExportError(f"the export model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          f"{len(inputs)} and {len(outputs)} are needed")
    plain = [spec.name.split(":")[0] for spec in inputs]  # TensorFlow's names cannot hold ':'
    proto, constants = _tf2onnx(model, [(n, spec.shape) for n, spec in zip(plain, inputs)], opset)
    graph = proto.graph
    _constants_to_initializers(graph, plain, constants)
    if [i.name for i in graph.input] != plain:
        raise ExportError(f"the converter named the inputs {[i.name for i in graph.input]}, expected {plain}")
    proto = _fold(proto)
    graph = proto.graph
    if [i.name for i in graph.input] != plain:
        raise ExportError(f"after onnxruntime's rewrites the inputs are {[i.name for i in graph.input]}, expected {plain}")
    for graph_input, spec in zip(graph.input, inputs):
        _rename_input(graph, graph_input.name, spec.name)
        if spec.shape and spec.shape[0] is None:
            graph_input.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    old_outputs = list(graph.output)
    del graph.output[:]
    for old, name in zip(old_outputs, outputs):
        graph.node.append(onnx.helper.make_node("Identity", [old.name], [name], name=f"{name.split(':')[0]}_out"))
        new = onnx.ValueInfoProto()
        new.CopyFrom(old)
        new.name = name
        dims = new.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM
        graph.output.append(new)
    return proto


def _tf2onnx(model: Any, inputs: list[tuple[str, tuple]], opset: int) -> tuple[Any, dict[str, np.ndarray]]:
    """tf2onnx on a tf.function running the model with its weights as extra inputs (model.stateless_call),
    and the values for every extra graph input: the weights, and the traced function's captured constants.

    Not model.export(format="onnx") itself, which freezes the weights into the TensorFlow graph first:
    tf2onnx then deep-copies every weight once per optimizer pass (measured: 6.6 GB peak and 80 s for
    Quick96's 91 MB; a SAEHD 128 liae-ud ran out of 23 GB), where weights as inputs cost 1.5 GB and 7 s.
    And tf2onnx leaves captured eager constants (a keras.ops call on plain values inside a functional
    model, e.g. AMP's channel index) as graph inputs that only the traced function knows the values of."""
    import tensorflow as tf

    trainable, fixed = list(model.trainable_variables), list(model.non_trainable_variables)
    weights = trainable + fixed
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in inputs]
    specs += [tf.TensorSpec(tuple(v.shape), v.dtype, name=f"{WEIGHT_PREFIX}{i}") for i, v in enumerate(weights)]
    n_in = len(inputs)

    @tf.function(input_signature=specs)
    def forward(*args):
        values = list(args[n_in:])
        outputs, _ = model.stateless_call(values[:len(trainable)], values[len(trainable):],
                                          args[0] if n_in == 1 else list(args[:n_in]))
        return outputs

    traced = forward.get_concrete_function()
    try:
        import tf2onnx
        from keras.src.export.tf2onnx_lib import patch_tf2onnx  # Keras' numpy-2 shims for tf2onnx
    except ImportError as e:
        raise ExportError(f"the ONNX converter is not installed ({e}); run: pip install -r requirements.txt") from e
    with warnings.catch_warnings():  # the shims warn about np.object on every export
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()
        try:
            proto, _ = tf2onnx.convert.from_function(forward, input_signature=specs, opset=opset)
        except Exception as e:  # the converter's own failure, in one line (the cause stays chained)
            raise ExportError(f"tf2onnx could not convert the model ({type(e).__name__}: {e})") from e
    constants = {internal.name: ext.numpy() for ext, internal in traced.graph.captures
                 if ext.dtype != tf.resource and hasattr(ext, "numpy")}
    constants.update({f"{WEIGHT_PREFIX}{i}": np.asarray(v.numpy()) for i, v in enumerate(weights)})
    return proto, constants


def _fold(proto: Any) -> Any:
    """onnxruntime's basic, standard-ONNX graph rewrites saved back as a model: constant folding (the
    weight layout transposes tf2onnx adds around weights that were inputs), redundant node removal,
    Conv+Add fusion. Without them the file would carry HWIO weights and a Transpose each."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="facekit-onnx-") as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        try:
            ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types
            raise ExportError(f"onnxruntime cannot load the converted graph ({e})") from e
        folded = onnx.load(opts.optimized_model_filepath)
    foreign = sorted({n.domain for n in folded.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ExportError(f"onnxruntime's rewrites used operators outside standard ONNX ({', '.join(foreign)})")
    return folded


def _constants_to_initializers(graph: Any, wanted: list[str], constants: dict[str, np.ndarray]) -> None:
    """Graph inputs other than `wanted` that are captured constants become initializers."""
    from onnx import numpy_helper

    for graph_input in list(graph.input):
        value = constants.get(graph_input.name)
        if graph_input.name not in wanted and value is not None:
            graph.input.remove(graph_input)
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), graph_input.name))


def _rename_input(graph: Any, old: str, new: str) -> None:
    used = {t for node in graph.node for t in (*node.input, *node.output)} | {i.name for i in graph.initializer}
    if new != old and new in used:
        raise ExportError(f"the converted graph already has a tensor named {new!r}")
    for graph_input in graph.input:
        if graph_input.name == old:
            graph_input.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def set_metadata(proto: Any, values: Mapping[str, str]) -> None:
    """Replace the metadata_props with `values` (strings), in the order given."""
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)


def quantize_weights_fp16(proto: Any) -> int:
    """Store the float32 weights of Conv/MatMul/Gemm nodes as float16, each cast back to float32 by a Cast
    node at the top of the graph: about half the file, float32 arithmetic (DFL's "Export quantized").
    Returns how many weight tensors were converted."""
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    targets = []
    for node in graph.node:
        index = WEIGHT_OPS.get(node.op_type)
        if index is not None and len(node.input) > index:
            name = node.input[index]
            init = inits.get(name)
            if init is not None and init.data_type == onnx.TensorProto.FLOAT and name not in targets:
                targets.append(name)
    casts = []
    for name in targets:
        init = inits[name]
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [name], to=onnx.TensorProto.FLOAT,
                                           name=f"{name}_to_fp32"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(targets)


def serialize(proto: Any) -> bytes:
    """The model's bytes after the ONNX checker, refusing what protobuf cannot hold in one message."""
    import onnx

    size = proto.ByteSize()
    if size > MAX_PROTO_BYTES:
        raise ExportError(f"the model is {size / 2**30:.1f} GiB; an ONNX file without external data holds at most 2 GiB")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the converted graph is not valid ONNX ({e})") from e
    return proto.SerializeToString()


def session(data: bytes) -> Any:
    """An onnxruntime CPU session on ONNX bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types (Fail, InvalidGraph ...)
        raise ExportError(f"onnxruntime cannot load the converted graph ({e})") from e


def signature(sess: Any) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """(inputs, outputs) of an onnxruntime session as (name, shape) pairs, for dfm_contract's checks."""
    return ([(i.name, list(i.shape)) for i in sess.get_inputs()], [(o.name, list(o.shape)) for o in sess.get_outputs()])


def xseg_export_model(net: Any) -> Any:
    """XSeg's network with a sigmoid: face (N, R, R, 3) BGR 0..1 -> mask (N, R, R, 1) 0..1, as DFL's XSeg
    ONNX gives it (no floor: XSeg.mask_batch's cut of values below 0.1 is left to the consumer)."""
    import keras
    from keras import layers

    res = int(net.inputs[0].shape[1])
    face = keras.Input((res, res, 3), name="in_face", dtype="float32")
    mask = layers.Activation("sigmoid", dtype="float32", name="out_mask")(net(face))
    return keras.Model(face, mask, name="XSeg_export")


def with_morph_vector(model: Any) -> Any:
    """A [face, morph] model whose morph input is DeepFaceLive's morph_value: shape [1] (one value for the
    batch). A model declaring morph as keras.Input((1,)) (shape (None, 1)) is wrapped: the [1] vector is
    reshaped to (1, 1) before it goes in."""
    import keras
    from keras import ops

    shape = tuple(model.inputs[1].shape)
    if shape == (1,):
        return model
    if shape not in ((None, 1), (1, 1)):
        raise ValueError(f"the morph input must have shape (1,) or (None, 1), not {shape}")
    face_shape = tuple(model.inputs[0].shape[1:])
    face = keras.Input(face_shape, name="in_face", dtype="float32")
    morph = keras.Input(batch_shape=(1,), name="morph_value", dtype="float32")
    outputs = model([face, ops.reshape(morph, (1, 1))])
    return keras.Model([face, morph], outputs, name=f"{model.name}_dfm")


def quantize_int8(proto: Any, calibration: Sequence[Mapping[str, np.ndarray]]) -> Any:
    """The graph with its convolutions in int8 (onnxruntime's static quantization, QOperator format: QLinearConv,
    standard ONNX), activation ranges measured on the `calibration` feeds (input name -> array). About half
    the CPU time of float32 on a CPU without bf16 (Quick96 at batch 1: 126 -> 61 ms on one AVX2 core);
    outputs differ from float32 by about 1e-2 (each activation rounded to 8 bits): an opt-in, for live use."""
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    feeds = [dict(f) for f in calibration]

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process the graph (measured: no faster here)
    try:
        with tempfile.TemporaryDirectory(prefix="facekit-int8-") as tmp:
            out = Path(tmp) / "int8.onnx"
            try:
                quantize_static(proto, out, _Feeds(), quant_format=QuantFormat.QOperator,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["Conv"])
            except Exception as e:  # the quantizer's own failure, in one line (the cause stays chained)
                raise ExportError(f"onnxruntime could not quantize the graph ({type(e).__name__}: {e})") from e
            quantized = onnx.load(str(out))
    finally:
        root.setLevel(level)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    return quantized

"""Tiny `.dfm` files built with onnx.helper, for the .dfm predictor's tests and its benchmark.

`standin_dfm` is tests/merge_standin.py's StandInPredictor as an ONNX graph with DeepFaceLive's names: the
dst face mirrored left-right and tinted, both masks one constant mask, so a merge with it can be compared
pixel for pixel with a merge with the stand-in. Its knobs make the variants the tests need: AMP's second
input, DFL's NCHW body with transposes at the edges and no metadata, and the broken files DeepFaceLive
refuses (or that fail at run time).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.dfm_contract import IN_FACE, MORPH_VALUE, OUT_CELEB_FACE, OUT_CELEB_FACE_MASK, OUT_FACE_MASK
from tests.merge_standin import TINT

BIG = np.iinfo(np.int64).max


def standin_dfm(mask: np.ndarray, *, tint: np.ndarray = TINT, morph: bool = False, nchw: bool = False,
                metadata: dict[str, str] | None = None, in_name: str = IN_FACE, third_input: bool = False,
                dynamic_hw: bool = False, n_outputs: int = 3, nan: bool = False, wrong_face_shape: bool = False,
                nan_below: float | None = None,
                batch: int | str = "N", opset: int = 12) -> onnx.ModelProto:
    """face = clip(mirror(in_face) * tint [* morph_value]); both masks = `mask` (R x R, 0..1) for every face.

    `nan`: the face is all NaN; `nan_below`: NaN only where a pixel is darker than this (a grey test face
    passes, a real one does not)."""
    R = int(mask.shape[0])
    inits = [numpy_helper.from_array(np.asarray(tint, np.float32).reshape((3, 1, 1) if nchw else (3,)), "tint"),
             numpy_helper.from_array(np.float32(0.0), "zero"), numpy_helper.from_array(np.float32(1.0), "one"),
             numpy_helper.from_array(np.asarray(mask, np.float32).reshape((1, 1, R, R) if nchw else (1, R, R, 1)),
                                     "mask"),
             numpy_helper.from_array(np.array([-1], np.int64), "starts"),
             numpy_helper.from_array(np.array([-BIG], np.int64), "ends"),
             numpy_helper.from_array(np.array([3 if nchw else 2], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "steps")]
    nodes = []
    x = in_name
    if nchw:  # DFL's graphs: NCHW inside, transposes at the edges
        nodes.append(helper.make_node("Transpose", [x], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    if third_input:
        nodes.append(helper.make_node("Add", [x, "extra:0"], ["x_extra"]))
        x = "x_extra"
    nodes += [helper.make_node("Slice", [x, "starts", "ends", "axes", "steps"], ["mirrored"]),
              helper.make_node("Mul", ["mirrored", "tint"], ["tinted"])]
    face = "tinted"
    if morph:
        nodes.append(helper.make_node("Mul", [face, MORPH_VALUE], ["morphed"]))
        face = "morphed"
    if nan:
        inits.append(numpy_helper.from_array(np.float32(np.nan), "nan"))
        nodes.append(helper.make_node("Mul", [face, "nan"], ["poisoned"]))
        face = "poisoned"
    if nan_below is not None:  # log(x - t) * 0: NaN where x < t, else 0
        inits.append(numpy_helper.from_array(np.float32(nan_below), "threshold"))
        nodes += [helper.make_node("Sub", ["mirrored", "threshold"], ["shifted"]),
                  helper.make_node("Log", ["shifted"], ["logged"]),
                  helper.make_node("Mul", ["logged", "zero"], ["nan_or_zero"]),
                  helper.make_node("Add", [face, "nan_or_zero"], ["dark_poisoned"])]
        face = "dark_poisoned"
    nodes += [helper.make_node("Clip", [face, "zero", "one"], ["face_clipped"]),
              helper.make_node("ReduceMean", [x], ["grey"], axes=[1 if nchw else 3], keepdims=1),
              helper.make_node("Mul", ["grey", "zero"], ["nothing"]),
              helper.make_node("Add", ["nothing", "mask"], ["mask_out"])]
    names = {"face": "face_clipped", "mask": "mask_out"}
    if nchw and not wrong_face_shape:
        nodes += [helper.make_node("Transpose", ["face_clipped"], ["face_nhwc"], perm=[0, 2, 3, 1]),
                  helper.make_node("Transpose", ["mask_out"], ["mask_nhwc"], perm=[0, 2, 3, 1])]
        names = {"face": "face_nhwc", "mask": "mask_nhwc"}
    if wrong_face_shape and not nchw:  # a face of half the resolution
        nodes.append(helper.make_node("Slice", ["face_clipped", "half_starts", "half_ends", "half_axes"], ["face_small"]))
        inits += [numpy_helper.from_array(np.array([0, 0], np.int64), "half_starts"),
                  numpy_helper.from_array(np.array([R // 2, R // 2], np.int64), "half_ends"),
                  numpy_helper.from_array(np.array([1, 2], np.int64), "half_axes")]
        names["face"] = "face_small"
    nodes += [helper.make_node("Identity", [names["mask"]], [OUT_FACE_MASK]),
              helper.make_node("Identity", [names["face"]], [OUT_CELEB_FACE]),
              helper.make_node("Identity", [names["mask"]], [OUT_CELEB_FACE_MASK])]
    hw = ["H", "W"] if dynamic_hw else [R, R]
    inputs = [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [batch, *hw, 3])]
    if morph:
        inputs.append(helper.make_tensor_value_info(MORPH_VALUE, TensorProto.FLOAT, [1]))
    if third_input:
        inputs.append(helper.make_tensor_value_info("extra:0", TensorProto.FLOAT, [1]))
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in (OUT_FACE_MASK, OUT_CELEB_FACE, OUT_CELEB_FACE_MASK)][:n_outputs]
    graph = helper.make_graph(nodes, "standin_dfm", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="facekit-tests")
    model.ir_version = 7  # what DFL's tf2onnx writes at opset 12; every onnxruntime since 1.6 reads it
    if metadata:
        helper.set_model_props(model, metadata)
    return model


def write_dfm(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path

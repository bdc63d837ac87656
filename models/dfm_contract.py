"""DeepFaceLive's .dfm contract (an ONNX file; DFL writes it with tf2onnx at opset 12) and the checks
DeepFaceLive makes when it loads one, shared by the exporter and the .dfm predictor.

Input 0 `in_face:0`: float32 [N, H, W, 3], BGR in 0..1, H and W fixed integers; AMP models have a second
input `morph_value:0`, float32 [1]. Outputs, by position: the dst mask, the swapped face, the src mask.
"""
from __future__ import annotations

from dataclasses import dataclass

IN_FACE = "in_face:0"
MORPH_VALUE = "morph_value:0"
OUT_FACE_MASK = "out_face_mask:0"  # the mask decoded from the dst code ("learned-dst")
OUT_CELEB_FACE = "out_celeb_face:0"  # the swapped face, BGR 0..1
OUT_CELEB_FACE_MASK = "out_celeb_face_mask:0"  # the src decoder's mask on the swapped face ("learned-prd")
OUTPUTS = (OUT_FACE_MASK, OUT_CELEB_FACE, OUT_CELEB_FACE_MASK)
DFM_OPSET = 12  # what DFL writes and DeepFaceLive's onnxruntime loads
DEFAULT_MORPH = 0.75  # DeepFaceLive's default morph factor for AMP models

XSEG_IN = "in_face:0"  # DFL's XSeg ONNX: float32 [N, 256, 256, 3] BGR 0..1
XSEG_OUT = "out_mask:0"  # [N, 256, 256, 1] 0..1
XSEG_OPSET = 13


@dataclass(frozen=True)
class DfmShape:
    """What a .dfm file says about itself through its graph."""

    resolution: int  # H == W of in_face
    has_morph: bool  # AMP: a second input morph_value


class DfmContractError(ValueError):
    """The file breaks a rule DeepFaceLive checks; the message says which."""


def check_dfm_signature(inputs: list[tuple[str, list]], outputs: list[tuple[str, list]]) -> DfmShape:
    """DeepFaceLive's load-time checks on (name, shape) pairs of the graph's inputs and outputs, with
    shapes as onnxruntime reports them (ints, or strings/None for free dimensions)."""
    if not inputs or "in_face" not in inputs[0][0]:
        raise DfmContractError(f"the first input must be {IN_FACE!r} (found {[n for n, _ in inputs]})")
    if len(inputs) > 2:
        raise DfmContractError(f"at most two inputs ({IN_FACE!r}, {MORPH_VALUE!r}); found {len(inputs)}")
    if len(inputs) == 2 and "morph_value" not in inputs[1][0]:
        raise DfmContractError(f"the second input must be {MORPH_VALUE!r} (found {inputs[1][0]!r})")
    shape = list(inputs[0][1])
    if len(shape) != 4 or shape[3] != 3:
        raise DfmContractError(f"{IN_FACE!r} must be [N, H, W, 3] (found {shape})")
    h, w = shape[1], shape[2]
    if not (isinstance(h, int) and isinstance(w, int)) or h != w or h < 16:
        raise DfmContractError(f"{IN_FACE!r} must have fixed, equal H and W (found {shape})")
    if len(outputs) != 3:
        raise DfmContractError(f"three outputs (dst mask, swapped face, src mask) are needed; found {len(outputs)}")
    return DfmShape(resolution=int(h), has_morph=len(inputs) == 2)

# metadata_props this toolkit writes into the .dfm (DFL's files have none: the reader then assumes
# DeepFaceLive's whole-face crop unless told otherwise)
META_FACE_TYPE = "facekit.face_type"  # short face type name: h, mf, f, wf, head
META_MODEL_CLASS = "facekit.model_class"  # SAEHD, Quick96, AMP ...
META_MODEL_NAME = "facekit.model_name"
META_ITERATION = "facekit.iteration"
META_XSEG_CUT_TO_HULL = "facekit.xseg_cut_to_hull"  # "1": a --generic XSeg; cut its mask to the landmark hull
DFL_DEFAULT_FACE_TYPE = "wf"  # DeepFaceLive's recipes train whole-face models

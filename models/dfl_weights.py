"""DFL variable names and layouts <-> this toolkit's SAEHD/Quick96, AMP and XSeg networks (numpy only, no Keras).

DFL stores each network as {variable name: array} (see ../shared/dfl-fixtures/FORMAT.md): names
follow its Python attributes (`down1/downs_0/conv1/weight:0`), kernels are HWIO like Keras', and
flatten/reshape are channel-major (C, H, W) where our NHWC networks are (H, W, C). So a kernel
keeps its values and only the two dense layers around the flatten and the reshape get their rows
(inter `dense1`) or columns and bias (inter `dense2`) permuted. The optimizer's moments are
elementwise, so they take the same permutation as their weight.
"""
from __future__ import annotations

import re

import numpy as np

from models.archi import ArchiSpec, encoder_out_dim


def dfl_layer(net: str, layer: str, spec: ArchiSpec) -> str:
    """DFL's scope of our layer `layer` in network `net` (`down2` -> `down1/downs_1/conv1` without -t)."""
    m = re.fullmatch(r"down(\d)", layer)
    if m and net == "encoder" and "t" not in spec.opts:
        return f"down1/downs_{int(m[1]) - 1}/conv1"
    return _block_scope(layer)


def _block_scope(layer: str) -> str:
    """DFL's scope of one of our layers named after DFL's blocks (`res0_conv1` -> `res0/conv1`,
    `down2` -> `down2/conv1`, `out_conv0` -> `out_conv`)."""
    m = re.fullmatch(r"(res\d)_(conv\d)", layer)
    if m:
        return f"{m[1]}/{m[2]}"
    if re.fullmatch(r"(down|upscale|upscalem)\d", layer):
        return f"{layer}/conv1"
    if layer == "out_conv0":  # our -d face heads are out_conv0..3; DFL's first one is plain out_conv
        return "out_conv"
    return layer  # dense1, dense2, out_conv, out_conv1..3, out_convm


def dfl_key(net: str, variable_path: str, spec: ArchiSpec) -> str:
    """The key in DFL's `<name>_SAEHD_<net>.npy` for our variable `layer/kernel` or `layer/bias`."""
    layer, attr = variable_path.rsplit("/", 1)
    return f"{dfl_layer(net, layer, spec)}/{'weight' if attr == 'kernel' else 'bias'}:0"


def dfl_optimizer_key(slot: str, net: str, key: str) -> str:
    """DFL's optimizer key for its state `slot` (AdaBelief `ms`/`vs`, RMSprop `acc`) of weight `key` of
    network `net`: the weight's full TF name with ':' as '_', prefixed, e.g. `acc_encoder/x/weight_0:0`."""
    return f"{slot}_" + f"{net}/{key}".replace(":", "_") + ":0"


def dfl_optimizer_keys(net: str, key: str) -> tuple[str, str]:
    """DFL's AdaBelief moment keys (first, belief) in `<name>_SAEHD_src_dst_opt.npy` for weight `key` of `net`."""
    return dfl_optimizer_key("ms", net, key), dfl_optimizer_key("vs", net, key)


def chw_to_hwc(side: int, channels: int) -> np.ndarray:
    """perm with ours[i] = dfl[perm[i]] for a flat (side, side, channels) vector DFL holds as (channels, side, side)."""
    return np.arange(channels * side * side).reshape(channels, side, side).transpose(1, 2, 0).reshape(-1)


def to_ours(variable_path: str, value: np.ndarray, spec: ArchiSpec) -> np.ndarray:
    """DFL's array for our variable (same shape as ours unless DFL's layout differs), as float32."""
    layer, attr = variable_path.rsplit("/", 1)
    value = np.asarray(value, np.float32)
    if layer == "dense1" and attr == "kernel" and value.ndim == 2:
        side = spec.resolution // (32 if "t" in spec.opts else 16)
        if value.shape[0] == encoder_out_dim(spec):
            return value[chw_to_hwc(side, spec.e_dims * 8)]
    if layer == "dense2" and value.shape[-1] == spec.lowest * spec.lowest * spec.inter_out_ch:
        return value[..., chw_to_hwc(spec.lowest, spec.inter_out_ch)]
    return value


# --- AMP (models/Model_AMP/Model.py: encoder down1..down5, res1, res5, dense1; inter dense2; one decoder) ---

def amp_dfl_key(variable_path: str) -> str:
    """The key in DFL's `<name>_AMP_<net>.npy` for our DFL-layout AMP variable (`down3/kernel` ->
    `down3/conv1/weight:0`, `res5_conv2/bias` -> `res5/conv2/bias:0`, `out_conv0/kernel` -> `out_conv/weight:0`)."""
    layer, attr = variable_path.rsplit("/", 1)
    return f"{_block_scope(layer)}/{'weight' if attr == 'kernel' else 'bias'}:0"


def amp_to_ours(variable_path: str, value: np.ndarray, side: int, enc_ch: int, inter_dims: int) -> np.ndarray:
    """DFL's AMP array for our variable, as float32: the encoder's dense1 rows (DFL flattens the
    (side, side, enc_ch) features channel-major) and the inters' dense2 columns and bias (DFL reads
    the vector as (inter_dims, side, side)) are permuted; everything else keeps its values."""
    layer, attr = variable_path.rsplit("/", 1)
    value = np.asarray(value, np.float32)
    if layer == "dense1" and attr == "kernel" and value.ndim == 2 and value.shape[0] == side * side * enc_ch:
        return value[chw_to_hwc(side, enc_ch)]
    if layer == "dense2" and value.shape[-1] == side * side * inter_dims:
        return value[..., chw_to_hwc(side, inter_dims)]
    return value


# --- XSeg (core/leras/models/XSeg.py: blocks `conv01`.. `uconv01`, `up0`..`up5` of conv + frn + tlu) ---
_XSEG_FRN = {"gamma": "frn/weight", "beta": "frn/bias", "eps": "frn/eps", "tau": "tlu/tau"}


def xseg_dfl_key(variable_path: str) -> str:
    """The key in DFL's `XSeg_256.npy` for our DFL-layout XSeg variable (`conv01/kernel` ->
    `conv01/conv/weight:0`, `conv01_frn/tau` -> `conv01/tlu/tau:0`, `dense1/kernel` -> `dense1/weight:0`)."""
    layer, attr = variable_path.rsplit("/", 1)
    if layer.endswith("_frn") and attr in _XSEG_FRN:
        return f"{layer[:-4]}/{_XSEG_FRN[attr]}:0"
    what = "weight" if attr == "kernel" else attr
    if layer in ("dense1", "dense2", "out_conv"):
        return f"{layer}/{what}:0"
    return f"{layer}/conv/{what}:0"


def xseg_to_ours(variable_path: str, value: np.ndarray, side: int, channels: int) -> np.ndarray:
    """DFL's XSeg array for our variable, as float32: the dense layers around DFL's channel-major
    flatten/reshape (a (side, side, channels) bottleneck) get their rows or columns permuted."""
    layer, attr = variable_path.rsplit("/", 1)
    value = np.asarray(value, np.float32)
    flat = side * side * channels
    if layer == "dense1" and attr == "kernel" and value.ndim == 2 and value.shape[0] == flat:
        return value[chw_to_hwc(side, channels)]
    if layer == "dense2" and value.shape[-1] == flat:
        return value[..., chw_to_hwc(side, channels)]
    return value

"""AMP's networks (DFL's Model_AMP): one encoder, two inter heads (src, dst) and one shared decoder.

Shapes for resolution R, bottleneck side r = R/32:
- encoder: (R, R, 3) -> 5 stride-2 5x5 convs (e, 2e, 4e, 8e, 8e), residual blocks after the first and the
  last, flatten, pixel norm, Dense -> (ae_dims,)
- inter_src / inter_dst: (ae_dims,) -> Dense -> (r, r, inter_dims)
- decoder: (r, r, inter_dims) -> 4 upscale+residual stages (8d, 8d, 4d, 2d) to R/2, four 3x3 heads
  concatenated and depth-to-space to (R, R, 3) face; a 5-stage mask branch (8m, 8m, 4m, 2m, m) to (R, R, 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from models import layers as L


@dataclass(frozen=True)
class AmpSpec:
    resolution: int = 224
    ae_dims: int = 256
    inter_dims: int = 1024
    e_dims: int = 64
    d_dims: int = 64
    d_mask_dims: int = 22
    # DFL's exact layers (imported DFL models only): symmetric padding in the stride-2 convolutions and
    # a 1x1 first face head (DFL's `out_conv`); models made here keep Keras `same` and four 3x3 heads
    dfl_layout: bool = False

    @property
    def lowest(self) -> int:
        return self.resolution // 32

    def validate(self) -> None:
        if self.resolution % 32 or self.resolution < 32:
            raise ValueError(f"AMP's resolution must be a multiple of 32, got {self.resolution}")


def build_encoder(spec: AmpSpec) -> keras.Model:
    act = L.activation("leaky")
    inp = keras.Input((spec.resolution, spec.resolution, 3), name="face")
    e = spec.e_dims
    x = L.downscale(inp, e, "down1", act, symmetric=spec.dfl_layout)
    x = L.residual_block(x, e, "res1")
    for i, ch in enumerate((e * 2, e * 4, e * 8, e * 8), start=2):
        x = L.downscale(x, ch, f"down{i}", act, symmetric=spec.dfl_layout)
    x = L.residual_block(x, e * 8, "res5")
    x = L.PixelNorm(name="pixel_norm")(keras.layers.Flatten(name="flatten")(x))
    x = keras.layers.Dense(spec.ae_dims, name="dense1")(x)
    return L.build(inp, x, "encoder")


def build_inter(spec: AmpSpec, name: str) -> keras.Model:
    inp = keras.Input((spec.ae_dims,), name="code")
    r = spec.lowest
    x = keras.layers.Dense(r * r * spec.inter_dims, name="dense2")(inp)
    x = keras.layers.Reshape((r, r, spec.inter_dims), name="reshape")(x)
    return L.build(inp, x, name)


def build_decoder(spec: AmpSpec) -> keras.Model:
    """Code (r, r, inter_dims) -> (face (R,R,3), mask (R,R,1)), both sigmoid, both float32."""
    act = L.activation("leaky")
    d, m = spec.d_dims, spec.d_mask_dims
    inp = keras.Input((spec.lowest, spec.lowest, spec.inter_dims), name="code")
    x = inp
    for i, ch in enumerate((d * 8, d * 8, d * 4, d * 2)):
        x = L.upscale(x, ch, f"upscale{i}", act)
        x = L.residual_block(x, ch, f"res{i}")
    heads = [L.conv(x, 3, 1 if i == 0 and spec.dfl_layout else 3, f"out_conv{i}") for i in range(4)]
    x = L.DepthToSpace(name="out_d2s")(keras.layers.Concatenate(name="out_concat")(heads))
    face = L.to_float32(keras.layers.Activation("sigmoid", name="out_sigmoid")(x), "face")
    y = inp
    for i, ch in enumerate((m * 8, m * 8, m * 4, m * 2, m)):
        y = L.upscale(y, ch, f"upscalem{i}", act)
    y = keras.layers.Activation("sigmoid", name="outm_sigmoid")(L.conv(y, 1, 1, "out_convm"))
    return L.build(inp, [face, L.to_float32(y, "mask")], "decoder")

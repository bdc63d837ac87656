"""DFL's DeepFake architecture (encoder, inter, decoder) for `df` and `liae` with variants u, d, t, c.

The numbers follow DFL's SAEHD: a res/16 (res/32 with -d) bottleneck, decoders of three
(four with -t) upscale+residual stages, a separate mask branch, sigmoid outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from models import layers as L
from models.saehd_options import ARCHI_TYPES, ARCHI_VARIANTS  # declared once, with the archi option


@dataclass(frozen=True)
class ArchiSpec:
    """Everything that fixes the network shapes; stored in the model options, set at creation."""

    resolution: int
    archi: str = "liae-ud"  # "df" | "liae", optionally "-" + any of u, d, t, c
    ae_dims: int = 256
    e_dims: int = 64
    d_dims: int = 64
    d_mask_dims: int = 22
    # DFL's exact layer layout (set for imported DFL models only): symmetric padding in the encoder's
    # stride-2 convs and a 1x1 first head of the -d face output, as DFL builds them.
    dfl_layout: bool = False

    @property
    def kind(self) -> str:
        return self.archi.split("-")[0]

    @property
    def opts(self) -> str:
        return self.archi.split("-")[1] if "-" in self.archi else ""

    @property
    def lowest(self) -> int:
        """Side of the dense bottleneck's feature map."""
        return self.resolution // (32 if "d" in self.opts else 16)

    @property
    def inter_out_ch(self) -> int:
        return self.ae_dims * 2 if self.kind == "liae" else self.ae_dims

    @property
    def decoder_in_ch(self) -> int:
        return self.inter_out_ch * 2 if self.kind == "liae" else self.inter_out_ch

    @property
    def code_side(self) -> int:
        """Side of the inter output (the decoder input)."""
        return self.lowest if "t" in self.opts else self.lowest * 2

    def validate(self) -> None:
        kind, opts = self.kind, self.opts
        if kind not in ARCHI_TYPES or any(c not in ARCHI_VARIANTS for c in opts) or len(set(opts)) != len(opts):
            raise ValueError(f"archi must be df or liae with optional -u/d/t/c variants, got {self.archi!r}")
        step = 32 if "d" in opts else 16
        if self.resolution % step or self.resolution < 32:
            raise ValueError(f"resolution {self.resolution} must be a multiple of {step} for archi {self.archi}")


def build_encoder(spec: ArchiSpec) -> keras.Model:
    """(R, R, 3) -> flat code; 4 stride-2 convs (e, 2e, 4e, 8e), or 5 with residuals for -t."""
    act = L.activation("cos" if "c" in spec.opts else "leaky")
    act_kind = "cos" if "c" in spec.opts else "leaky"
    inp = keras.Input((spec.resolution, spec.resolution, 3), name="face")
    e = spec.e_dims
    if "t" in spec.opts:
        x = L.downscale(inp, e, "down1", act, symmetric=spec.dfl_layout)
        x = L.residual_block(x, e, "res1", act_kind)
        for i, ch in enumerate((e * 2, e * 4, e * 8, e * 8), start=2):
            x = L.downscale(x, ch, f"down{i}", act, symmetric=spec.dfl_layout)
        x = L.residual_block(x, e * 8, "res5", act_kind)
    else:
        x = inp
        for i, ch in enumerate((e, e * 2, e * 4, e * 8), start=1):
            x = L.downscale(x, ch, f"down{i}", act, symmetric=spec.dfl_layout)
    x = keras.layers.Flatten(name="flatten")(x)
    if "u" in spec.opts:
        x = L.PixelNorm(name="pixel_norm")(x)
    return L.build(inp, x, "encoder")


def encoder_out_dim(spec: ArchiSpec) -> int:
    side = spec.resolution // (32 if "t" in spec.opts else 16)
    return side * side * spec.e_dims * 8


def build_inter(spec: ArchiSpec, name: str = "inter") -> keras.Model:
    """Flat code -> Dense(ae_dims) -> Dense(lowest^2 * ch) -> reshape -> upscale (none for -t)."""
    act = L.activation("cos" if "c" in spec.opts else "leaky")
    inp = keras.Input((encoder_out_dim(spec),), name="code")
    x = keras.layers.Dense(spec.ae_dims, name="dense1")(inp)
    x = keras.layers.Dense(spec.lowest * spec.lowest * spec.inter_out_ch, name="dense2")(x)
    x = keras.layers.Reshape((spec.lowest, spec.lowest, spec.inter_out_ch), name="reshape")(x)
    if "t" not in spec.opts:
        x = L.upscale(x, spec.inter_out_ch, "upscale1", act)
    return L.build(inp, x, name)


def build_decoder(spec: ArchiSpec, name: str = "decoder") -> keras.Model:
    """Code -> (face BGR (R,R,3), mask (R,R,1)), both sigmoid, both float32."""
    opts = spec.opts
    act_kind = "cos" if "c" in opts else "leaky"
    act = L.activation(act_kind)
    d, m = spec.d_dims, spec.d_mask_dims
    inp = keras.Input((spec.code_side, spec.code_side, spec.decoder_in_ch), name="code")
    stages = (d * 8, d * 8, d * 4, d * 2) if "t" in opts else (d * 8, d * 4, d * 2)
    x = inp
    for i, ch in enumerate(stages):
        x = L.upscale(x, ch, f"upscale{i}", act)
        x = L.residual_block(x, ch, f"res{i}", act_kind)
    if "d" in opts:
        heads = [L.conv(x, 3, 1 if i == 0 and spec.dfl_layout else 3, f"out_conv{i}") for i in range(4)]
        x = L.DepthToSpace(name="out_d2s")(keras.layers.Concatenate(name="out_concat")(heads))
    else:
        x = L.conv(x, 3, 1, "out_conv")
    face = L.to_float32(keras.layers.Activation("sigmoid", name="out_sigmoid")(x), "face")

    mask_stages = (m * 8, m * 8, m * 4, m * 2) if "t" in opts else (m * 8, m * 4, m * 2)
    if "d" in opts:
        mask_stages = (*mask_stages, m)
    y = inp
    for i, ch in enumerate(mask_stages):
        y = L.upscale(y, ch, f"upscalem{i}", act)
    y = keras.layers.Activation("sigmoid", name="outm_sigmoid")(L.conv(y, 1, 1, "out_convm"))
    mask = L.to_float32(y, "mask")
    return L.build(inp, [face, mask], name)

"""DFL's XSeg segmentation network as a Keras 3 U-Net (layers and keras.ops only).

Like DFL's: blocks of 3x3 conv + filter response norm + thresholded linear unit, anti-aliased
(blur-pool) downsampling over 6 levels, a dense bottleneck, skip concatenations, one logit channel.
Unlike DFL's: upsampling is resize + 3x3 conv instead of a transposed convolution, so ONNX runtimes
run the exported graph on the GPU (ORT's CUDA provider lacks the asymmetric padding a transposed
convolution needs) and no checkerboard pattern appears in the mask.

`dfl_layout=True` builds DFL's network exactly (core/leras/models/XSeg.py), for XSeg models imported
from DFL: two convs at the third level (DFL_LEVEL_CONVS), 3x3 stride-2 transposed convolutions up
(TF 'same'), DFL's up widths (4, 4, 4, 4, 2, 1 times
the base from the bottom), blur-pool padding (k-1)//2 before and the rest after, and a learned
FRN epsilon (DFL trains it, |eps| is used). Flatten and reshape stay NHWC: the importer permutes the
dense weights from DFL's channel-major order.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from models.layers import to_float32
from models.xseg_options import XSEG_LEVELS

# DFL's widths (times the base) and conv counts per level, and its blur-pool filter sizes.
LEVEL_WIDTHS = (1, 2, 4, 8, 8, 8)
LEVEL_CONVS = (2, 2, 3, 3, 3, 3)
DFL_LEVEL_CONVS = (2, 2, 2, 3, 3, 3)  # DFL's own: two convs at the 64 px level
BLUR_SIZES = (4, 3, 2, 2, 2, 2)
BOTTLENECK = 512


class FRN(layers.Layer):
    """Filter response normalisation with a thresholded linear unit: scale by the mean square over
    H and W (no batch statistics, so batch 1 and batch 64 train alike), then max(gamma*x + beta, tau)."""

    def build(self, shape):
        ch = shape[-1]
        self.gamma = self.add_weight(shape=(ch,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(ch,), initializer="zeros", name="beta")
        self.tau = self.add_weight(shape=(ch,), initializer="zeros", name="tau")

    def call(self, x):
        nu2 = ops.mean(ops.square(x), axis=(1, 2), keepdims=True)
        x = x * ops.rsqrt(nu2 + ops.cast(1e-6, x.dtype))
        return ops.maximum(ops.cast(self.gamma, x.dtype) * x + ops.cast(self.beta, x.dtype), ops.cast(self.tau, x.dtype))


class DflFRN(FRN):
    """DFL's FRNorm2D + TLU: as FRN, with epsilon a trained weight (initial 1e-6, used as |eps|)."""

    def build(self, shape):
        super().build(shape)
        self.eps = self.add_weight(shape=(1,), initializer=keras.initializers.Constant(1e-6), name="eps")

    def call(self, x):
        nu2 = ops.mean(ops.square(x), axis=(1, 2), keepdims=True)
        x = x * ops.rsqrt(nu2 + ops.cast(ops.abs(self.eps), x.dtype))
        return ops.maximum(ops.cast(self.gamma, x.dtype) * x + ops.cast(self.beta, x.dtype), ops.cast(self.tau, x.dtype))


class BlurPool(layers.Layer):
    """Anti-aliased stride-2 downsampling: a binomial blur of `size` taps per channel, then every second
    pixel (size 2 is a 2x2 average)."""

    def __init__(self, size: int, dfl_padding: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.dfl_padding = bool(dfl_padding)  # (size-1)//2 zeros before, the rest after, then 'valid' (DFL)
        taps = np.array([1.0], np.float64)
        for _ in range(self.size - 1):
            taps = np.convolve(taps, [1.0, 1.0])
        self._kernel2d = np.outer(taps, taps) / np.sum(taps) ** 2

    def build(self, shape):
        self.channels = int(shape[-1])

    def call(self, x):
        k = np.repeat(self._kernel2d[:, :, None, None], self.channels, axis=2).astype(np.float32)
        if self.dfl_padding:
            before = (self.size - 1) // 2
            pad = ((0, 0), (before, self.size - 1 - before), (before, self.size - 1 - before), (0, 0))
            return ops.depthwise_conv(ops.pad(x, pad), ops.cast(k, x.dtype), strides=2, padding="valid")
        return ops.depthwise_conv(x, ops.cast(k, x.dtype), strides=2, padding="same")

    def compute_output_shape(self, shape):
        n, h, w, c = shape
        return (n, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "dfl_padding": self.dfl_padding}


def conv_block(x, filters: int, name: str, dfl_layout: bool = False):
    x = layers.Conv2D(filters, 3, padding="same", name=name)(x)
    return (DflFRN if dfl_layout else FRN)(name=f"{name}_frn")(x)


def up_block(x, filters: int, name: str):
    """Double the size by bilinear resize, then conv + FRN (no transposed convolution)."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return conv_block(x, filters, name)


def dfl_up_block(x, filters: int, name: str):
    """DFL's UpConvBlock: 3x3 stride-2 transposed convolution ('same': the size doubles) + FRN."""
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=name)(x)
    return DflFRN(name=f"{name}_frn")(x)


def up_width(level: int, dfl_layout: bool) -> int:
    """Width (times the base) of the upsampling block into `level`."""
    width = LEVEL_WIDTHS[level]
    return min(width, 4) if dfl_layout else max(1, width // 2)


def build_xseg(resolution: int = 256, dims: int = 32, name: str = "xseg", dfl_layout: bool = False) -> keras.Model:
    """(R, R, 3) BGR 0..1 -> (R, R, 1) float32 mask logits (apply a sigmoid for the mask); `dfl_layout`:
    DFL's exact network (see the module docstring)."""
    if resolution % (1 << XSEG_LEVELS):
        raise ValueError(f"resolution {resolution} must be a multiple of {1 << XSEG_LEVELS}")
    inp = keras.Input((resolution, resolution, 3), name="face")
    x, skips = inp, []
    level_convs = DFL_LEVEL_CONVS if dfl_layout else LEVEL_CONVS
    for level, (width, convs, blur) in enumerate(zip(LEVEL_WIDTHS, level_convs, BLUR_SIZES)):
        for j in range(convs):
            x = conv_block(x, dims * width, f"conv{level}{j + 1}", dfl_layout)
        skips.append(x)  # (R / 2^level, ..., dims * width)
        x = BlurPool(blur, dfl_padding=dfl_layout, name=f"blurpool{level}")(x)
    side, ch = resolution >> XSEG_LEVELS, dims * LEVEL_WIDTHS[-1]
    x = layers.Flatten(name="flatten")(x)  # side * side * 8 dims
    x = layers.Dense(BOTTLENECK, name="dense1")(x)
    x = layers.Dense(side * side * ch, name="dense2")(x)
    x = layers.Reshape((side, side, ch), name="unflatten")(x)
    for level in reversed(range(XSEG_LEVELS)):
        width, convs = LEVEL_WIDTHS[level], level_convs[level]
        up = dfl_up_block if dfl_layout else up_block
        x = up(x, dims * up_width(level, dfl_layout), f"up{level}")
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        for j in reversed(range(convs)):
            x = conv_block(x, dims * width, f"uconv{level}{j + 1}", dfl_layout)
    logits = layers.Conv2D(1, 3, padding="same", name="out_conv")(x)
    return keras.Model(inp, to_float32(logits, "logits"), name=name)

"""The building blocks of DFL's DeepFake architecture, as Keras 3 functional pieces (keras.ops only).

Every block takes and returns a symbolic tensor in NHWC, so the same graph runs on TensorFlow, JAX
and PyTorch. Names are given to every layer so saved weights are keyed by stable paths.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers, ops


def activation(kind: str) -> Callable:
    """`leaky` (DFL's default, slope 0.1) or `cos` (the `-c` variant: x * cos(x))."""
    if kind == "cos":
        return lambda x: x * ops.cos(x)
    return lambda x: ops.leaky_relu(x, negative_slope=0.1)


class DepthToSpace(layers.Layer):
    """TensorFlow's depth_to_space (DCR order) with block 2, written with reshape/transpose."""

    def call(self, x):
        h, w, c_out = x.shape[1], x.shape[2], x.shape[3] // 4
        x = ops.reshape(x, (-1, h, w, 2, 2, c_out))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * 2, w * 2, c_out))

    def compute_output_shape(self, shape):
        n, h, w, c = shape
        return (n, None if h is None else h * 2, None if w is None else w * 2, c // 4)


class PixelNorm(layers.Layer):
    """Normalise each vector to unit RMS over its last axis (DFL's `-u` "increased likeness")."""

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)


def conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)


def downscale(x, filters: int, name: str, act: Callable, kernel: int = 5, symmetric: bool = False):
    """Stride-2 convolution: halves the resolution. `symmetric` pads (k-1)//2 on every side and runs a
    `valid` convolution, as DFL does (Keras `same` pads 1 before and 2 after for a 5x5 stride 2): the
    layout of imported DFL models; the kernel has the same shape and name either way."""
    if symmetric:
        x = layers.ZeroPadding2D((kernel - 1) // 2, name=f"{name}_pad")(x)
        y = layers.Conv2D(filters, kernel, strides=2, padding="valid", name=name)(x)
    else:
        y = conv(x, filters, kernel, name, strides=2)
    return layers.Activation(act, name=f"{name}_act")(y)


def upscale(x, filters: int, name: str, act: Callable, kernel: int = 3):
    """Convolution to 4x the channels, then depth-to-space: doubles the resolution."""
    x = layers.Activation(act, name=f"{name}_act")(conv(x, filters * 4, kernel, name))
    return DepthToSpace(name=f"{name}_d2s")(x)


def residual_block(x, filters: int, name: str, act_kind: str = "leaky", kernel: int = 3):
    """Two convolutions with leaky ReLU 0.2 (or x*cos x) and a skip connection, as in DFL's decoders."""
    act = activation("cos") if act_kind == "cos" else (lambda t: ops.leaky_relu(t, negative_slope=0.2))
    y = conv(x, filters, kernel, f"{name}_conv1")
    y = layers.Activation(act, name=f"{name}_act1")(y)
    y = conv(y, filters, kernel, f"{name}_conv2")
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation(act, name=f"{name}_act2")(y)


def to_float32(x, name: str):
    """Outputs leave the model in float32, whatever the compute precision (losses need the range)."""
    return layers.Activation("linear", dtype="float32", name=name)(x)


def build(inputs, outputs, name: str) -> keras.Model:
    return keras.Model(inputs, outputs, name=name)

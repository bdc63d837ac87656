"""Reenact's networks (pix2pix's shapes, Keras 3 layers only): a U-Net generator that draws a face from a
landmark sketch, and a conditional PatchGAN that judges (sketch, face) pairs patch by patch.

Upsampling is a bilinear resize followed by a convolution (no transposed convolutions: they leave
checkerboard patterns in faces). No normalisation layers: the batch is small and a face's colours
are its identity.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from facelib.landmark_sketch import CHANNELS as SKETCH_CHANNELS
from models.reenact_options import REENACT_LEVELS


def _leaky(x):
    return ops.leaky_relu(x, negative_slope=0.2)


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    y = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)
    return layers.Activation(_leaky, name=f"{name}_act")(y)


def level_widths(dims: int) -> list[int]:
    """Channels per U-Net level, from the first halving down: dims, 2*dims, 4*dims, 8*dims, 8*dims."""
    return [int(dims) * min(2 ** i, 8) for i in range(REENACT_LEVELS)]


def build_generator(resolution: int, dims: int, temporal: bool) -> keras.Model:
    """(R, R, sketch channels) [+ (R, R, 3) previous frame] -> (R, R, 3) BGR face in 0..1."""
    res = int(resolution)
    if res % (1 << REENACT_LEVELS):
        raise ValueError(f"resolution must be a multiple of {1 << REENACT_LEVELS}, got {res}")
    sketch = keras.Input((res, res, SKETCH_CHANNELS), name="sketch")
    inputs = [sketch]
    x = sketch
    if temporal:
        previous = keras.Input((res, res, 3), name="previous")
        inputs.append(previous)
        x = layers.Concatenate(name="with_previous")([sketch, previous])
    widths = level_widths(dims)
    stem = _conv(x, max(8, widths[0] // 2), 3, "stem")  # (R, R): thin lines need a full-resolution path
    skips, x = [stem], stem
    for i, ch in enumerate(widths):  # (R/2 ... R/32)
        x = _conv(x, ch, 4, f"down{i}", strides=2)
        x = _conv(x, ch, 3, f"down{i}_b")
        skips.append(x)
    skips.pop()  # the bottom level is x itself
    for i in reversed(range(REENACT_LEVELS)):  # back up to (R, R), joining each level's skip
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{i}_resize")(x)
        x = _conv(x, widths[i - 1] if i else max(8, widths[0] // 2), 3, f"up{i}")
        x = layers.Concatenate(name=f"up{i}_join")([x, skips[i]])
        x = _conv(x, widths[i - 1] if i else max(8, widths[0] // 2), 3, f"up{i}_b")
    x = layers.Conv2D(3, 3, padding="same", name="to_bgr")(x)
    face = layers.Activation("sigmoid", dtype="float32", name="face")(x)
    return keras.Model(inputs, face, name="generator")


def build_discriminator(resolution: int, dims: int) -> keras.Model:
    """pix2pix's conditional PatchGAN: (sketch, face) -> a map of real/fake logits; three stride-2 4x4
    convolutions and a stride-1 one see about 70 px patches (all of a 32 px face in tests)."""
    res = int(resolution)
    sketch = keras.Input((res, res, SKETCH_CHANNELS), name="sketch")
    face = keras.Input((res, res, 3), name="face")
    x = layers.Concatenate(name="pair")([sketch, face])
    for i in range(3):
        x = _conv(x, int(dims) * 2 ** i, 4, f"conv{i}", strides=2)
    x = _conv(x, int(dims) * 8, 4, "conv3")
    x = layers.Conv2D(1, 4, padding="same", name="logits")(x)
    return keras.Model([sketch, face], layers.Activation("linear", dtype="float32", name="out")(x), name="D_gan")

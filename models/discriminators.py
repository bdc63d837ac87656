"""Discriminators for SAEHD's optional adversarial terms: a patch GAN on faces and a code critic.

DFL uses a UNet patch discriminator; a plain PatchGAN whose receptive field matches `gan_patch_size`
gives the same "is this patch a real face patch" signal with fewer weights.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from models.archi import ArchiSpec


def _leaky(x):
    return ops.leaky_relu(x, negative_slope=0.2)


def patch_depth(resolution: int, patch_size: int) -> int:
    """How many stride-2 4x4 convolutions give a receptive field of at least `patch_size` pixels
    (the field after n of them is 1 + 3 * (2^n - 1)), keeping at least a 2x2 output."""
    n = 1
    while 1 + 3 * (2 ** n - 1) < patch_size and resolution // 2 ** (n + 1) >= 2:
        n += 1
    return n


def build_patch_discriminator(resolution: int, patch_size: int, dims: int) -> keras.Model:
    """(R, R, 3) face -> a map of real/fake logits, one per patch."""
    inp = keras.Input((resolution, resolution, 3), name="face")
    x = inp
    for i in range(patch_depth(resolution, patch_size)):
        ch = dims * min(2 ** i, 8)
        x = layers.Activation(_leaky, name=f"act{i}")(layers.Conv2D(ch, 4, strides=2, padding="same", name=f"conv{i}")(x))
    x = layers.Conv2D(1, 3, padding="same", name="logits")(x)
    return keras.Model(inp, layers.Activation("linear", dtype="float32", name="out")(x), name="D_gan")


def build_code_discriminator(spec: ArchiSpec) -> keras.Model:
    """DF's true-face critic: the inter output (the code the decoders see) -> one logit."""
    inp = keras.Input((spec.code_side, spec.code_side, spec.decoder_in_ch), name="code")
    x = inp
    side, ch = spec.code_side, 256
    i = 0
    while side > 2:
        x = layers.Activation(_leaky, name=f"act{i}")(layers.Conv2D(ch, 3, strides=2, padding="same", name=f"conv{i}")(x))
        side, ch, i = (side + 1) // 2, min(ch * 2, 512), i + 1
    x = layers.Dense(1, name="logit")(layers.Flatten(name="flatten")(x))
    return keras.Model(inp, layers.Activation("linear", dtype="float32", name="out")(x), name="D_code")

"""AMP's options (DFL's prompts and ranges), importable without loading Keras: main.py declares their flags.

DFL's AMP asks: resolution, face type, ae/inter/e/d/d_mask dims, the training morph factor, uniform yaw,
blur out mask, lr dropout, random warp, GAN (power, patch size, dims), colour transfer, gradient clipping,
plus the common ones (autobackup, preview history, flips, batch size). `train_inters` is ours: DFL's final
code never trains the inter heads (see models/amp.py); we train them unless told otherwise.
"""
from __future__ import annotations

from typing import Any, Mapping

from core.settings import Option
from models.saehd_options import COMMON_OPTIONS, CT_MODES

AMP_FACE_TYPES = ("f", "wf", "head")


def _check_resolution(value: int, others: Mapping[str, Any]) -> str | None:
    """AMP halves the face five times (res/32 bottleneck)."""
    return "a multiple of 32" if value % 32 else None


def _even(value: int, others: Mapping[str, Any]) -> str | None:
    return "an even number" if value % 2 else None


def _mask_third(o: dict[str, Any]) -> int:
    d = int(o.get("d_dims", 64))
    return max(8, (d // 3 + 1) // 2 * 2)


def _gan_on(o: dict[str, Any]) -> bool:
    return float(o.get("gan_power", 0)) > 0


AMP_OWN_OPTIONS: tuple[Option, ...] = (
    Option("resolution", 224, "Face size in pixels, a multiple of 32. Higher = sharper and slower.", "Resolution",
           "int", valid_range=(64, 640), first_run_only=True, check=_check_resolution),
    Option("face_type", "wf", "Full face, whole face or head: how much of the head the model sees.", "Face type",
           "str", choices=AMP_FACE_TYPES, first_run_only=True),
    Option("ae_dims", 256, "Autoencoder bottleneck size: more keeps more detail.", "AutoEncoder dimensions", "int",
           valid_range=(8, 1024), first_run_only=True),
    Option("inter_dims", 1024, "Channels of each inter head's output; the morph factor mixes these channels.",
           "Inter dimensions", "int", valid_range=(8, 2048), first_run_only=True),
    Option("e_dims", 64, "Encoder width (even).", "Encoder dimensions", "int", valid_range=(8, 256),
           first_run_only=True, check=_even),
    Option("d_dims", 64, "Decoder width.", "Decoder dimensions", "int", valid_range=(8, 256), first_run_only=True),
    Option("d_mask_dims", _mask_third, "Mask decoder width (default d_dims/3, even).", "Decoder mask dimensions",
           "int", valid_range=(4, 256), first_run_only=True, check=_even),
    Option("morph_factor", 0.5, "Share of the inter channels a src sample takes from the src head while training "
           "(0.1..0.5). Higher: the swap morphs more fully into src.", "Morph factor", "float",
           valid_range=(0.1, 0.5), first_run_only=True),
    Option("train_inters", True, "Train the src and dst inter heads (ours). DFL's final AMP leaves them at their "
           "random initial weights; --no-train-inters keeps that behaviour (set for imported DFL models).",
           "Train the inter heads", "bool", switch=True, negative_help="DFL's behaviour: the inter heads keep their "
           "random initial weights (only encoder and decoder learn)."),
    Option("uniform_yaw", False, "Sample faces evenly over head turn (helps profiles in small facesets).",
           "Uniform yaw distribution of samples", "bool"),
    Option("blur_out_mask", False, "Blur the background just outside the face mask in the targets, so the model "
           "spends nothing on it; needs XSeg-masked facesets.", "Blur out mask", "bool"),
    Option("lr_dropout", False, "Update 30% of the weights per step with a cyclic learning rate: sharper late in "
           "training.", "Use learning rate dropout", "bool"),
    Option("random_warp", True, "Warp the inputs randomly (generalisation); turn off late in training for sharpness.",
           "Enable random warp of samples", "bool"),
    Option("gan_power", 0.0, "Patch-GAN term for fine detail (src and dst reconstructions); typical 0.1, late in "
           "training.", "GAN power", "float", valid_range=(0.0, 5.0)),
    Option("gan_patch_size", lambda o: max(3, int(o.get("resolution", 224)) // 8), "GAN patch size in pixels.",
           "GAN patch size", "int", valid_range=(3, 640), ask_if=_gan_on),
    Option("gan_dims", 16, "GAN discriminator width.", "GAN dimensions", "int", valid_range=(4, 512), ask_if=_gan_on),
    Option("ct_mode", "none", "Colour-transfer src samples towards dst while training.", "Color transfer for src faceset",
           "str", choices=CT_MODES),
    Option("clipgrad", False, "Clip the gradient norm (fewer collapses, slightly slower).", "Enable gradient clipping",
           "bool"),
)

# DFL's common options, with AMP's batch default (8)
AMP_COMMON_OPTIONS: tuple[Option, ...] = tuple(
    Option("batch_size", 8, o.help, o.question, "int", valid_range=o.valid_range) if o.key == "batch_size" else o
    for o in COMMON_OPTIONS)

AMP_OPTIONS: tuple[Option, ...] = AMP_OWN_OPTIONS + AMP_COMMON_OPTIONS

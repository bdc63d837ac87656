"""Reenact's options, importable without loading Keras: main.py declares their flags."""
from __future__ import annotations

from typing import Any, Mapping

from core.settings import Option
from facelib.face_type import SHORT_NAMES as FACE_TYPES

REENACT_LEVELS = 5  # halvings of the U-Net: 128 -> 4


def _check_resolution(value: int, others: Mapping[str, Any]) -> str | None:
    step = 1 << REENACT_LEVELS
    return None if value % step == 0 else f"a multiple of {step} (the generator halves the face {REENACT_LEVELS} times)"


def _gan_on(o: Mapping[str, Any]) -> bool:
    return float(o.get("gan_power", 0)) > 0


REENACT_OPTIONS: tuple[Option, ...] = (
    Option("resolution", 128, "Face size in pixels; a multiple of 32. Higher = sharper and slower.", "Resolution",
           "int", valid_range=(32, 512), first_run_only=True, check=_check_resolution),
    Option("face_type", "f", "Half, mid-full, full, whole face or head: how much of the head the model draws.",
           "Face type", "str", choices=FACE_TYPES, first_run_only=True),
    Option("g_dims", 32, "Generator (U-Net) width: channels of its first level; deeper levels have up to 8x.",
           "Generator dimensions", "int", valid_range=(8, 256), first_run_only=True),
    Option("gan_power", 0.1, "Weight of the PatchGAN term (pix2pix's adversarial loss, for texture); 0 trains "
           "with L1 (+DSSIM) alone and builds no discriminator.", "GAN power", "float", valid_range=(0.0, 10.0)),
    Option("gan_dims", 32, "PatchGAN discriminator width.", "GAN dimensions", "int", valid_range=(4, 512),
           first_run_only=True, ask_if=_gan_on),
    Option("dssim_loss", True, "Add DFL's DSSIM structure term to the L1 loss (sharper faces early on).",
           "DSSIM loss", "bool"),
    Option("temporal_input", False, "Give the generator the previous output frame as a second input, for steadier "
           "video (trained on jittered copies of the target; merge frames in order).", "Temporal input", "bool",
           first_run_only=True),
    Option("learning_rate", 2e-4, "Adam learning rate (pix2pix: 2e-4, beta1 0.5).", "Learning rate", "float",
           valid_range=(1e-6, 1e-2)),
    Option("random_src_flip", False, "Random horizontal flips of src faces (the drawing flips with them).",
           "Flip SRC faces randomly", "bool"),
    Option("batch_size", 4, "Faces per iteration.", "Batch_size", "int", valid_range=(1, 256)),
    Option("autobackup_hour", 0, "Back up the model every N hours into <model>_autobackups/01..24 (0 = off).",
           "Autobackup every N hour", "int", valid_range=(0, 24), alias="--autobackup-hours"),
    Option("write_preview_history", False, "Save preview images to <model>_history every few hundred iterations.",
           "Write preview history", "bool"),
)

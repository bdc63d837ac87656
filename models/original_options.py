"""Original's options, importable without loading Keras: main.py declares their flags.

The classic autoencoder has few knobs: its size (resolution and widths, fixed at creation), masked training,
random warp, and DFL's common options (autobackup, preview history, flips, batch size).
"""
from __future__ import annotations

from typing import Any, Mapping

from core.settings import Option
from facelib.face_type import SHORT_NAMES as FACE_TYPES
from models.saehd_options import COMMON_OPTIONS


def _check_resolution(value: int, others: Mapping[str, Any]) -> str | None:
    """The encoder halves the face four times."""
    return "a multiple of 16" if value % 16 else None


ORIGINAL_OWN_OPTIONS: tuple[Option, ...] = (
    Option("resolution", 64, "Face size in pixels, a multiple of 16; the classic model is 64.", "Resolution", "int",
           valid_range=(32, 256), first_run_only=True, check=_check_resolution),
    Option("face_type", "f", "Half, mid-full, full, whole face or head: how much of the head the model sees.",
           "Face type", "str", choices=FACE_TYPES, first_run_only=True),
    Option("ae_dims", 512, "Bottleneck size (the classic model: 1024; 512 is its low-memory size).",
           "AutoEncoder dimensions", "int", valid_range=(16, 1024), first_run_only=True),
    Option("e_dims", 64, "Encoder width: its four convolutions have e, 2e, 4e and 8e channels (classic: 128).",
           "Encoder dimensions", "int", valid_range=(8, 256), first_run_only=True),
    Option("d_dims", 32, "Decoder width: its three upscales have 4d, 2d and d channels (classic: 64; the decoders "
           "are most of the work: 32 needs about 2.5x fewer operations per step).",
           "Decoder dimensions", "int", valid_range=(8, 256), first_run_only=True),
    Option("masked_training", True, "Learn only inside the face hull (the merge pastes only that part); off learns "
           "the whole square, as the first face-swap programs did.", "Masked training", "bool"),
    Option("random_warp", True, "Warp the inputs randomly (generalisation); turn off late in training for sharpness.",
           "Enable random warp of samples", "bool"),
)

ORIGINAL_COMMON_OPTIONS: tuple[Option, ...] = tuple(
    Option("batch_size", 8, o.help, o.question, "int", valid_range=o.valid_range) if o.key == "batch_size" else o
    for o in COMMON_OPTIONS)

ORIGINAL_OPTIONS: tuple[Option, ...] = ORIGINAL_OWN_OPTIONS + ORIGINAL_COMMON_OPTIONS

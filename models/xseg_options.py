"""XSeg's options (DFL's prompts and ranges, plus `generic`), importable without loading Keras:
main.py declares their flags from here."""
from __future__ import annotations

from typing import Any, Mapping

from core.settings import Option, never
from facelib.face_type import SHORT_NAMES as FACE_TYPES

XSEG_RESOLUTION = 256  # DFL's fixed size; other sizes exist only for small test models
XSEG_LEVELS = 6  # halvings of the U-Net: 256 -> 4


def _check_resolution(value: int, others: Mapping[str, Any]) -> str | None:
    step = 1 << XSEG_LEVELS
    return None if value % step == 0 else f"a multiple of {step} (the network halves the face {XSEG_LEVELS} times)"


XSEG_OPTIONS: tuple[Option, ...] = (
    Option("face_type", "wf", "How much of the head the mask covers; DFL's XSeg trains on whole-face crops "
           "(faces of other types are re-cropped).", "Face type", "str", choices=FACE_TYPES, first_run_only=True),
    Option("resolution", XSEG_RESOLUTION, "XSeg's input size in pixels (DFL: 256; smaller only for tests).",
           "Resolution", "int", valid_range=(64, 512), first_run_only=True, ask_if=never, check=_check_resolution),
    Option("dims", 32, "XSeg's base channel width (DFL: 32; the widest level has 8x).", "XSeg dimensions", "int",
           valid_range=(2, 128), first_run_only=True, ask_if=never),
    Option("batch_size", 4, "Faces per side (src and dst) per iteration.", "Batch_size", "int", valid_range=(1, 64)),
    Option("generic", False, "Train on targets the program makes (the face's landmark hull minus synthetic hands, "
           "hair, glasses, objects and shapes pasted over it) as well as on hand labels, which take precedence; "
           "without it, training uses the labelled faces of src and dst only (facesets with no labels at all "
           "switch it on, saved with the model). A generic model's mask is cut "
           "to the landmark hull when applied (its targets never reach past it): for masks past the hull, "
           "train on labels without --generic.", "Generic targets", "bool",
           switch=True, negative="--no-generic", negative_help="train on the labelled faces only (default)"),
    Option("autobackup_hour", 0, "Back up the model every N hours into <model>_autobackups/01..24 (0 = off).",
           "Autobackup every N hour", "int", valid_range=(0, 24), alias="--autobackup-hours"),
)

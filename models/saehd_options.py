"""SAEHD's options (DFL's prompts, ranges and help), importable without loading Keras."""
from __future__ import annotations

from typing import Any, Mapping

from core.settings import Option
from facelib.face_type import SHORT_NAMES as FACE_TYPES
from facelib.face_type import FaceType

CT_MODES = ("none", "rct", "lct", "mkl", "idt", "sot")


def _even_third(o: dict[str, Any]) -> int:
    d = int(o.get("d_dims", 64))
    return max(4, (d // 3 + 1) // 2 * 2)


def _wide_face(o: dict[str, Any]) -> bool:
    code = str(o.get("face_type", "f"))
    return code in FACE_TYPES and FaceType.from_string(code) in (FaceType.WHOLE_FACE, FaceType.HEAD)


ARCHI_TYPES = ("df", "liae")
ARCHI_VARIANTS = "udtc"


def _archi_parts(archi: str) -> tuple[str, str] | None:
    """("liae", "ud") for "liae-ud"; None when it is not df or liae with distinct u/d/t/c variants."""
    kind, _, variants = archi.partition("-")
    if kind not in ARCHI_TYPES or ("-" in archi and not variants) or len(set(variants)) != len(variants) \
            or any(c not in ARCHI_VARIANTS for c in variants):
        return None
    return kind, variants


def _check_archi(value: str, others: Mapping[str, Any]) -> str | None:
    if _archi_parts(value) is None:
        return "df or liae, optionally followed by - and any of u, d, t, c (e.g. liae-ud, df-udt)"
    return None


def _check_resolution(value: int, others: Mapping[str, Any]) -> str | None:
    """A multiple of 16, or of 32 with a -d archi (the networks halve the face 4 or 5 times)."""
    archi = others.get("archi")
    parts = _archi_parts(archi) if isinstance(archi, str) else None
    if parts and "d" in parts[1] and value % 32:
        return f"a multiple of 32 for archi {archi!r} (its d variant halves the size once more)"
    if value % 16:
        return "a multiple of 16"
    return None


COMMON_OPTIONS: tuple[Option, ...] = (
    Option("autobackup_hour", 0, "Back up the model every N hours into <model>_autobackups/01..24 (0 = off).",
           "Autobackup every N hour", "int", valid_range=(0, 24), alias="--autobackup-hours"),
    Option("write_preview_history", False, "Save preview images to <model>_history every few hundred iterations.",
           "Write preview history", "bool"),
    Option("random_src_flip", False, "Random horizontal flips of src faces: more angles, less likeness.",
           "Flip SRC faces randomly", "bool"),
    Option("random_dst_flip", True, "Random horizontal flips of dst faces: better generalisation.",
           "Flip DST faces randomly", "bool"),
    Option("batch_size", 4, "Faces per side per iteration. Larger trains better per step but needs more memory.",
           "Batch_size", "int", valid_range=(1, 256)),
)

SAEHD_OPTIONS: tuple[Option, ...] = (
    Option("resolution", 128, "Face size in pixels; a multiple of 16 (32 for -d archis). Higher = sharper and slower.",
           "Resolution", "int", valid_range=(32, 640), first_run_only=True, check=_check_resolution),
    Option("face_type", "f", "Half, mid-full, full, whole face or head: how much of the head the model sees.",
           "Face type", "str", choices=FACE_TYPES, first_run_only=True),
    Option("archi", "liae-ud", "df keeps more identity, liae fixes different face shapes; -u likeness, -d double "
           "resolution at the same cost, -t deeper, -c cos activations.", "AE architecture", "str", first_run_only=True,
           check=_check_archi),
    Option("ae_dims", 256, "Autoencoder bottleneck size: more keeps more detail.", "AutoEncoder dimensions", "int",
           valid_range=(8, 1024), first_run_only=True),
    Option("e_dims", 64, "Encoder width (even).", "Encoder dimensions", "int", valid_range=(8, 256), first_run_only=True),
    Option("d_dims", 64, "Decoder width.", "Decoder dimensions", "int", valid_range=(4, 256), first_run_only=True),
    Option("d_mask_dims", _even_third, "Mask decoder width (default d_dims/3, even).", "Decoder mask dimensions", "int",
           valid_range=(4, 256), first_run_only=True),
    Option("masked_training", True, "Train only inside the face mask (whole face / head); off trains the whole square.",
           "Masked training", "bool", ask_if=_wide_face),
    Option("eyes_mouth_prio", False, "Extra weight on eyes and mouth (helps gaze and teeth).", "Eyes and mouth priority", "bool"),
    Option("uniform_yaw", False, "Sample faces evenly over head turn (helps profiles in small facesets).",
           "Uniform yaw distribution of samples", "bool"),
    Option("adabelief", True, "AdaBelief optimizer (DFL's default); n uses RMSprop.", "Use AdaBelief optimizer?", "bool"),
    Option("lr_dropout", False, "Update 30% of the weights per step with a cyclic learning rate: sharper late in training.",
           "Use learning rate dropout", "bool"),
    Option("random_warp", True, "Warp the inputs randomly (generalisation); turn off late in training for sharpness.",
           "Enable random warp of samples", "bool"),
    Option("random_hsv_power", 0.0, "Random hue/saturation/value shift of src inputs (0..0.3), for stable colour.",
           "Random hue/saturation/light intensity", "float", valid_range=(0.0, 0.3)),
    Option("gan_power", 0.0, "Patch-GAN term for fine detail; typical 0.1, late in training.", "GAN power", "float",
           valid_range=(0.0, 5.0)),
    Option("gan_patch_size", lambda o: max(3, int(o.get("resolution", 128)) // 8), "GAN patch size in pixels.",
           "GAN patch size", "int", valid_range=(3, 640), ask_if=lambda o: float(o.get("gan_power", 0)) > 0),
    Option("gan_dims", 16, "GAN discriminator width.", "GAN dimensions", "int", valid_range=(4, 512),
           ask_if=lambda o: float(o.get("gan_power", 0)) > 0),
    Option("true_face_power", 0.0, "DF only: pushes the swap towards the src identity; typical 0.01.", "'True face' power.",
           "float", valid_range=(0.0, 1.0), ask_if=lambda o: str(o.get("archi", "")).startswith("df")),
    Option("face_style_power", 0.0, "Transfers dst colour and lighting onto the face; start at 0.001.", "Face style power",
           "float", valid_range=(0.0, 100.0)),
    Option("bg_style_power", 0.0, "Makes the swap's background match dst.", "Background style power", "float",
           valid_range=(0.0, 100.0)),
    Option("ct_mode", "none", "Colour-transfer src samples towards dst while training.", "Color transfer for src faceset",
           "str", choices=CT_MODES),
    Option("clipgrad", False, "Clip the gradient norm (fewer collapses, slightly slower).", "Enable gradient clipping", "bool"),
    Option("pretrain", False, "Pretrain on --pretraining-data-dir (any faces) before training on your pair.",
           "Enable pretraining mode", "bool"),
)

PRETRAIN_OVERRIDES = {"random_warp": False, "random_src_flip": True, "random_dst_flip": True, "gan_power": 0.0,
                      "random_hsv_power": 0.0, "face_style_power": 0.0, "bg_style_power": 0.0, "lr_dropout": False,
                      "uniform_yaw": True, "true_face_power": 0.0}

"""Quick96: DFL's fixed, fast model (DF-UD, 96 px, full face, batch 4).

Its one option is `dfl_layout`, never asked: set by `importdfl` for a Quick96 model imported from DFL,
so that the networks are DFL's exact layers (see models.archi)."""
from __future__ import annotations

from typing import Any

from facelib.face_type import FaceType
from models.augment import SampleSpec
from models.autoencoder import SwapAutoencoder
from models.dfl_layout import DFL_LAYOUT

QUICK96_OPTIONS: dict[str, Any] = {
    "resolution": 96, "face_type": "f", "archi": "df-ud", "ae_dims": 128, "e_dims": 64, "d_dims": 64,
    "d_mask_dims": 16, "masked_training": True, "eyes_mouth_prio": False, "optimizer": "rmsprop",
    "learning_rate": 2e-4, "lr_dropout": True, "lr_cos_period": 0, "clipgrad": False, "random_warp": True,
    "random_hsv_power": 0.0, "ct_mode": "none", "uniform_yaw": False, "random_src_flip": False,
    "random_dst_flip": False, "gan_power": 0.0, "true_face_power": 0.0, "face_style_power": 0.0,
    "bg_style_power": 0.0, "batch_size": 4, "retrain_unwarped_every": 3, "pretrain": False,
}


class Quick96(SwapAutoencoder):
    CLASS_NAME = "Quick96"
    OPTIONS = (DFL_LAYOUT,)  # nothing to ask: the point of Quick96 is a fixed, proven configuration
    FIXED_OPTIONS = QUICK96_OPTIONS

    def __init__(self, files, options: dict[str, Any], *, training: bool):
        super().__init__(files, {**options, **QUICK96_OPTIONS}, training=training)

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        spec = SampleSpec(resolution=96, face_type=FaceType.FULL, random_warp=True, eyes_mouth=False)
        return spec, spec

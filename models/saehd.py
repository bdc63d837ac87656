"""SAEHD: DFL's configurable high-definition swap model."""
from __future__ import annotations

from typing import Any

from models.augment import SampleSpec
from models.autoencoder import SwapAutoencoder
from models.dfl_layout import DFL_LAYOUT
from models.saehd_options import COMMON_OPTIONS, PRETRAIN_OVERRIDES, SAEHD_OPTIONS


class SAEHD(SwapAutoencoder):
    CLASS_NAME = "SAEHD"
    OPTIONS = SAEHD_OPTIONS + COMMON_OPTIONS + (DFL_LAYOUT,)

    def effective_options(self) -> dict[str, Any]:
        o = dict(self.options)
        if o.get("pretrain"):
            o.update(PRETRAIN_OVERRIDES)
        o.update(optimizer="adabelief" if o.get("adabelief", True) else "rmsprop", learning_rate=5e-5,
                 lr_cos_period=500, retrain_unwarped_every=0)
        return o

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        o = self.effective_options()
        ct = None if o["ct_mode"] == "none" else o["ct_mode"]
        common = dict(resolution=self.resolution, face_type=self.face_type, random_warp=bool(o["random_warp"]),
                      scale_range=(-0.15, 0.15), uniform_yaw=bool(o["uniform_yaw"]), eyes_mouth=bool(o["eyes_mouth_prio"]))
        return (SampleSpec(random_flip=bool(o["random_src_flip"]), random_hsv_power=float(o["random_hsv_power"]),
                           ct_mode=ct, **common),
                SampleSpec(random_flip=bool(o["random_dst_flip"]), **common))

    def summary_rows(self) -> list[tuple[str, str]]:
        eff = self.effective_options()
        rows = []
        for opt in self.OPTIONS:
            value = eff.get(opt.key)
            if opt is DFL_LAYOUT and not value:
                continue  # only imported models say so
            note = " (pretrain)" if self.options.get("pretrain") and opt.key in PRETRAIN_OVERRIDES else ""
            rows.append((opt.key, f"{value}{note}"))
        return rows

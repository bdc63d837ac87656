"""AMP: not built yet (issue 16)."""
from __future__ import annotations

from core.errors import UserError
from models.amp_options import AMP_OPTIONS
from models.base import ModelBase


class AMP(ModelBase):
    CLASS_NAME = "AMP"
    OPTIONS = AMP_OPTIONS

    def build_nets(self):
        raise UserError("the AMP model is not available yet")

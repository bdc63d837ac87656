"""Reenact: not built yet (issue 16)."""
from __future__ import annotations

from core.errors import UserError
from models.base import ModelBase
from models.reenact_options import REENACT_OPTIONS


class Reenact(ModelBase):
    CLASS_NAME = "Reenact"
    OPTIONS = REENACT_OPTIONS

    def build_nets(self):
        raise UserError("the Reenact model is not available yet")

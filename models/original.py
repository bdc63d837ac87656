"""Original: not built yet (issue 16)."""
from __future__ import annotations

from core.errors import UserError
from models.base import ModelBase
from models.original_options import ORIGINAL_OPTIONS


class Original(ModelBase):
    CLASS_NAME = "Original"
    OPTIONS = ORIGINAL_OPTIONS

    def build_nets(self):
        raise UserError("the Original model is not available yet")

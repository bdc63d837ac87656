"""The `dfl_layout` model option, importable without Keras: set by `importdfl` only (no flag, never
asked), it makes a model build DFL's exact layers so that an imported DFL model gives DFL's outputs.
Models created here keep their own layout (off)."""
from __future__ import annotations

from core.settings import Option, never

DFL_LAYOUT = Option("dfl_layout", False, "DFL's exact layer layout (padding, heads, XSeg's transposed convolutions): "
                    "set for models imported from DFL", "DFL layer layout", "bool", first_run_only=True, ask_if=never)

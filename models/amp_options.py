"""AMP's options (DFL's prompts and ranges), importable without loading Keras: main.py declares their flags."""
from __future__ import annotations

from core.settings import Option

AMP_OPTIONS: tuple[Option, ...] = ()

"""Original's options, importable without loading Keras: main.py declares their flags."""
from __future__ import annotations

from core.settings import Option

ORIGINAL_OPTIONS: tuple[Option, ...] = ()

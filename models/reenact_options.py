"""Reenact's options, importable without loading Keras: main.py declares their flags."""
from __future__ import annotations

from core.settings import Option

REENACT_OPTIONS: tuple[Option, ...] = ()

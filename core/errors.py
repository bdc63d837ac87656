"""The one exception type for problems the user can fix (bad input, missing files, bad options).

`main.py` catches it once and prints a single red line; anything else is a bug and gets a traceback.
"""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A failure caused by the user's input, reported as one line naming the file and the problem."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.problem = message
        super().__init__(f"{path}: {message}" if path is not None else message)

"""Where a model lives in the model folder, and its one-file state (weights, optimizer, history).

Files are named `<name>_<Class>_...` as in DFL, so a folder can hold several models. Everything that
must stay consistent (weights of every network, optimizer state, iteration, loss history, preview
samples) is one `.npz` written to a temp file and renamed: a kill during a save leaves the previous
state intact. No pickle: arrays and one JSON string.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.fileio import atomic_path, atomic_write_json

STATE_SUFFIX = "_state.npz"
MAX_BACKUPS = 24


@dataclass
class SavedState:
    """The contents of a state file."""

    meta: dict[str, Any]  # iteration, options, class, format
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # net/..., opt/..., loss_history, preview/...

    @property
    def iteration(self) -> int:
        return int(self.meta.get("iteration", 0))


@dataclass(frozen=True)
class ModelFiles:
    folder: Path
    name: str
    class_name: str

    @property
    def prefix(self) -> str:
        return f"{self.name}_{self.class_name}"

    @property
    def state(self) -> Path:
        return self.folder / f"{self.prefix}{STATE_SUFFIX}"

    @property
    def options(self) -> Path:
        return self.folder / f"{self.prefix}_options.json"

    @property
    def summary(self) -> Path:
        return self.folder / f"{self.prefix}_summary.txt"

    @property
    def history_dir(self) -> Path:
        return self.folder / f"{self.prefix}_history"

    @property
    def backups_dir(self) -> Path:
        return self.folder / f"{self.prefix}_autobackups"

    @property
    def merger_session(self) -> Path:
        return self.folder / f"{self.prefix}_merger_session.json"

    def exists(self) -> bool:
        return self.state.exists()

    # --- state ---------------------------------------------------------------------------------
    def write_state(self, state: SavedState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = dict(state.arrays)
        payload["meta"] = np.array(json.dumps(state.meta))
        with atomic_path(self.state) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **payload)
                f.flush()
                os.fsync(f.fileno())

    def read_state(self) -> SavedState:
        path = self.state
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise UserError("model state file is missing", path) from None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise UserError(f"model state file is corrupt or truncated ({e}); restore a backup from "
                            f"{self.backups_dir.name}", path) from None
        if "meta" not in arrays:
            raise UserError("model state file has no metadata (not written by this toolkit)", path)
        try:
            meta = json.loads(str(arrays.pop("meta")))
        except json.JSONDecodeError as e:
            raise UserError(f"model state metadata is corrupt ({e})", path) from None
        if meta.get("class") != self.class_name:
            raise UserError(f"this is a {meta.get('class')} model, not {self.class_name}", path)
        return SavedState(meta, arrays)

    def write_options(self, options: dict[str, Any]) -> None:
        atomic_write_json(self.options, options)

    def read_options(self) -> dict[str, Any] | None:
        if not self.options.exists():
            return None
        try:
            data = json.loads(self.options.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"options file is not valid JSON ({e})", self.options) from None
        if not isinstance(data, dict):
            raise UserError("options file must hold a JSON object", self.options)
        return data

    # --- backups -------------------------------------------------------------------------------
    def backup(self) -> Path:
        """Copy the saved files to autobackups/01, shifting older backups up (24 kept, as DFL)."""
        root = self.backups_dir
        root.mkdir(parents=True, exist_ok=True)
        oldest = root / f"{MAX_BACKUPS:02d}"
        if oldest.exists():
            shutil.rmtree(oldest)
        for i in range(MAX_BACKUPS - 1, 0, -1):
            src = root / f"{i:02d}"
            if src.exists():
                src.rename(root / f"{i + 1:02d}")
        tmp = root / "01.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for f in (self.state, self.options, self.summary):
            if f.exists():
                shutil.copy2(f, tmp / f.name)
        tmp.rename(root / "01")
        return root / "01"


def find_models(folder: Path, class_name: str) -> list[str]:
    """Names of the models of this class in `folder`, most recently saved first."""
    suffix = f"_{class_name}{STATE_SUFFIX}"
    found = [(p.stat().st_mtime, p.name[: -len(suffix)]) for p in folder.glob(f"*{suffix}") if p.is_file()]
    return [name for _, name in sorted(found, reverse=True)]


def other_class_of(folder: Path, name: str, class_name: str) -> str | None:
    """The class of a model called `name` in `folder` when it is not `class_name` (a wrong --model)."""
    for p in folder.glob(f"{name}_*{STATE_SUFFIX}"):
        other = p.name[len(name) + 1: -len(STATE_SUFFIX)]
        if other != class_name and "_" not in other:
            return other
    return None

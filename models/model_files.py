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
from core.fileio import atomic_path, atomic_write_json, disk_error, read_json_file, remove_stale_partials

STATE_SUFFIX = "_state.npz"
MAX_BACKUPS = 24


@dataclass
class SavedState:
    """The contents of a state file."""

    meta: dict[str, Any]  # iteration, options, class, format
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # net/..., opt/..., loss_history, preview/...
    source_stat: os.stat_result | None = None  # of the file it was read from (to see a later rewrite)

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

    def read_state(self, path: Path | None = None) -> SavedState:
        """The state file (or the same file in another folder, e.g. an autobackup)."""
        path = self.state if path is None else Path(path)
        try:
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                with np.load(f, allow_pickle=False) as data:
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
        except RecursionError:
            raise UserError("model state metadata is nested too deeply", path) from None
        except json.JSONDecodeError as e:
            raise UserError(f"model state metadata is corrupt ({e})", path) from None
        if not isinstance(meta, dict):
            raise UserError("model state metadata is not a JSON object", path)
        if meta.get("class") != self.class_name:
            raise UserError(f"this is a {meta.get('class')} model, not {self.class_name}", path)
        return SavedState(meta, arrays, stat)

    def changed_since(self, stat: os.stat_result | None) -> bool:
        """Whether the state file is no longer the one `stat` describes (another run saved it)."""
        try:
            now = self.state.stat()
        except FileNotFoundError:
            return stat is not None
        if stat is None:
            return True
        return (now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns) != \
            (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)

    def write_options(self, options: dict[str, Any]) -> None:
        atomic_write_json(self.options, options)

    def read_options(self) -> dict[str, Any] | None:
        if not self.options.exists():
            return None
        data = read_json_file(self.options, "options file", max_bytes=1 << 20)
        if not isinstance(data, dict):
            raise UserError("options file must hold a JSON object", self.options)
        return data

    # --- backups -------------------------------------------------------------------------------
    def backup(self) -> Path:
        """Copy the saved files to autobackups/01, shifting older backups up (24 kept, as DFL).

        The copy is made in `01.partial` first and the older backups are shifted only once it is
        complete, so a full disk (or a kill) leaves every earlier backup as it was."""
        root = self.backups_dir
        tmp = root / "01.partial"
        try:
            root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        except OSError as e:
            raise disk_error(e, tmp) from None
        for f in (self.state, self.options, self.summary):
            if f.exists():
                try:
                    shutil.copy2(f, tmp / f.name)
                except OSError as e:  # its filename is the source's: name the copy that failed
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise disk_error(e, tmp / f.name) from None
        oldest = root / f"{MAX_BACKUPS:02d}"
        if oldest.exists():
            shutil.rmtree(oldest)
        for i in range(MAX_BACKUPS - 1, 0, -1):
            src = root / f"{i:02d}"
            if src.exists():
                src.rename(root / f"{i + 1:02d}")
        tmp.rename(root / "01")
        return root / "01"

    def backup_folders(self) -> list[Path]:
        """The autobackups, newest (01) first."""
        if not self.backups_dir.is_dir():
            return []
        return [self.backups_dir / f"{i:02d}" for i in range(1, MAX_BACKUPS + 1)
                if (self.backups_dir / f"{i:02d}" / self.state.name).is_file()]

    def newest_finite_backup(self) -> tuple[Path, int] | None:
        """(folder, iteration) of the newest autobackup whose weights and optimizer state are all finite."""
        for folder in self.backup_folders():
            try:
                state = self.read_state(folder / self.state.name)
            except UserError:
                continue
            if all(np.isfinite(v).all() for k, v in state.arrays.items()
                   if k.startswith(("net/", "opt/")) and v.dtype.kind == "f"):
                return folder, state.iteration
        return None

    def remove_stale_partials(self) -> list[Path]:
        """Leftovers of this model's interrupted saves and backups (dead writers only; nothing else)."""
        removed = remove_stale_partials(self.folder, [self.state.name, self.options.name, self.summary.name])
        if self.history_dir.is_dir():
            for sub in self.history_dir.iterdir():
                if sub.is_dir():
                    removed += remove_stale_partials(sub)
        partial_backup = self.backups_dir / "01.partial"
        if partial_backup.is_dir():  # only a run holding the folder lock writes it: a leftover
            shutil.rmtree(partial_backup, ignore_errors=True)
            removed.append(partial_backup)
        return removed


def find_models(folder: Path, class_name: str) -> list[str]:
    """Names of the models of this class in `folder`, most recently saved first."""
    suffix = f"_{class_name}{STATE_SUFFIX}"
    found = [(p.stat().st_mtime, p.name[: -len(suffix)]) for p in folder.glob(f"*{suffix}") if p.is_file()]
    return [name for _, name in sorted(found, reverse=True)]


def saved_models(folder: Path) -> list[tuple[str, str]]:
    """(name, class) of every model saved in `folder`, of any class, most recently saved first."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        stem = p.name[: -len(STATE_SUFFIX)] if p.name.endswith(STATE_SUFFIX) else ""
        name, _, cls = stem.rpartition("_")
        if name and cls and p.is_file():
            found.append((p.stat().st_mtime, name, cls))
    return [(name, cls) for _, name, cls in sorted(found, reverse=True)]


SEGMENTATION_CLASSES = frozenset({"XSeg"})  # models that mask faces; every other class swaps them


def same_kind(class_a: str, class_b: str) -> bool:
    """Whether two model classes do the same job (both swap faces, or both mask them). DFL keeps the
    XSeg model in the face model's folder: a model of the other kind lives beside, never instead of, it."""
    return (class_a in SEGMENTATION_CLASSES) == (class_b in SEGMENTATION_CLASSES)


def rival_models(folder: Path, class_name: str) -> list[tuple[str, str]]:
    """(name, class) of the models in `folder` of another class doing the same job as `class_name`
    (what a wrong --model would have meant), most recently saved first."""
    return [(n, c) for n, c in saved_models(folder) if c != class_name and same_kind(c, class_name)]


def other_class_of(folder: Path, name: str, class_name: str) -> str | None:
    """The class of a model called `name` in `folder` when it is another class of the same kind
    (a wrong --model); a model of the other kind may share its name."""
    for other_name, other in rival_models(folder, class_name):
        if other_name == name:
            return other
    return None

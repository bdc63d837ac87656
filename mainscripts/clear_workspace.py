"""`clear-workspace`: DFL's "1) clear workspace", which never deletes without a yes.

data_src, data_dst and model are deleted and made again, empty (data_src/aligned, data_dst/aligned,
model); the data_src.*/data_dst.* videos and anything else in the workspace stay. On a terminal it
asks first (default no); without one (a script, a scheduler) it deletes only with `--yes`. A folder
held by a running command (its FolderLock, e.g. a model in training) is never deleted under it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from core import interact, log
from core.errors import UserError
from core.folder_lock import LOCK_NAME, FolderLock

CLEARED = ("data_src", "data_dst", "model")
MADE = ("data_src/aligned", "data_dst/aligned", "model")


def _file_count(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _refuse_if_in_use(folder: Path) -> None:
    """A UserError naming the holder when a running command holds a lock in `folder` or a subfolder."""
    for lock in [folder / LOCK_NAME, *folder.glob(f"*/{LOCK_NAME}")]:
        if lock.is_file():
            with FolderLock(lock.parent, "clear-workspace"):  # raises when another process holds it
                pass


def clear_workspace(workspace: str | Path, yes: bool = False) -> None:
    ws = Path(workspace)
    if ws.exists() and not ws.is_dir():
        raise UserError("expected a workspace folder, found a file", ws)
    present = [ws / name for name in CLEARED if (ws / name).is_symlink() or (ws / name).exists()]
    files = sum(_file_count(p) for p in present if p.is_dir() and not p.is_symlink())
    if files:
        for folder in present:
            if folder.is_dir() and not folder.is_symlink():
                _refuse_if_in_use(folder)
        what = f"data_src, data_dst and model in {ws} ({files} file{'s' if files != 1 else ''}; the videos stay)"
        if not yes:
            if not interact.is_interactive():
                raise UserError(f"not deleting {what} without a confirmation: stdin is not a terminal; "
                                "pass --yes to delete")
            if not interact.ask_bool(f"Delete {what}?", False):
                log.info("Nothing deleted.")
                return
    for folder in present:
        try:
            if folder.is_symlink() or not folder.is_dir():
                folder.unlink()  # a link is removed, never what it points to (as rm -rf does)
            else:
                shutil.rmtree(folder)
        except OSError as e:
            raise UserError(f"could not delete ({e.strerror or e})", e.filename or folder) from None
    for name in MADE:
        (ws / name).mkdir(parents=True, exist_ok=True)
    log.info(f"Workspace cleared: {ws}" if files else f"Workspace ready (nothing to delete): {ws}")

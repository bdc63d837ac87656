"""Rename or move many files as one recoverable operation (sort, filename recovery, trash).

Renaming a faceset in place is a permutation: 00003.jpg may have to become 00001.jpg while 00001.jpg
becomes 00007.jpg, so a crash halfway through a naive loop overwrites or strands files. Here every
move first goes to a private staging folder, then from there to its final name, and a journal
written atomically before each phase says where every file is meant to be. If the process dies,
`finish_interrupted(folder)` (called by every command that renames faces) completes the job from
the journal; no file is ever overwritten or lost.
"""
from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core import log
from core.errors import UserError
from core.fileio import atomic_write_json

JOURNAL_NAME = ".rename_journal.json"
STAGING_NAME = ".renaming"
_FORMAT = "facekit.rename_journal"


@dataclass(frozen=True)
class Move:
    src: Path
    dst: Path


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def _journal(folder: Path) -> Path:
    return folder / JOURNAL_NAME


def move_files(folder: str | Path, moves: Sequence[Move], what: str = "rename") -> None:
    """Carry out `moves` (files in or out of `folder`) so that a crash at any point is recoverable.

    Destinations must be distinct and must not exist unless they are themselves a source of this
    operation (a permutation). Moves whose source already is the destination are skipped.
    """
    folder = Path(folder).resolve()
    finish_interrupted(folder)
    moves = [Move(Path(m.src).resolve(), Path(m.dst).resolve()) for m in moves]
    moves = [m for m in moves if m.src != m.dst]
    if not moves:
        return
    sources = {m.src for m in moves}
    dests = [m.dst for m in moves]
    if len(set(dests)) != len(dests):
        raise ValueError("two files would get the same name")
    for m in moves:
        if not m.src.is_file():
            raise UserError("file vanished before it could be moved", m.src)
        if m.dst.exists() and m.dst not in sources:
            raise UserError("refusing to overwrite an existing file", m.dst)
    base = folder.parent
    staging = folder / STAGING_NAME
    entries = [{"src": _rel(m.src, base), "stage": _rel(staging / f"{i:06d}_{m.src.name}", base),
                "dst": _rel(m.dst, base)} for i, m in enumerate(moves)]
    journal = {"format": _FORMAT, "what": what, "base": "parent", "phase": "stage", "moves": entries}
    staging.mkdir(exist_ok=True)
    atomic_write_json(_journal(folder), journal)
    _run(folder, journal)


def finish_interrupted(folder: str | Path) -> bool:
    """Complete a rename that a crash interrupted in `folder`; True if there was one."""
    folder = Path(folder).resolve()
    path = _journal(folder)
    if not path.exists():
        return False
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
        if journal.get("format") != _FORMAT or journal.get("phase") not in ("stage", "place"):
            raise ValueError("unknown journal format")
        [(e["src"], e["stage"], e["dst"]) for e in journal["moves"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"unreadable rename journal ({e}); the files named in it are in {STAGING_NAME}/", path) from None
    log.warning(f"{folder}: finishing an interrupted {journal.get('what', 'rename')} "
                f"({len(journal['moves'])} files) from its journal")
    _run(folder, journal)
    return True


def _run(folder: Path, journal: dict) -> None:
    base = folder.parent
    try:
        if journal["phase"] == "stage":
            for e in journal["moves"]:
                src, stage = base / e["src"], base / e["stage"]
                if src.exists() and not stage.exists():
                    os.replace(src, stage)
                elif src.exists() and stage.exists():
                    raise UserError(f"both the file and its staged copy {stage} exist; resolve by hand", src)
            journal["phase"] = "place"
            atomic_write_json(_journal(folder), journal)
        for e in journal["moves"]:
            stage, dst = base / e["stage"], base / e["dst"]
            if not stage.exists():
                if not dst.exists():
                    log.warning(f"{dst}: missing after an interrupted rename (was {e['src']})")
                continue
            if dst.exists():
                raise UserError(f"cannot finish the rename: the destination exists; the file is still at {stage}", dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage, dst)
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise UserError("cannot move files across drives; keep the folder and its _trash on one drive", folder) from None
        raise UserError(f"renaming stopped ({e.strerror or e}); run the command again to finish it "
                        f"(journal: {JOURNAL_NAME})", folder) from None
    _journal(folder).unlink(missing_ok=True)
    try:
        (folder / STAGING_NAME).rmdir()
    except OSError:
        pass

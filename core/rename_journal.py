"""Rename or move many files as one recoverable operation (sort, filename recovery, trash).

Renaming a faceset in place is a permutation: 00003.jpg may have to become 00001.jpg while 00001.jpg
becomes 00007.jpg, so a crash halfway through a naive loop overwrites or strands files. Here every
move first goes to a private staging folder, then from there to its final name, and a journal
written atomically before each phase says where every file is meant to be. If the process dies,
`finish_interrupted(folder)` (called by every command that renames faces) completes the job from
the journal; no file is ever overwritten or lost.

A journal travels with the faceset, so it may come from a stranger (an archive with a crafted
`.rename_journal.json`). It is therefore checked whole before the first move: bounded in size, every
field of the expected type, and every path one of the three shapes this module writes, relative to
the folder's parent: `<folder>/<name>` (a source or destination), `<folder>/.renaming/<name>` (the
staging copy) and `<folder>_trash/<name>` (a destination: sort's trash), where `<name>` is a plain
file name and neither folder is a symbolic link. Anything else is refused, naming the journal.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core import log
from core.errors import UserError
from core.fileio import atomic_write_json, loads_bounded

JOURNAL_NAME = ".rename_journal.json"
STAGING_NAME = ".renaming"
TRASH_SUFFIX = "_trash"  # sort's trash: the sibling folder <folder>_trash
_FORMAT = "facekit.rename_journal"
# ~100-300 bytes per move: 64 MB is a few hundred thousand files at once, far past any faceset
MAX_JOURNAL_BYTES = 64 << 20
_MAX_NAME = 1024
_MAX_WHAT = 200
_MAX_DEPTH = 8  # a journal nests 3 deep: {"moves": [{...}]}


@dataclass(frozen=True)
class Move:
    src: Path
    dst: Path


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def _absolute(path: str | Path) -> Path:
    """`path` with its folder resolved but not its last part: a symbolic link is moved, not its target."""
    path = Path(path)
    return path.parent.resolve() / path.name


def _journal(folder: Path) -> Path:
    return folder / JOURNAL_NAME


def _trash(folder: Path) -> Path:
    return folder.parent / f"{folder.name}{TRASH_SUFFIX}"


def _plain_name(name: object) -> bool:
    """A file name with no folder part: no separator of any OS, not `.`/`..`, no control characters."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or name in (".", ".."):
        return False
    if "/" in name or "\\" in name or (os.name == "nt" and ":" in name):
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) and name not in (JOURNAL_NAME, STAGING_NAME)


def _check_dirs(folder: Path, journal: Path | None, to_trash: bool) -> None:
    """The staging folder (and the trash when a move goes there), where they exist, must be real
    folders: a symbolic link there would carry every move through it to wherever it points. Errors
    name the journal (or the folder)."""
    for d in (folder / STAGING_NAME, _trash(folder)) if to_trash else (folder / STAGING_NAME,):
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise UserError(f"cannot check {d} ({e.strerror or e})", journal or d) from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
            if journal is None:
                raise UserError(f"is {kind}; refusing to move faces through it (nothing was moved)", d)
            raise UserError(f"refusing this rename journal: {d} is {kind}; nothing was moved", journal)


def _check_moves(folder: Path, entries: list[dict[str, str]], journal: Path) -> None:
    """Every move of a journal goes from the folder, through its staging folder, to the folder or its
    trash: checked for all entries before the first move, so a hostile journal moves nothing."""
    staging = (folder.name, STAGING_NAME)
    allowed = {"src": ((folder.name,),), "stage": (staging,), "dst": ((folder.name,), (_trash(folder).name,))}
    seen: dict[str, set[str]] = {k: set() for k in allowed}
    for i, e in enumerate(entries):
        for key, dirs in allowed.items():
            rel = e[key]
            parts = tuple(rel.split(os.sep))
            if len(parts) < 2 or parts[:-1] not in dirs or not _plain_name(parts[-1]):
                raise UserError(f"refusing this rename journal: move {i + 1} has {key} {rel!r}, which is outside "
                                f"the faceset folder, its {STAGING_NAME}/ and its trash; nothing was moved", journal)
            if rel in seen[key]:
                raise UserError(f"refusing this rename journal: {rel!r} appears twice as {key}; nothing was moved",
                                journal)
            seen[key].add(rel)


def _load_journal(path: Path) -> dict:
    """The journal at `path`, checked for size and types (not yet for where its paths lead)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"refusing this rename journal: not a regular file "
                            f"({'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'a special file'})", path)
        if st.st_size > MAX_JOURNAL_BYTES:
            raise UserError(f"refusing this rename journal: too large ({st.st_size} bytes; at most "
                            f"{MAX_JOURNAL_BYTES})", path)
        with open(path, "rb") as f:
            raw = f.read(MAX_JOURNAL_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read the rename journal ({e.strerror or e})", path) from None
    try:  # bounded again: the file may have grown since lstat
        journal = loads_bounded(raw, path, "it", MAX_JOURNAL_BYTES, _MAX_DEPTH)
    except UserError as e:
        raise UserError(f"refusing this rename journal: {e.problem} (not a journal this program wrote); nothing "
                        f"was moved, the files it names may be in {STAGING_NAME}/", path) from None
    if not isinstance(journal, dict) or journal.get("format") != _FORMAT:
        raise UserError("unreadable rename journal (not a facekit rename journal)", path)
    problems = []
    if journal.get("phase") not in ("stage", "place"):
        problems.append("phase is not 'stage' or 'place'")
    if journal.get("base", "parent") != "parent":
        problems.append("base is not 'parent'")
    what = journal.get("what", "rename")
    if not isinstance(what, str) or len(what) > _MAX_WHAT or not what.isprintable():
        problems.append("what is not a short printable text")
    moves = journal.get("moves")
    if not isinstance(moves, list):
        problems.append("moves is not a list")
    else:
        for i, e in enumerate(moves):
            if not isinstance(e, dict) or set(e) != {"src", "stage", "dst"}:
                problems.append(f"move {i + 1} is not an object with exactly src, stage and dst")
            else:
                problems += [f"move {i + 1}: {k} is not a text" for k in ("src", "stage", "dst")
                             if not isinstance(e[k], str)]
            if problems:
                break
    if problems:
        raise UserError(f"refusing this rename journal: {problems[0]}; nothing was moved", path)
    return journal


def move_files(folder: str | Path, moves: Sequence[Move], what: str = "rename") -> None:
    """Carry out `moves` (files in or out of `folder`) so that a crash at any point is recoverable.

    Destinations must be distinct and must not exist unless they are themselves a source of this
    operation (a permutation). Moves whose source already is the destination are skipped.
    """
    folder = Path(folder).resolve()
    finish_interrupted(folder)
    moves = [Move(_absolute(m.src), _absolute(m.dst)) for m in moves]
    moves = [m for m in moves if m.src != m.dst]
    if not moves:
        return
    trash = _trash(folder)
    for m in moves:  # the only moves a journal may hold (finish_interrupted refuses any other)
        if m.src.parent != folder or m.dst.parent not in (folder, trash):
            raise ValueError(f"move_files moves files from {folder} into it or {trash} only, not {m.src} -> {m.dst}")
        for p in (m.src, m.dst):
            if not _plain_name(p.name):
                raise UserError("cannot rename a file whose name holds a backslash or a control character", p)
    _check_dirs(folder, None, any(m.dst.parent == trash for m in moves))
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
    if len(json.dumps(journal, indent=2, sort_keys=True)) > MAX_JOURNAL_BYTES:
        raise UserError(f"too many files to rename at once ({len(moves)}); split the folder", folder)
    staging.mkdir(exist_ok=True)
    atomic_write_json(_journal(folder), journal)
    _run(folder, journal)


def finish_interrupted(folder: str | Path) -> bool:
    """Complete a rename that a crash interrupted in `folder`; True if there was one."""
    folder = Path(folder).resolve()
    path = _journal(folder)
    if not os.path.lexists(path):
        return False
    journal = _load_journal(path)
    trash_prefix = _trash(folder).name + os.sep
    _check_dirs(folder, path, any(e["dst"].startswith(trash_prefix) for e in journal["moves"]))
    _check_moves(folder, journal["moves"], path)
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

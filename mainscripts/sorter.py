"""`sort`: reorder an aligned faceset by a quality or similarity measure, or prune it.

Every method ends the same way (DFL's rhythm): faces that fail a check, and files that are not
aligned faces at all, move to `<dir>_trash` (never deleted); the rest are renamed 00000.jpg,
00001.jpg, ... in the sorted order through a journal (core.rename_journal), so an interrupted sort
is finished by the next command instead of leaving half-renamed files. Each face's first name is kept
in its metadata (`extra["original_name"]`) and `util --recover-original-aligned-filename` restores it.

This module is the command's orchestration: the folder, the method menu and its settings, the
measuring pool, the trash and the renames. The per-image measures are `facelib.image_measures`
(computed in a worker pool when the faceset is large); the orderings, and the measures from
landmarks alone (pose, source rect), are `faceset.sort_methods`. Faces are read (in the workers too)
and their metadata written through `faceset.faceset.Faceset` and its `Face`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2

from core import interact, log
from core.errors import UserError
from core.fileio import IMAGE_EXTENSIONS, remove_stale_partials, require_dir
from core.rename_journal import Move, finish_interrupted, move_files
from core.settings import Option, never, parse_flags, resolve
from core.workers import default_worker_count, run_pool
from facelib.image_measures import compute_features
from faceset.faceset import Face as StoredFace
from faceset.faceset import Faceset
from faceset.sort_methods import (
    DEFAULT_TARGET_COUNT,
    LARGEST_TRACK,
    METHODS,
    ORIGINAL_NAME_KEY,
    Face,
    Method,
    Options,
)

POOL_THRESHOLD = 64  # below this many faces, starting worker processes costs more than it saves


# --- measuring (in workers) -----------------------------------------------------------------------

def _measure(wanted: tuple[str, ...], face: StoredFace) -> dict[str, Any]:
    # A worker gets the face's name and place (cheap to send) and reads it itself; see load_faces.
    image, meta = face.load()
    return compute_features(image, meta.landmarks, meta.eyebrows_expand_mod, wanted)


def _make_measurer(wanted: tuple[str, ...]) -> Callable[[StoredFace], dict[str, Any]]:
    cv2.setNumThreads(1)  # the pool is the parallelism
    return functools.partial(_measure, wanted)


# --- the methods' names and settings --------------------------------------------------------------

BY_KEY = {m.key: m for m in METHODS}
ALIASES = {"final": "best-faces", "final-by-blur": "best-faces", "final-fast": "best-faces-faster",
           "final-by-size": "best-faces-faster"}
CHOICES = tuple(BY_KEY) + tuple(ALIASES)
DEFAULT_METHOD = "hist"
METHOD_OPTION = Option(
    "by", DEFAULT_METHOD, "Sort method: " + "; ".join(f"{m.key}: {m.title}" for m in METHODS) + ". final-by-blur/"
    "final-by-size are DFL's names for best-faces/best-faces-faster.", "Sort method", choices=tuple(BY_KEY),
    argparse_choices=True,
    normalize=lambda name: ALIASES.get(name.strip().lower(), name.strip().lower()),
    menu=tuple((m.key, m.title) for m in METHODS))
# The methods' own settings: a flag each, asked on a terminal when the method needs them and the flag is missing.
TARGET_COUNT_OPTION = Option(
    "target_count", DEFAULT_TARGET_COUNT, "best-faces: number of faces to keep", "Target number of faces", "int",
    valid_range=(1, 1_000_000))
SIMILAR_OPTION = Option(
    "similar", True, "absdiff: similar faces next to each other (default)", "Sort by similar?", "bool", switch=True,
    negative="--dissimilar", negative_help="absdiff: most different faces first")
TRACK_OPTION = Option(
    "track", LARGEST_TRACK, f"track: the track id to keep (see `extract --output-debug`); {LARGEST_TRACK} keeps the "
    "track with the most faces", "Track id to keep (-1: the largest)", "int", valid_range=(LARGEST_TRACK, 2**31 - 1))
METHOD_SETTINGS = (TARGET_COUNT_OPTION, SIMILAR_OPTION, TRACK_OPTION)
# Never asked (DFL does not ask either); left out, large facesets are measured by one process per core.
WORKERS_OPTION = Option(
    "workers", None, "Worker processes measuring the faces, from 1 to the number of CPU cores.", kind="int",
    valid_range=(1, max(1, os.cpu_count() or 1)), ask_if=never,
    default_text=f"one per core, at most 8, for {POOL_THRESHOLD}+ faces; fewer are measured in this process")


def resolve_method(name: str | None) -> Method:
    """The method for a CLI name (DFL's final-by-* names included); the menu when none is given."""
    if name is None:
        if not interact.is_interactive():
            log.info(f"no --by given: sorting by {DEFAULT_METHOD} (default; stdin is not a terminal)")
            return BY_KEY[DEFAULT_METHOD]
        return BY_KEY[METHOD_OPTION.ask(DEFAULT_METHOD)]
    try:
        return BY_KEY[METHOD_OPTION.parse(name)]
    except ValueError:
        raise UserError(f"unknown sort method '{name}' (choose from {', '.join(CHOICES)})") from None


# --- orchestration --------------------------------------------------------------------------------

@dataclass
class SortSummary:
    method: str
    kept: list[Path]  # final paths, in order
    trashed: list[Path]  # final paths in the trash folder


def trash_dir_of(folder: Path) -> Path:
    return folder.parent / f"{folder.name}_trash"


def _unique_in(folder: Path, name: str, taken: set[str]) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 1
    while candidate in taken or (folder / candidate).exists():
        candidate = f"{stem}_{n}{suffix}"
        n += 1
    taken.add(candidate)
    return folder / candidate


def load_faces(faceset: Faceset, wanted: tuple[str, ...], workers: int | None,
               debug: bool = False) -> tuple[list[Face], list[tuple[Path, str]]]:
    """Read every face's metadata and compute the `wanted` measures; returns (faces, rejects with reasons)."""
    faces: list[Face] = []
    sources: list[StoredFace] = []  # where each of `faces` is kept, without its metadata (cheap to send)
    rejects: list[tuple[Path, str]] = []
    for stored in faceset:
        p = stored.path
        try:
            meta = stored.meta()
        except UserError as e:
            rejects.append((p, e.problem))
            continue
        if meta is None:
            rejects.append((p, "no face metadata (not an aligned face)"))
        elif meta.landmarks.shape != (68, 2):
            rejects.append((p, f"{meta.landmarks.shape[0]} landmarks, sorting needs 68"))
        else:
            faces.append(Face(p, meta))
            sources.append(StoredFace(stored.name, stored.path, stored.entry))
    if not wanted or not faces:
        return faces, rejects
    if workers is None:
        workers = default_worker_count() if len(faces) >= POOL_THRESHOLD else 0
    good: list[Face] = []
    for face, res in zip(faces, run_pool(functools.partial(_make_measurer, wanted), sources, workers=workers,
                                         name_of=lambda s: s.name, desc="Measuring", unit="faces", debug=debug)):
        if res.ok:
            face.f.update(res.value)
            good.append(face)
        else:
            rejects.append((face.path, res.error or "failed"))
    return good, rejects


def _setting(option: Option, given: dict[str, Any]) -> Any:
    """One method setting: its flag's value (a bad one names the flag), else the prompt or the default."""
    return resolve((option,), None, {k: v for k, v in given.items() if k == option.key}, ask_overrides=False)[option.key]


def sort_from_flags(input_dir: str | Path, flags: Mapping[str, Any], debug: bool = False) -> SortSummary:
    """The `sort` command: its flags (key -> the flag's text, from core.settings.flags_given), each checked
    against its declaration; a bad one is a UserError naming the flag."""
    workers = parse_flags((WORKERS_OPTION,), flags).get("workers")
    return sort_faceset(input_dir, flags.get("by"), target_count=flags.get("target_count"),
                        similar=flags.get("similar"), track=flags.get("track"), workers=workers, debug=debug)


def sort_faceset(input_dir: str | Path, by: str | None = None, *, target_count: int | None = None,
                 similar: bool | None = None, track: int | None = None, workers: int | None = None,
                 debug: bool = False) -> SortSummary:
    """Sort the aligned faces in `input_dir` by `by` (asked when None), trash rejects, rename in order.
    `workers`: measuring processes (None: see WORKERS_OPTION; 0, for callers in Python: this process)."""
    folder = require_dir(input_dir, "aligned faces folder").resolve()
    finish_interrupted(folder)
    remove_stale_partials(folder, target_suffixes=IMAGE_EXTENSIONS)  # faces of a killed metadata write
    method = resolve_method(by)
    opts = Options()
    given = {k: v for k, v in (("target_count", target_count), ("similar", similar), ("track", track))
             if v is not None}
    if method.key.startswith("best-faces"):
        opts.target_count = _setting(TARGET_COUNT_OPTION, given)
    if method.key == "absdiff":
        opts.similar = _setting(SIMILAR_OPTION, given)
    if method.key == "track":
        opts.track = _setting(TRACK_OPTION, given)
    faceset = Faceset.open(folder)
    faceset.require_folder("sort")  # it renames the faces and writes their original names
    if not len(faceset):
        raise UserError("no images in this folder", folder)
    log.info(f"Sorting {len(faceset)} files by {method.title}")
    faces, rejects = load_faces(faceset, method.features, workers, debug)
    for p, why in rejects:
        log.warning(f"{p.name}: {why}; moving it to the trash")
    kept, trashed = method.run(faces, opts)
    if len(kept) + len(trashed) != len(faces):
        raise RuntimeError(f"sort method {method.key} lost faces")
    _remember_names(faceset, kept + trashed)
    return _apply(folder, method.key, kept, [f.path for f in trashed] + [p for p, _ in rejects])


def _remember_names(faceset: Faceset, faces: list[Face]) -> None:
    """Write each face's current name into its metadata the first time it is sorted."""
    stored = {face.path: face for face in faceset}
    for f in faces:
        if ORIGINAL_NAME_KEY not in f.meta.extra:
            f.meta.extra[ORIGINAL_NAME_KEY] = f.path.name
            faceset.write_meta(stored[f.path], f.meta)


def _apply(folder: Path, method: str, kept: list[Face], trash: list[Path]) -> SortSummary:
    trash_dir = trash_dir_of(folder)
    moves: list[Move] = []
    trashed: list[Path] = []
    if trash:
        trash_dir.mkdir(exist_ok=True)
        taken: set[str] = set()
        for p in trash:
            dst = _unique_in(trash_dir, p.name, taken)
            moves.append(Move(p, dst))
            trashed.append(dst)
    digits = max(5, len(str(max(len(kept) - 1, 0))))
    final = [folder / f"{i:0{digits}d}{f.path.suffix.lower()}" for i, f in enumerate(kept)]
    moves += [Move(f.path, dst) for f, dst in zip(kept, final)]
    move_files(folder, moves, what=f"sort by {method}")
    log.info(f"Sorted {len(kept)} faces" + (f"; {len(trashed)} moved to {trash_dir}" if trashed else ""))
    return SortSummary(method, final, trashed)


def menu_help() -> str:
    """The methods as the --help text lists them."""
    return "; ".join(f"{title_key}: {title}" for title_key, title in METHOD_OPTION.menu)


"""`xseg`: the XSeg workflow around the labelling window and the network (DFL's XSegUtil.py).

`fetch` gathers the labelled faces into `<dir>_xseg`, `remove-labels` drops the polygons, `apply`
bakes a trained XSeg model's mask into every face, `remove` drops the baked masks, `export-masks`
writes them as images (the one exporter in `mainscripts/util.py`), `editor` opens the window.

Every face is its own unit of work: a face whose metadata cannot be read (a corrupt mask blob, a
DFL pickle holding more than plain data) or whose labels cannot make a mask (fewer than 3 points,
crossing, drawn on a face of another size) is reported in one line naming it and left untouched;
the others are done, and the command exits non-zero at the end. Metadata is rewritten one face at
a time, atomically (Faceset.write_meta), so a killed `apply` leaves each face old or new and a
second run finishes the job.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np
from tqdm import tqdm

from core import interact, log
from core.errors import UserError
from core.fileio import atomic_write_bytes, ensure_writable_dir, remove_stale_partials, require_dir
from core.folder_lock import FolderLock
from facelib.crop import Crop, CropSpec
from facelib.face_type import FaceType
from facelib.seg_polys import count_labels, has_labels, label_problems
from faceset.faceset import FACE_EXTENSIONS, Face, Faceset
from faceset.meta import FaceMeta
from merger.xseg_masks import masks_of

APPLY_BATCH = 32  # faces decoded at once by apply; the masker batches inside it
MASK_THRESHOLD = 0.5  # DFL bakes the mask binarised at 0.5


class Masker(Protocol):
    """What `apply` needs of a trained XSeg model (models.xseg.load_xseg returns one)."""

    resolution: int
    face_type: FaceType | None  # the crop it was trained on; None: any (faces are masked as they are)

    def masks(self, faces: np.ndarray) -> np.ndarray: ...


def plural(n: int, what: str = "faces") -> str:
    """'1 face', '3 labelled faces': a count with its noun."""
    return f"{n} {what[:-1] if n == 1 else what}"


class _Problems:
    """Faces that could not be used: each reported when found, all summed up at the end."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.items: list[tuple[str, str]] = []

    def add(self, face: Face, problem: str) -> None:
        log.warning(f"{face.where}: {problem}")
        self.items.append((face.name, problem))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            n = len(self.items)
            name, problem = self.items[0]
            raise UserError(f"{plural(n)} {what} (first: {name}: {problem})", self.where)


def open_faceset(input_dir: str | Path) -> Faceset:
    """The faceset of `--input-dir` (a folder, or a folder holding a pack)."""
    return Faceset.open(require_dir(input_dir, "faceset folder").resolve())


def read_meta(face: Face, problems: _Problems) -> FaceMeta | None:
    """The face's metadata; None for an image that is not an aligned face (skipped, said once) or
    one whose metadata cannot be read (reported as a problem)."""
    if not face.is_jpeg:
        return None
    try:
        meta = face.meta()
    except UserError as e:
        problems.add(face, e.problem)
        return None
    if meta is None:
        log.warning(f"{face.where}: not an aligned face (no face metadata); skipped")
    return meta


def labels_problem(face: Face, meta: FaceMeta) -> str | None:
    """Why the face's labels cannot make a mask, or None (also for a face without labels)."""
    if not has_labels(meta.seg_ie_polys):
        return None
    size = face.image_size()
    problems = label_problems(meta.seg_ie_polys, None if size is None else max(size))
    if len(problems) > 1:
        return f"{problems[0]} (and {len(problems) - 1} more bad polygon{'s' if len(problems) > 2 else ''})"
    return problems[0] if problems else None


def _confirm(question: str, yes: bool, refusal: str, where: Path) -> bool:
    """A destructive step goes ahead with --yes, or with a yes typed on a terminal; without a
    terminal and without --yes it is refused (a script must say what it means)."""
    if yes:
        return True
    if not interact.is_interactive():
        raise UserError(f"{refusal} without a confirmation: stdin is not a terminal; pass --yes", where)
    if interact.ask_bool(question, False):
        return True
    log.info("Nothing deleted.")
    return False


# --- fetch ---------------------------------------------------------------------------------------------

def fetch(input_dir: str | Path) -> int:
    """Copy every labelled face, byte for byte and under its own name, to `<dir>_xseg` (DFL's fetch:
    a backup of the hand work and a faceset of labelled faces only). A copy already there is
    replaced only by a newer original, so labels edited in the copy are never overwritten."""
    faceset = open_faceset(input_dir)
    problems = _Problems(faceset.where)
    labelled: list[Face] = []
    includes = excludes = 0
    for face in faceset:
        meta = read_meta(face, problems)
        if meta is None or not has_labels(meta.seg_ie_polys):
            continue
        problem = labels_problem(face, meta)
        if problem is not None:
            problems.add(face, problem)
            continue
        labelled.append(face)
        inc, exc = count_labels(meta.seg_ie_polys)
        includes, excludes = includes + inc, excludes + exc
    out = faceset.folder.parent / f"{faceset.folder.name}_xseg"
    copied = same = kept = 0
    if labelled:
        ensure_writable_dir(out)
        remove_stale_partials(out, target_suffixes=FACE_EXTENSIONS)
    for face in tqdm(labelled, desc="fetch", unit="faces", dynamic_ncols=True, disable=not labelled):
        data, target = face.read_bytes(), out / face.name
        if target.is_file() and not target.is_symlink():
            if target.read_bytes() == data:
                same += 1
                continue
            if target.stat().st_mtime > face.path.stat().st_mtime:
                log.warning(f"{target}: differs from {face.where} and is newer; kept (labels edited there?)")
                kept += 1
                continue
        atomic_write_bytes(target, data)
        copied += 1
    if labelled:
        log.info(f"{plural(len(labelled), 'labelled faces')} ({includes} include, {excludes} exclude polygons) in {out}: "
                 f"{copied} copied, {same} already there" + (f", {kept} newer copies kept" if kept else ""))
    else:
        log.info(f"No usable labelled faces in {faceset.where}; nothing fetched (label faces with xseg editor)")
    problems.raise_if_any("were not fetched (labels that cannot make a mask: fix them with xseg editor; "
                          "or unreadable metadata)")
    return copied


# --- remove labels / remove masks -----------------------------------------------------------------------

def _rewrite(faceset: Faceset, what: str, pick: Callable[[FaceMeta], bool], change: Callable[[FaceMeta], FaceMeta],
             confirm: tuple[str, str] | None = None, yes: bool = False) -> int:
    """Rewrite the metadata of every face that `pick(meta)` selects with `change(meta)`; a pack is refused
    (unpack hint), the folder is locked, unreadable faces are reported and left alone. `confirm` is
    (question, refusal without a terminal), formatted with {n} ('3 faces') and {where}."""
    faceset.require_folder(f"xseg {what}")
    problems = _Problems(faceset.where)
    with FolderLock(faceset.folder, f"xseg {what}"):
        remove_stale_partials(faceset.folder, target_suffixes=FACE_EXTENSIONS)  # debris of a killed rewrite
        chosen = [(face, meta) for face in faceset
                  if (meta := read_meta(face, problems)) is not None and pick(meta)]
        if chosen and confirm is not None:
            question, refusal = (text.format(n=plural(len(chosen)), where=faceset.folder) for text in confirm)
            if not _confirm(question, yes, refusal, faceset.folder):
                return 0
        for face, meta in tqdm(chosen, desc=what, unit="faces", dynamic_ncols=True, disable=not chosen):
            faceset.write_meta(face, change(meta))
    problems.raise_if_any("could not be read and were left as they are")
    return len(chosen)


def remove_labels(input_dir: str | Path, yes: bool = False) -> int:
    """Delete the label polygons of every face (DFL's remove_labels): hand work, so asked first."""
    faceset = open_faceset(input_dir)
    n = _rewrite(faceset, "remove-labels", lambda m: bool(m.seg_ie_polys),
                 lambda m: dataclasses.replace(m, seg_ie_polys=None),
                 ("Delete the XSeg labels of {n} in {where}? This cannot be undone",
                  "not deleting the XSeg labels of {n}"), yes)
    log.info(f"Removed the labels of {plural(n)}" if n else f"No labels in {faceset.where}")
    return n


def remove_masks(input_dir: str | Path) -> int:
    """Delete the baked XSeg mask of every face (DFL's remove). Not asked: `apply` bakes it again and
    the labels stay; training and merging fall back to the labels or the landmark hull."""
    faceset = open_faceset(input_dir)
    n = _rewrite(faceset, "remove", lambda m: m.xseg_mask is not None,
                 lambda m: dataclasses.replace(m, xseg_mask=None))
    log.info(f"Removed the baked XSeg mask of {plural(n)}" if n else f"No baked XSeg masks in {faceset.where}")
    return n


# --- apply -----------------------------------------------------------------------------------------------

def apply_masks(input_dir: str | Path, model_dir: str | Path | None, masker: Masker | None = None,
                batch: int = APPLY_BATCH) -> int:
    """Bake the trained XSeg model's mask (binarised at 0.5, at the face's size) into every face.

    Faces are decoded `batch` at a time and grouped by size for the masker; each face's metadata is
    replaced atomically as soon as its mask is ready. Labels and everything else are kept. A face of
    another face type than the model's is re-cropped to the model's type first and its mask warped
    back, as DFL's apply does (a whole-face model on a head faceset masks the whole-face part only).
    """
    faceset = open_faceset(input_dir)
    faceset.require_folder("xseg apply")
    if masker is None:
        if model_dir is None:
            raise UserError("xseg apply needs --model-dir (a folder holding a trained XSeg model)")
        from models.xseg import load_xseg
        masker = load_xseg(require_dir(model_dir, "model folder"))
    problems = _Problems(faceset.where)
    done = 0
    with FolderLock(faceset.folder, "xseg apply"):
        remove_stale_partials(faceset.folder, target_suffixes=FACE_EXTENSIONS)  # a killed run's debris
        faces = [f for f in faceset if f.is_jpeg]
        with tqdm(total=len(faces), desc="xseg apply", unit="faces", dynamic_ncols=True) as bar:
            for start in range(0, len(faces), max(1, batch)):
                chunk = faces[start:start + max(1, batch)]
                done += _apply_chunk(faceset, chunk, masker, problems, model_dir)
                bar.update(len(chunk))
    log.info(f"Applied the XSeg mask to {plural(done)} in {faceset.where}")
    problems.raise_if_any("were left as they are (labels that cannot make a mask: fix them with xseg editor; "
                          "or unreadable metadata)")
    return done


def _apply_chunk(faceset: Faceset, chunk: list[Face], masker: Masker, problems: _Problems,
                 model_dir: str | Path | None) -> int:
    by_size: dict[tuple[int, ...], list[tuple[Face, np.ndarray, FaceMeta, Crop | None]]] = {}
    for face in chunk:
        if read_meta(face, problems) is None:
            continue
        try:
            image, meta = face.load()
        except UserError as e:
            problems.add(face, e.problem)
            continue
        problem = labels_problem(face, meta)
        if problem is not None:
            problems.add(face, problem)
            continue
        try:
            crop = model_crop(meta, image.shape, masker.face_type)
        except (ValueError, np.linalg.LinAlgError) as e:  # landmarks all at one point, not finite...
            problems.add(face, f"cannot re-crop the face to the model's face type ({e})")
            continue
        if crop is not None:
            image = crop.warp(image, cv2.INTER_CUBIC)
        by_size.setdefault(image.shape, []).append((face, image, meta, crop))
    n = 0
    for shape, items in by_size.items():
        marks = [meta.landmarks if crop is None else crop.to_face(meta.landmarks) for _, _, meta, crop in items]
        masks = np.asarray(masks_of(masker, np.stack([image for _, image, _, _ in items]), marks))
        if masks.shape != (len(items), *shape[:2]):
            raise UserError(f"the XSeg model returned masks of shape {masks.shape} for {len(items)} faces of "
                            f"{shape[1]}x{shape[0]} px (expected {(len(items), *shape[:2])})", model_dir)
        for (face, _, meta, crop), mask in zip(items, masks):
            mask = np.nan_to_num(np.asarray(mask, np.float32), nan=0.0)
            if crop is not None:  # back from the model's crop into the face's own pixels; outside it: not face
                mask = cv2.warpAffine(mask, crop.mat, (shape[1], shape[0]), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            baked = (mask >= MASK_THRESHOLD).astype(np.float32)
            faceset.write_meta(face, dataclasses.replace(meta, xseg_mask=baked))
            n += 1
    return n


def model_crop(meta: FaceMeta, shape: tuple[int, ...], model_type: FaceType | None) -> Crop | None:
    """The model's crop of this face (a square of the face's width, in the face's pixels) when the face
    is of another type than the model's; None when it can be masked as it is. From the face's own
    landmarks: the same alignment as from the source landmarks (DFL's way), composed with the face's
    crop, and the one the XSeg trainer re-crops with."""
    if model_type is None or meta.face_type == model_type:
        return None
    return CropSpec(int(shape[1]), FaceType(model_type)).of(meta.landmarks)


# --- export, editor ------------------------------------------------------------------------------------

def export_masks(input_dir: str | Path) -> Path:
    """DFL's --export-faceset-mask: `<stem>_mask.jpg` per face into `<dir>_mask` (util's exporter)."""
    from mainscripts.util import export_faceset_mask
    return export_faceset_mask(require_dir(input_dir, "faceset folder").resolve())


def editor(input_dir: str | Path, model_dir: str | Path | None = None) -> int:
    """Open the labelling window (mainscripts/xseg_editor.py); its exit code."""
    from mainscripts.xseg_editor import run_editor
    return run_editor(require_dir(input_dir, "faceset folder").resolve(),
                      None if model_dir is None else require_dir(model_dir, "model folder").resolve())

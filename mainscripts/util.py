"""`util`: faceset housekeeping (DFL's Util.py): debug images, filename recovery, metadata save and
restore around an external image editor, packing into one file, mask export.

Outputs that are not faces (debug images, masks) go to sibling folders, not into the faceset, so a
later sort or training run never meets an image without face metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from core import interact, log
from core.errors import UserError
from core.fileio import (
    IMAGE_EXTENSIONS,
    atomic_write_bytes,
    atomic_write_json,
    read_json_file,
    remove_stale_partials,
    require_dir,
)
from core.image_io import encode_image, write_image
from core.rename_journal import Move, finish_interrupted, move_files
from facelib import masks
from facelib.draw import BLUE, GREEN, draw_landmarks, draw_rect
from facelib.face_type import FaceType
from faceset.face_file import jpeg_bytes_with_meta
from faceset.faceset import Face, Faceset
from faceset.meta import FaceMeta, meta_from_json, meta_to_json
from faceset.pack import PACK_NAME, pack_path, read_packed, write_packed

METADATA_NAME = "faceset_metadata.json"
METADATA_FORMAT = "facekit.faceset_metadata"
ORIGINAL_NAME_KEY = "original_name"  # written by sort


def _faces(faceset: Faceset) -> list[tuple[Face, FaceMeta]]:
    """(face, meta) of every aligned face of the set; other images are reported and skipped."""
    return list(faceset.with_meta())


def _folder_faces(folder: Path, option: str) -> list[tuple[Face, FaceMeta]]:
    """`_faces` of a folder whose files `option` renames or rewrites: a pack is refused, naming unpack."""
    faceset = Faceset.open(folder)
    faceset.require_folder(option)
    return _faces(faceset)


# --- debug images --------------------------------------------------------------------------------

def add_landmarks_debug_images(folder: Path) -> Path:
    """Write `<stem>_debug.jpg` (landmarks and hull drawn) for every face into `<dir>_landmarks_debug`."""
    out_dir = folder.parent / f"{folder.name}_landmarks_debug"
    out_dir.mkdir(exist_ok=True)
    n = 0
    for face, _meta in _faces(Faceset.open(folder)):  # reads a pack too
        image, meta = face.load()
        draw_landmarks(image, meta.landmarks, GREEN)
        if meta.face_type == FaceType.MARK_ONLY and meta.source_rect is not None:
            draw_rect(image, meta.source_rect, BLUE)
        write_image(out_dir / f"{Path(face.name).stem}_debug.jpg", image, 90)
        n += 1
    log.info(f"Wrote {n} landmark debug images to {out_dir}")
    return out_dir


# --- original filenames ----------------------------------------------------------------------------

def recover_original_filenames(folder: Path) -> dict[str, str]:
    """Rename faces back to their extraction names: the name sort remembered, else `<source stem>_<n>`
    numbered in folder order. Returns {old name: new name}."""
    finish_interrupted(folder)
    faces = [(face.path, meta) for face, meta in _folder_faces(folder, "--recover-original-aligned-filename")]
    face_names = {p.name for p, _ in faces}
    taken = {p.name for p in folder.iterdir() if p.name not in face_names}  # other files keep theirs
    plan: dict[Path, str] = {}
    pending: list[tuple[Path, FaceMeta]] = []
    for p, meta in faces:
        want = str(meta.extra.get(ORIGINAL_NAME_KEY) or "")
        if want and Path(want).name == want and want not in taken:
            plan[p] = want
            taken.add(want)
        else:
            pending.append((p, meta))
    for p, meta in pending:
        if not meta.source_filename:
            log.warning(f"{p.name}: no source filename in its metadata; name kept")
            plan[p] = p.name if p.name not in taken else _free_name(p.stem, p.suffix, taken)
            taken.add(plan[p])
            continue
        plan[p] = _free_name(Path(meta.source_filename).stem, p.suffix.lower(), taken)
        taken.add(plan[p])
    move_files(folder, [Move(p, folder / name) for p, name in plan.items()], what="filename recovery")
    log.info(f"Recovered the original names of {len(plan)} faces")
    return {p.name: name for p, name in plan.items()}


def _free_name(stem: str, suffix: str, taken: set[str]) -> str:
    n = 0
    while f"{stem}_{n}{suffix}" in taken:
        n += 1
    return f"{stem}_{n}{suffix}"


# --- metadata around an external editor -----------------------------------------------------------

def save_faceset_metadata(folder: Path) -> Path:
    """Write every face's metadata and image shape to one JSON file, so the images can be edited
    (even resized) in any editor that drops our JPEG header, then restored."""
    faces = {}
    for face, _ in _folder_faces(folder, "--save-faceset-metadata"):
        image, meta = face.load()
        faces[face.name] = {"shape": list(image.shape), "meta": json.loads(meta_to_json(meta))}
    if not faces:
        raise UserError("no aligned faces in this folder", folder)
    out = folder / METADATA_NAME
    atomic_write_json(out, {"format": METADATA_FORMAT, "version": 1, "faces": faces})
    log.info(f"Saved the metadata of {len(faces)} faces to {out}. Edit the images keeping their file names "
             "(resizing is fine: restoring scales them back), then run --restore-faceset-metadata.")
    return out


MAX_METADATA_FILE_BYTES = 512 << 20  # ~100k faces; bounds the memory a stranger's file can take


def restore_faceset_metadata(folder: Path) -> int:
    """Re-embed the saved metadata; images whose size changed are scaled back to the saved size
    (Lanczos, JPEG quality 100). Nothing else changes: the geometry is the original's. The metadata
    file is deleted only when every face was restored."""
    Faceset.open(folder).require_folder("--restore-faceset-metadata")
    src = folder / METADATA_NAME
    if not src.is_file():
        raise UserError(f"no {METADATA_NAME} here; run --save-faceset-metadata first", folder)
    saved = read_json_file(src, "faceset metadata file", max_bytes=MAX_METADATA_FILE_BYTES)
    if not isinstance(saved, dict) or saved.get("format") != METADATA_FORMAT or not isinstance(saved.get("faces"), dict):
        raise UserError("corrupt metadata file (not a faceset metadata file)", src)
    faces = saved["faces"]
    failed = 0
    for name, entry in faces.items():
        path = folder / name
        try:
            if (Path(name).name != name or name.startswith(".")
                    or Path(name).suffix.lower() not in IMAGE_EXTENSIONS):
                raise UserError("not a plain file name in the metadata file", name)
            restored = _restored_bytes(path, entry)
        except UserError as e:
            log.warning(str(e))
            failed += 1
            continue
        atomic_write_bytes(path, restored)  # a failed write (disk full) ends the command, naming the face
    if failed:
        raise UserError(f"{failed} of {len(faces)} faces could not be restored; {METADATA_NAME} is kept", src)
    src.unlink()
    log.info(f"Restored the metadata of {len(faces)} faces")
    return len(faces)


def _restored_bytes(path: Path, entry: dict) -> bytes:
    """The face file with its saved metadata put back (a per-face problem is a UserError)."""
    if not path.is_file():
        raise UserError("file listed in the metadata is missing", path)
    try:
        meta = meta_from_json(json.dumps(entry["meta"]).encode("ascii"), path)
        shape = tuple(int(v) for v in entry["shape"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"corrupt metadata entry ({e})", path) from None
    data = path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise UserError("the edited image cannot be decoded", path)
    if image.shape[:2] == shape[:2]:
        try:  # same size and still a JPEG: keep the edited pixels bit for bit
            return jpeg_bytes_with_meta(data, meta, path)
        except UserError:
            pass  # saved as another format: re-encode below
    else:
        image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LANCZOS4)
    return jpeg_bytes_with_meta(encode_image(image, ".jpg", 100), meta, path)


# --- packing -------------------------------------------------------------------------------------------

def pack_faceset(folder: Path, delete_originals: bool | None = None) -> Path:
    """Put every aligned face of `folder` into `faceset.pak` (byte for byte), verify it, then
    optionally delete the packed files (asked, default yes)."""
    pak = pack_path(folder)
    if pak.exists():
        raise UserError(f"{PACK_NAME} already exists; unpack it (or remove it) before packing again", pak)
    subdirs = [d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if subdirs:
        log.warning(f"subfolders are not packed (person facesets are not supported): {', '.join(subdirs)}")
    faces = [(face.path, meta) for face, meta in _faces(Faceset.open(folder))]
    if not faces:
        raise UserError("no aligned faces to pack in this folder", folder)
    entries = [(p.name, p.read_bytes()) for p, _ in faces]
    write_packed(pak, entries)
    if read_packed(pak) != entries:
        raise UserError("the pack just written does not read back identically; originals kept", pak)
    log.info(f"Packed {len(entries)} faces into {pak}")
    delete = interact.pick(delete_originals, lambda: interact.ask_bool("Delete original files?", True))
    if delete:
        for p, _ in faces:
            p.unlink()
        log.info(f"Deleted the {len(faces)} packed face files")
    return pak


def unpack_faceset(folder: Path) -> int:
    """Write the faces of `faceset.pak` (ours, or DeepFaceLab's: `faceset.pack_dfl`) back as files
    (identical bytes), then delete the pack. Nothing is written when a different file already has a
    packed face's name. A pack holding anything but face files (a hidden file, a folder part, another
    extension) is refused whole by read_packed, before anything is written."""
    pak = pack_path(folder)
    if not pak.is_file():
        raise UserError(f"no {PACK_NAME} in this folder", folder)
    entries = read_packed(pak)
    for name, data in entries:
        target = folder / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise UserError(f"a link or folder already has the name of a packed face; move it away first "
                            f"({PACK_NAME} untouched)", target)
        if target.exists() and (target.stat().st_size != len(data) or target.read_bytes() != data):
            raise UserError(f"a different file already has the name of a packed face; move it away first "
                            f"({PACK_NAME} untouched)", target)
    try:
        for name, data in entries:
            target = folder / name
            if not target.exists():
                atomic_write_bytes(target, data)
    except OSError as e:  # the pack is kept, so running unpack again finishes the job
        raise UserError(f"unpacking stopped ({e.strerror or e}); {PACK_NAME} is kept, run --unpack-faceset again",
                        folder) from None
    pak.unlink()
    log.info(f"Unpacked {len(entries)} faces from {PACK_NAME}")
    return len(entries)


# --- masks ---------------------------------------------------------------------------------------------

def export_mask(meta: FaceMeta, height: int, width: int) -> np.ndarray | None:
    """The face's mask as uint8 0/255 at the image size: the XSeg mask binarised at 0.5 (DFL), else
    the label polygons (as training reads them); None when it has neither."""
    if meta.xseg_mask is not None:
        return np.where(masks.face_mask((height, width), meta) >= 0.5, 255, 0).astype(np.uint8)
    if masks.has_include_polygon(meta.seg_ie_polys):
        return np.where(masks.polygons_mask((height, width), meta.seg_ie_polys) >= 0.5, 255, 0).astype(np.uint8)
    return None


def export_faceset_mask(folder: Path) -> Path:
    """Write `<stem>_mask.jpg` for every face into `<dir>_mask`; faces without a mask, or whose labels
    cannot make one (see facelib.seg_polys), are listed and make the command fail after the others
    are written."""
    from facelib.seg_polys import label_problems
    out_dir = folder.parent / f"{folder.name}_mask"
    out_dir.mkdir(exist_ok=True)
    missing = []
    bad = []
    n = 0
    for face, meta in _faces(Faceset.open(folder)):  # reads a pack too
        image, meta = face.load()
        problems = [] if meta.xseg_mask is not None else label_problems(meta.seg_ie_polys, max(image.shape[:2]))
        if problems:
            log.warning(f"{face.where}: {'; '.join(problems)}; no mask written")
            bad.append(face)
            continue
        mask = export_mask(meta, image.shape[0], image.shape[1])
        if mask is None:
            log.warning(f"{face.name}: no XSeg mask and no mask polygons")
            missing.append(face)
            continue
        write_image(out_dir / f"{Path(face.name).stem}_mask.jpg", mask, 100)
        n += 1
    log.info(f"Wrote {n} masks to {out_dir}")
    if bad:
        raise UserError(f"{len(bad)} faces have labels that cannot make a mask (first: {bad[0].name}); "
                        "fix them with xseg editor", folder)
    if missing:
        raise UserError(f"{len(missing)} faces have no mask (first: {missing[0].name})", folder)
    return out_dir


# --- the command ---------------------------------------------------------------------------------------

def run_util(input_dir: str | Path, *, add_landmarks_debug: bool = False, recover_filenames: bool = False,
             save_metadata: bool = False, restore_metadata: bool = False, pack: bool = False,
             unpack: bool = False, export_mask: bool = False, delete_originals: bool | None = None) -> None:
    """Run the chosen utilities on one faceset folder, in a fixed safe order."""
    folder = require_dir(input_dir, "faceset folder").resolve()
    if pack and unpack:
        raise UserError("choose either --pack-faceset or --unpack-faceset, not both")
    if not any((add_landmarks_debug, recover_filenames, save_metadata, restore_metadata, pack, unpack, export_mask)):
        raise UserError("nothing to do: give at least one util option (see --help)")
    finish_interrupted(folder)
    remove_stale_partials(folder, target_suffixes=IMAGE_EXTENSIONS)  # faces of a killed metadata write
    if unpack:
        unpack_faceset(folder)
    if recover_filenames:
        recover_original_filenames(folder)
    if restore_metadata:
        restore_faceset_metadata(folder)
    if save_metadata:
        save_faceset_metadata(folder)
    if add_landmarks_debug:
        add_landmarks_debug_images(folder)
    if export_mask:
        export_faceset_mask(folder)
    if pack:
        pack_faceset(folder, delete_originals)


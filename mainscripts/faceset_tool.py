"""`facesettool resize`: change a faceset's image size and optionally crop it to a smaller face type.

A re-crop must keep every geometric field in step with the pixels, or the merger would paste faces
in the wrong place: the new crop is one `Crop` placed on the current face (a `CropSpec` of the new
size and type on the face's own landmarks: the geometry extraction uses), and its matrix M (current
face pixels -> new face pixels) is applied to the landmarks, the mask polygons, the XSeg mask and
composed with `image_to_face_mat`. A plain resize is M = `resize_matrix`, the pixel map of
cv2.resize. Results go to `<dir>_resized`; the tool then asks whether to move them over the originals.

`facesettool enhance` (DFL's face super-resolution) is not provided: it needs DFL's pretrained
FaceEnhancer network, which this toolkit does not have.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core import interact, log
from core.errors import UserError
from core.fileio import IMAGE_EXTENSIONS, remove_stale_partials, require_dir
from core.rename_journal import finish_interrupted
from core.workers import default_worker_count, run_pool
from facelib.align import compose_affine, invert_affine, transform_points
from facelib.crop import Crop, CropSpec
from facelib.face_type import SHORT_NAMES, FaceType
from facelib.seg_polys import transform_polys
from faceset.face_file import write_aligned_face
from faceset.faceset import Face, Faceset
from faceset.meta import FaceMeta

RECROP_TYPES = (FaceType.HALF, FaceType.MID_FULL, FaceType.FULL, FaceType.WHOLE_FACE, FaceType.HEAD)  # by coverage
FACE_TYPE_CHOICES = (*SHORT_NAMES, "same")
DEFAULT_SIZE = 512
SIZE_RANGE = (32, 4096)
POOL_THRESHOLD = 64


def resize_matrix(src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix of a plain resize from `src_wh` to `dst_wh` (width, height) pixels, pixel
    centres matched the way cv2.resize matches them."""
    sx, sy = dst_wh[0] / src_wh[0], dst_wh[1] / src_wh[1]
    return np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0]])


def resize_face(image: np.ndarray, meta: FaceMeta, size: int,
                face_type: FaceType | None = None) -> tuple[np.ndarray, FaceMeta]:
    """The face at `size` px, re-cropped to `face_type` when it differs from the current one.

    A re-crop can only narrow coverage (e.g. whole_face -> full_face): pixels outside the current
    crop do not exist.
    """
    h, w = image.shape[:2]
    if h != w:
        raise UserError(f"aligned faces are square; this one is {w}x{h}")
    current = meta.face_type
    target = current if face_type is None else FaceType(face_type)
    if target == current:
        mat = resize_matrix((w, w), (size, size))
        interp = cv2.INTER_AREA if size < w else cv2.INTER_LANCZOS4
        new_image = cv2.resize(image, (size, size), interpolation=interp)
    else:
        if current not in RECROP_TYPES or target not in RECROP_TYPES:
            raise UserError(f"cannot re-crop {current.long_name} faces to {target.long_name}")
        if RECROP_TYPES.index(target) > RECROP_TYPES.index(current):
            raise UserError(f"cannot widen {current.long_name} to {target.long_name}: the pixels outside the "
                            "current crop are not in the file (re-extract from the frames instead)")
        if meta.landmarks.shape != (68, 2):
            raise UserError("re-cropping needs 68 landmarks")
        crop = CropSpec(size, target).of(meta.landmarks)
        mat = crop.mat
        new_image = _warp(image, crop)
    return new_image, transform_meta(meta, mat, (h, w), size, target)


def _warp(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop with Lanczos, first shrinking with area averaging when the crop is much smaller."""
    mat, size, scale = crop.mat, crop.size, crop.pixel_scale
    if scale < 0.5:
        h, w = image.shape[:2]
        sw, sh = max(1, round(w * scale * 2)), max(1, round(h * scale * 2))
        image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        mat = compose_affine(mat, invert_affine(resize_matrix((w, h), (sw, sh))))
    return cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_CONSTANT)


def transform_meta(meta: FaceMeta, mat: np.ndarray, image_hw: tuple[int, int], size: int, face_type: FaceType) -> FaceMeta:
    """`meta` after the face pixels went through `mat` into a `size` crop of `face_type`."""
    polys = None if meta.seg_ie_polys is None else transform_polys(meta.seg_ie_polys, mat)
    mask = None
    if meta.xseg_mask is not None:  # the mask covers the face image at its own resolution
        mh, mw = meta.xseg_mask.shape
        mask_mat = compose_affine(mat, resize_matrix((mw, mh), (image_hw[1], image_hw[0])))
        mask = np.clip(cv2.warpAffine(meta.xseg_mask, mask_mat, (size, size), flags=cv2.INTER_LINEAR), 0.0, 1.0)
    image_to_face = None
    if meta.image_to_face_mat is not None:
        image_to_face = compose_affine(mat, meta.image_to_face_mat)
    return FaceMeta(
        face_type=face_type,
        landmarks=transform_points(meta.landmarks, mat),
        source_filename=meta.source_filename,
        source_rect=meta.source_rect,
        source_landmarks=meta.source_landmarks,
        image_to_face_mat=image_to_face,
        eyebrows_expand_mod=meta.eyebrows_expand_mod,
        seg_ie_polys=polys,
        xseg_mask=mask,
        identity=meta.identity,
        track_id=meta.track_id,
        extra=dict(meta.extra),
    )


@dataclass(frozen=True)
class ResizeJob:
    face: Face  # a face of the faceset being resized (a folder: resize refuses packs)
    dst: Path


def _resize_file(size: int, face_type: FaceType | None, quality: int, job: ResizeJob) -> str:
    # Runs in a worker process. The face is read through Faceset's Face; the result is a new face file
    # elsewhere, written by the face-file codec (Faceset.write_meta only rewrites metadata in place).
    image, meta = job.face.load()
    new_image, new_meta = resize_face(image, meta, size, face_type)
    write_aligned_face(job.dst, new_image, new_meta, quality)
    return job.dst.name


def _make_resizer(size: int, face_type: FaceType | None, quality: int):
    cv2.setNumThreads(1)
    return functools.partial(_resize_file, size, face_type, quality)


def _parse_face_type(text: str | None) -> FaceType | None:
    if text is None or text.strip().lower() == "same":
        return None
    return FaceType.from_string(text)


def resize_faceset(input_dir: str | Path, image_size: int | None = None, face_type: str | None = None,
                   merge: bool | None = None, jpeg_quality: int = 100, workers: int | None = None,
                   debug: bool = False) -> Path:
    """Resize (and optionally re-crop) every face of `input_dir` into `<dir>_resized`, then merge back
    if asked. Returns the folder holding the results."""
    folder = require_dir(input_dir, "aligned faces folder").resolve()
    size = interact.pick(image_size, lambda: interact.ask_int("New image size", DEFAULT_SIZE, (128, 2048)))
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        raise UserError(f"--image-size must be {SIZE_RANGE[0]}..{SIZE_RANGE[1]}, got {size}")
    if face_type is None:
        face_type = interact.ask_str("Change face type", "same", FACE_TYPE_CHOICES,
                                     help_text="h/mf/f/wf/head re-crops to that (narrower) face type; same keeps it")
    target = _parse_face_type(face_type)
    if not 1 <= jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality must be 1..100, got {jpeg_quality}")
    finish_interrupted(folder)
    remove_stale_partials(folder, target_suffixes=IMAGE_EXTENSIONS)  # faces of a killed metadata write
    faceset = Faceset.open(folder)
    faceset.require_folder("resize")  # it replaces the faces in place
    if not len(faceset):
        raise UserError("no images in this folder", folder)
    out_dir = folder.parent / f"{folder.name}_resized"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError("the output folder is not empty (a previous resize?); merge or delete it first", out_dir)
    out_dir.mkdir(exist_ok=True)
    jobs = []
    for face in faceset:
        try:
            has_meta = face.meta() is not None
        except UserError as e:
            log.warning(f"{face.name}: {e.problem}; skipped")
            continue
        if not has_meta:
            log.warning(f"{face.name}: no face metadata; skipped")
            continue
        jobs.append(ResizeJob(Face(face.name, face.path), out_dir / face.name))  # sent without its metadata
    if not jobs:
        raise UserError("no aligned faces in this folder", folder)
    if workers is None:
        workers = default_worker_count() if len(jobs) >= POOL_THRESHOLD else 0
    label = f"{size}px" + (f", {target.long_name}" if target is not None else "")
    failed = []
    for res in run_pool(functools.partial(_make_resizer, size, target, jpeg_quality), jobs, workers=workers,
                        name_of=lambda j: j.face.name, desc=f"Resizing to {label}", unit="faces", debug=debug):
        if not res.ok:
            log.warning(f"{res.name}: {res.error}")
            failed.append(res.name)
    if failed:
        raise UserError(f"{len(failed)} faces could not be resized (first: {failed[0]}); nothing was merged", out_dir)
    log.info(f"Resized {len(jobs)} faces into {out_dir}")
    do_merge = interact.pick(merge, lambda: interact.ask_bool(
        f"Merge {out_dir.name} back into {folder.name}? (replaces the original faces)", True))
    if not do_merge:
        return out_dir
    for job in jobs:  # each replace is atomic; a face is either the old or the new one
        os.replace(job.dst, job.face.path)
    out_dir.rmdir()
    log.info(f"Merged the resized faces into {folder}")
    return folder

"""The faceset index for training: every face's metadata read once, before any pixel is decoded.

Exists so that loading and checking a faceset (a folder of aligned JPEGs, ours or DFL's, or a
`faceset.pak`) is one job, apart from augmentation and batch transport: `load_faceset` turns a
faceset into light `FaceRecord`s (where the bytes are, face type, landmarks, XSeg labels), `check_face_type`
refuses faces narrower than a model's face type, and `face_yaw` measures a record's head turn
(for uniform-yaw drawing). The trainer's preflight, the augmentation and the batch stream all read
these records.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.errors import UserError
from core.fileio import TEMP_MARK
from core.workers import default_worker_count, run_pool
from facelib.align import FIT_INDICES, MEAN_FACE_UNIT, estimate_averaged_yaw, transform_points, umeyama
from facelib.face_type import FaceType
from facelib.masks import has_include_polygon
from facelib.seg_polys import has_labels, label_problems
from faceset.faceset import Face, Faceset, one_face_type

POOL_THRESHOLD = 2000  # more face files than this: metadata is read on a process pool


@dataclass(eq=False)
class FaceRecord:
    """One face of a faceset: where its bytes are, and the metadata needed before decoding it."""

    name: str  # the face file's name
    path: str  # the face file, or the faceset.pak holding it
    face_type: FaceType
    landmarks: np.ndarray  # 68x2, pixels of the stored face image
    eyebrows_expand_mod: float = 1.0
    source_filename: str = ""
    offset: int = -1  # byte range inside a pack; -1 for a plain file
    length: int = -1
    labelled: bool = False  # carries an XSeg include polygon (hand labels)
    label_problems: tuple[str, ...] = ()  # why its labels cannot make a mask (see `label_issues`); () when fine

    @property
    def usable_labels(self) -> bool:
        """Whether XSeg can train on this face's hand labels."""
        return self.labelled and not self.label_problems

    @property
    def where(self) -> str:
        """How errors name this face: the file, or `pack:name`."""
        return f"{self.path}:{self.name}" if self.offset >= 0 else self.path

    def read_bytes(self) -> bytes:
        try:
            if self.offset < 0:
                return Path(self.path).read_bytes()
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.length)
        except OSError as e:
            raise UserError(f"cannot read this face ({e.strerror or e})", self.where) from None
        if len(data) != self.length:
            raise UserError("the packed faceset changed or was truncated while training", self.where)
        return data


# face_type, landmarks, eyebrows_expand_mod, source_filename, labelled, label problems
_LightMeta = tuple[FaceType, np.ndarray, float, str, bool, tuple[str, ...]]


def label_issues(meta: Any) -> tuple[str, ...]:
    """Why a face's labels cannot make a mask (facelib.seg_polys.label_problems, checked against the
    size of the face they were drawn on); () for good labels or none. Read with the light metadata so
    the XSeg trainer can name such faces before any pixel is decoded."""
    if not has_labels(meta.seg_ie_polys) or np.shape(meta.landmarks) != (68, 2):  # bad landmarks: see _record
        return ()
    from models.xseg_targets import label_face_size  # numpy/OpenCV only; needed for labelled faces alone
    try:
        size = label_face_size(meta)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return ("its landmarks give no face size to check the labels against",)
    return tuple(label_problems(meta.seg_ie_polys, size))


def _light(meta: Any) -> _LightMeta | None:
    if meta is None:
        return None
    return (meta.face_type, meta.landmarks, meta.eyebrows_expand_mod, meta.source_filename,
            has_include_polygon(meta.seg_ie_polys), label_issues(meta))


def _read_light(face: Face) -> _LightMeta | None:
    return _light(face.meta())


def _light_reader():
    """run_pool factory: the per-face metadata reader (returns only what a FaceRecord keeps)."""
    return _read_light


def load_faceset(path: str | Path, face_type: FaceType | None = None) -> list[FaceRecord]:
    """The faces of a faceset (a folder, its `faceset.pak` when there is one, or a pack), metadata only.

    With `face_type`, also checks that the faces can be cropped to it (see `check_face_type`).
    """
    faceset = Faceset.open(path)
    faces = [f for f in faceset if f.is_jpeg and TEMP_MARK not in f.name]
    if not faces:
        raise UserError("no aligned faces (.jpg) here; extract faces first", faceset.where)
    if len(faces) > POOL_THRESHOLD:
        metas = []
        for result in run_pool(_light_reader, faces, workers=default_worker_count(), name_of=lambda f: f.name,
                               desc="Loading faces", unit="faces"):
            if not result.ok:
                raise UserError(str(result.error))
            metas.append(result.value)
    else:
        metas = [_read_light(f) for f in faces]
    missing = [f for f, m in zip(faces, metas) if m is None]
    if missing:
        raise UserError(f"{len(missing)} of {len(faces)} images have no face metadata (not aligned faces; "
                        "remove them or extract faces again)", missing[0].where)
    records = [_record(f, m) for f, m in zip(faces, metas)]
    one_face_type(((r.name, r.face_type) for r in records), faceset.where)
    if face_type is not None:
        check_face_type(records, face_type)
    return records


def _record(face: Face, meta: _LightMeta) -> FaceRecord:
    face_type, landmarks, brows, source, labelled, problems = meta
    if landmarks.shape != (68, 2):
        raise UserError(f"the face has {len(landmarks)} landmarks; training needs the 68-point set", face.where)
    entry = face.entry
    return FaceRecord(face.name, str(face.path), face_type, landmarks, brows, source,
                      -1 if entry is None else entry.offset, -1 if entry is None else entry.size,
                      labelled=labelled, label_problems=problems)


def check_face_type(records: Sequence[FaceRecord], target: FaceType) -> None:
    """Refuse faces narrower than the model's face type: a crop can be re-cropped smaller, never wider."""
    seen: set[FaceType] = set()
    for rec in records:
        ft = rec.face_type
        if ft in seen:
            continue
        seen.add(ft)
        if ft < target:
            raise UserError(f"this face is {ft.long_name} but the model trains on {target.long_name}, which covers "
                            f"more of the head; extract the faces as {target.long_name} (or wider)", rec.where)


def face_yaw(landmarks: np.ndarray) -> float:
    """DFL's averaged yaw of a face, measured in the mean-face unit square so crop size does not matter."""
    lm = np.asarray(landmarks, np.float64)
    to_unit = umeyama(lm[FIT_INDICES], MEAN_FACE_UNIT)[:2]
    return estimate_averaged_yaw(transform_points(lm, to_unit))

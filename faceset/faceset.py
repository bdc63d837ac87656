"""`Faceset.open(path)`: one way in to a set of aligned faces, wherever they are kept.

`path` may be a folder of aligned faces (ours or DeepFaceLab's: the codec reads both), a folder
holding a `faceset.pak` (the pack wins over loose files, DFL's rule), or the pack file itself: our
zip, our first pack format, or DeepFaceLab's own pack, whose pickled sample list is read through
the restricted loader (`faceset.pack_dfl`) for the faces' names and order only. Faces are listed at
once, by name and where their bytes are; each face's metadata and image are read only when asked
for (a face in DFL's pack carries its DFL metadata inside, as a loose DFL face does). A pack is
read-only: commands that rename or rewrite faces call `require_folder`, which names the unpack
command (`util --unpack-faceset`, which unpacks DFL's pack too) in one line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from core.errors import UserError
from core.fileio import list_images
from facelib.face_type import FaceType
from faceset.face_file import face_from_bytes, meta_from_jpeg_bytes, update_face_meta
from faceset.meta import FaceMeta, encoded_image_size
from faceset.pack import UNPACK_HINT, is_packed, list_packed, pack_path, read_entry
from faceset.pack_rules import PackEntry

FACE_EXTENSIONS = (".jpg", ".jpeg")  # aligned faces are JPEGs; other images in a folder are not faces


@dataclass(eq=False)
class Face:
    """One face of a faceset: its file name and where its bytes are; metadata read on first use."""

    name: str
    path: Path  # the face file, or the pack holding it
    entry: PackEntry | None = None  # its place in the pack; None for a plain file
    _meta: FaceMeta | None = field(default=None, repr=False)
    _meta_read: bool = field(default=False, repr=False)

    @property
    def where(self) -> str:
        """How errors name this face: the file, or `pack:name`."""
        return f"{self.path}:{self.name}" if self.entry is not None else str(self.path)

    @property
    def is_jpeg(self) -> bool:
        return self.name.lower().endswith(FACE_EXTENSIONS)

    def read_bytes(self) -> bytes:
        if self.entry is not None:
            return read_entry(self.path, self.entry)
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise UserError("file not found", self.path) from None
        except OSError as e:
            raise UserError(f"cannot read this file ({e.strerror or e})", self.path) from None

    def meta(self) -> FaceMeta | None:
        """Its metadata (None for an image without any); read once, then kept."""
        if not self._meta_read:
            self._meta = meta_from_jpeg_bytes(self.read_bytes(), self.where)
            self._meta_read = True
        return self._meta

    def load(self) -> tuple[np.ndarray, FaceMeta]:
        """The decoded image (uint8 BGR) and its metadata; an image without metadata is a UserError."""
        image, meta = face_from_bytes(self.read_bytes(), self.where)
        self._meta, self._meta_read = meta, True
        return image, meta

    def image_size(self) -> tuple[int, int] | None:
        """(width, height) from the JPEG header, without decoding."""
        return encoded_image_size(self.read_bytes())


class Faceset:
    """The faces of a folder or a pack, in faceset order (natural name order for a folder)."""

    def __init__(self, folder: Path, faces: list[Face], pack: Path | None = None) -> None:
        self.folder = folder
        self.faces = faces
        self.pack = pack

    @classmethod
    def open(cls, path: str | Path) -> Faceset:
        path = Path(path)
        if path.is_file():
            return cls._open_pack(path.parent, path)
        if not path.exists():
            raise UserError("faceset folder not found", path)
        if is_packed(path):
            return cls._open_pack(path, pack_path(path))
        return cls(path, [Face(p.name, p) for p in list_images(path)])

    @classmethod
    def _open_pack(cls, folder: Path, pack: Path) -> Faceset:
        return cls(folder, [Face(e.name, pack, e) for e in list_packed(pack)], pack)

    @property
    def is_pack(self) -> bool:
        return self.pack is not None

    @property
    def where(self) -> Path:
        """The pack, or the folder: what errors about the whole set name."""
        return self.pack or self.folder

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def require_folder(self, what: str) -> None:
        """Refuse, in one line naming the unpack command, a command that must rename or rewrite faces."""
        if self.pack is not None:
            raise UserError(f"{what} cannot work on a packed faceset: {UNPACK_HINT}", self.pack)

    def write_meta(self, face: Face, meta: FaceMeta) -> None:
        """Replace a face's metadata atomically (its image bytes untouched); a pack is read-only."""
        self.require_folder("writing face metadata")
        update_face_meta(face.path, meta)
        face._meta, face._meta_read = meta, True

    def with_meta(self) -> Iterator[tuple[Face, FaceMeta]]:
        """(face, metadata) of every aligned face, in order; a face whose metadata cannot be read and an
        image without any are skipped with a warning naming it (commands that go on with the rest)."""
        from core import log  # the faceset itself logs nothing else
        for face in self.faces:
            try:
                meta = face.meta()
            except UserError as e:
                log.warning(f"{face.where}: {e.problem}; skipped")
                continue
            if meta is None:
                log.warning(f"{face.where}: no face metadata (not an aligned face); skipped")
                continue
            yield face, meta

    def _first_meta(self) -> tuple[Face, FaceMeta] | None:
        for face in self.faces:
            meta = face.meta() if face.is_jpeg else None
            if meta is not None:
                return face, meta
        return None

    @property
    def face_type(self) -> FaceType | None:
        """The face type of the set, from its first face (`check_one_face_type` reads them all)."""
        first = self._first_meta()
        return None if first is None else first[1].face_type

    @property
    def image_size(self) -> int | None:
        """The side in pixels of the set's (square) faces, from its first face's JPEG header."""
        first = self._first_meta()
        size = None if first is None else first[0].image_size()
        return None if size is None else max(size)

    def check_one_face_type(self) -> FaceType:
        """The one face type of all faces; mixed types or no face with metadata is a UserError."""
        metas = ((f.name, f.meta() if f.is_jpeg else None) for f in self.faces)
        return one_face_type(((name, m.face_type) for name, m in metas if m is not None), self.where)


def one_face_type(faces: Iterable[tuple[str, FaceType]], where: str | Path) -> FaceType:
    """The face type shared by (name, face type) pairs; mixed types or none at all is a UserError."""
    first: dict[FaceType, str] = {}
    for name, face_type in faces:
        first.setdefault(face_type, name)
        if len(first) > 1:
            (ta, a), (tb, b) = first.items()
            raise UserError(f"mixed face types: {a} is {ta.long_name}, {b} is {tb.long_name}; "
                            "a faceset holds one face type (extract again or split the folder)", where)
    if not first:
        raise UserError("no aligned faces here", where)
    return next(iter(first))

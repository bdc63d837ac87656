"""Which faces go into which dst frame, and how they move: the merger's input, checked up front.

Each aligned dst face names its source frame and carries its landmarks in that frame, so the merger
never re-detects. Problems a user can fix (no aligned faces, faces of other frames, frames of
different sizes) are UserErrors before any output is written.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import log
from core.errors import UserError
from core.fileio import list_images, require_dir
from faceset.faceset import Faceset
from merger.compose import Motion, motion_between
from merger.xseg_masks import BakedMask


@dataclass
class FrameInfo:
    """One dst frame: its file, the landmarks (frame pixels) of each face to merge, its motion, and each
    face's baked XSeg mask (None for a face without one; XSeg-dst uses it)."""

    path: Path
    landmarks: list[np.ndarray] = field(default_factory=list)
    motion: Motion = field(default_factory=Motion)
    baked_masks: list[BakedMask | None] = field(default_factory=list)  # face j's, when j < len
    track_ids: list[int | None] = field(default_factory=list)  # face j's track (facelib.tracks), when j < len

    def track_id(self, j: int) -> int | None:
        """Face j's track id (None: untracked, merged frame by frame)."""
        return self.track_ids[j] if j < len(self.track_ids) else None

    @property
    def name(self) -> str:
        return self.path.name

    def baked_mask(self, j: int) -> BakedMask | None:
        """Face j's baked XSeg mask, or None."""
        return self.baked_masks[j] if j < len(self.baked_masks) else None


def _aligned_metas(aligned_dir: Path) -> list[tuple[str, object]]:
    """(file name, FaceMeta or None) of every face in the folder, or in its packed faceset."""
    return [(f.name, f.meta()) for f in Faceset.open(aligned_dir) if f.is_jpeg]


def collect_frames(input_dir: str | Path, aligned_dir: str | Path) -> list[FrameInfo]:
    """The dst frames in natural order, each with the landmarks of its aligned faces.

    Faces are matched to frames by the stem of their `source_filename` (DFL's rule). Faces whose
    frame is missing are reported; if none of the faces matches a frame, the folders do not belong
    together and that is an error.
    """
    input_dir = require_dir(input_dir, "input frames folder")
    aligned_dir = require_dir(aligned_dir, "aligned faces folder")
    frames = list_images(input_dir)
    if not frames:
        raise UserError("no frames (images) in this folder", input_dir)
    by_stem = {p.stem: FrameInfo(p) for p in frames}
    if len(by_stem) != len(frames):
        raise UserError("two frames share a name with different extensions; keep one per frame", input_dir)

    metas = _aligned_metas(aligned_dir)
    if not metas:
        raise UserError("no aligned faces in this folder (run extract on the dst frames first)", aligned_dir)
    no_meta, missing = [], []
    for name, meta in metas:
        if meta is None or meta.source_landmarks is None or len(meta.source_landmarks) != 68:
            no_meta.append(name)
            continue
        info = by_stem.get(Path(meta.source_filename).stem)
        if info is None:
            missing.append((name, meta.source_filename))
            continue
        info.landmarks.append(np.asarray(meta.source_landmarks, np.float64))
        baked = getattr(meta, "xseg_mask", None)
        info.baked_masks.append(None if baked is None else BakedMask.from_array(baked, meta.face_type))
        info.track_ids.append(getattr(meta, "track_id", None))
    if no_meta:
        log.warning(f"{aligned_dir}: {len(no_meta)} file(s) without face metadata or frame landmarks skipped "
                    f"(e.g. {no_meta[0]})")
    matched = len(metas) - len(no_meta) - len(missing)
    if missing:
        example_face, example_frame = missing[0]
        if matched == 0:
            raise UserError(f"none of the {len(missing)} aligned faces belongs to a frame of {input_dir} "
                            f"(e.g. {example_face} comes from '{example_frame}', which is not there); "
                            f"these faces were extracted from other frames", aligned_dir)
        log.warning(f"{aligned_dir}: {len(missing)} aligned face(s) come from frames that are not in {input_dir} "
                    f"(e.g. {example_face} from '{example_frame}'); they are not merged")
    if matched == 0:
        raise UserError("no usable aligned faces (none has frame landmarks)", aligned_dir)
    infos = [by_stem[p.stem] for p in frames]
    rebuild_track_ids(infos)
    set_motion(infos)
    return infos


def rebuild_track_ids(infos: list[FrameInfo]) -> None:
    """Faces that carry no track id (DFL's facesets, ours extracted with --no-tracks or before tracks):
    ids linked here from their frame landmarks in time order, with extract's gates on jump and size
    (facelib.tracks.link), so the temporal merge works on them too. Nothing when any face has an id
    (extract's tracks are better: they saw the frames). The frames are not read here, so a cut is seen
    only where the face jumps or changes size."""
    if any(t is not None for info in infos for t in info.track_ids):
        return
    from facelib.detected_face import DetectedFace
    from facelib.tracks import frame_numbers, link
    numbers = frame_numbers([info.path for info in infos]) or list(range(len(infos)))
    faces = [[DetectedFace(rect=(*lm.min(axis=0), *lm.max(axis=0)), landmarks=lm) for lm in info.landmarks]
             for info in infos]
    for track in link(numbers, faces):
        for f in track.faces:
            j = next(j for j, face in enumerate(faces[f.frame]) if face is f.face)
            infos[f.frame].track_ids[j] = track.id


def set_motion(infos: list[FrameInfo]) -> None:
    """Motion vectors from the face's centre in the neighbouring frames. Like DFL, off when any
    frame has several faces (which face is which between frames is unknown)."""
    if any(len(i.landmarks) > 1 for i in infos):
        log.warning("some frames have several faces: all are merged, motion blur is off "
                    "(merge each person separately for motion blur)")
        return
    for k, info in enumerate(infos):
        if not info.landmarks:
            continue
        prev = infos[k - 1].landmarks[0] if k > 0 and infos[k - 1].landmarks else None
        nxt = infos[k + 1].landmarks[0] if k + 1 < len(infos) and infos[k + 1].landmarks else None
        info.motion = motion_between(prev, info.landmarks[0], nxt)


# --- frame sizes -----------------------------------------------------------------------------------

def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if head[:2] != b"\xff\xd8":
            return None
        f.seek(2)
        while True:
            marker = f.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                return None
            kind = marker[1]
            if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
                continue
            length = struct.unpack(">H", f.read(2))[0]
            if kind in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", f.read(5)[1:5])
                return int(w), int(h)
            f.seek(length - 2, 1)


def check_frame_sizes(infos: list[FrameInfo]) -> tuple[int, int]:
    """All frames must share one size (they become one video): (width, height), else a UserError
    naming the first frame that differs."""
    from core.image_io import read_image
    first = None
    for info in infos:
        size = image_size(info.path)
        if size is None:
            h, w = read_image(info.path).shape[:2]
            size = (w, h)
        if first is None:
            first = size
        elif size != first:
            raise UserError(f"frame is {size[0]}x{size[1]} but {infos[0].name} is {first[0]}x{first[1]}; "
                            f"all frames of a sequence must have one size", info.path)
    assert first is not None
    return first

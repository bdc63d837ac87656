"""Small aligned facesets made from the real face photos in tests/data, for curation, training and
merging tests.

Each photo is rendered as a few frames of a slow hand-held drift (core.synth_video), written as
frames, and run through the real extractor, so the faces carry exactly the metadata `extract`
writes (landmarks, source landmarks, crop matrix, source frame name).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from core.image_io import read_image, write_image
from core.synth_video import render_frames, smooth_motion

FACES = Path(__file__).resolve().parent / "data" / "faces"


def make_frames(photo: str | Path, out_dir: Path, count: int = 4, frame_size: tuple[int, int] = (320, 240),
                seed: int = 0, prefix: str = "") -> list[Path]:
    """`count` frames (PNG, 00001.png ...) of the photo drifting; returns their paths."""
    photo = Path(photo) if Path(photo).is_absolute() else FACES / photo
    image = read_image(photo)
    h, w = image.shape[:2]
    from mainscripts.demo import head_and_shoulders
    mats = smooth_motion(max(count, 2), (w, h), frame_size, focus=head_and_shoulders(photo), seed=seed,
                         shift=0.05, rotation_deg=8.0, zoom=0.08)[:count]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(render_frames(image, mats, frame_size)):
        p = out_dir / f"{prefix}{i + 1:05d}.png"
        write_image(p, frame)
        paths.append(p)
    return paths


def extract_faces(frames: list[Path], aligned_dir: Path, size: int = 128, face_type: str = "whole_face") -> list[Path]:
    """Run the real extractor (in this process) over `frames`; returns the aligned face files."""
    from mainscripts.extract_stages import FrameExtractor, FrameJob, FrameSettings

    aligned_dir.mkdir(parents=True, exist_ok=True)
    worker = FrameExtractor(FrameSettings(output_dir=aligned_dir, face_type=face_type, image_size=size))
    for frame in frames:
        worker(FrameJob(frame))
    return sorted(aligned_dir.glob("*.jpg"))


def make_faceset(photos: list[str], out_dir: Path, per_photo: int = 4, size: int = 128,
                 face_type: str = "whole_face", frame_size: tuple[int, int] = (320, 240)) -> list[Path]:
    """An aligned faceset in `out_dir/aligned` from `per_photo` drifting frames of each photo
    (frames kept in `out_dir`, named <photo stem>_00001.png ...)."""
    frames: list[Path] = []
    for k, photo in enumerate(photos):
        frames += make_frames(photo, out_dir, per_photo, frame_size, seed=k, prefix=f"{Path(photo).stem}_")
    return extract_faces(frames, out_dir / "aligned", size, face_type)


def blurred_copy(src: Path, dst: Path, sigma: float = 3.0) -> Path:
    """Copy an aligned face with its pixels blurred and its metadata kept (a 'bad' face)."""
    from faceset.face_file import load_aligned_face, write_aligned_face

    image, meta = load_aligned_face(src)
    write_aligned_face(dst, cv2.GaussianBlur(image, (0, 0), sigma), meta)
    return dst


def copy_faceset(faceset: Path, tmp_path: Path) -> Path:
    """A private copy of a shared (session) faceset, as `tmp_path/aligned`, for tests that change it."""
    folder = tmp_path / "aligned"
    shutil.copytree(faceset, folder)
    return folder


def write_legacy_pack(pack_file: Path, entries: list[tuple[str, bytes]]) -> None:
    """A pack in the first format (magic header + JSON index + bytes), as the toolkit wrote them
    before packs became zips; only read now, so only tests write it."""
    import hashlib
    import json
    import struct
    index, offset = [], 0
    for name, data in entries:
        index.append({"name": name, "offset": offset, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        offset += len(data)
    blob = json.dumps({"format": "facekit.packed_faceset", "version": 1, "count": len(index),
                       "entries": index}).encode("ascii")
    Path(pack_file).write_bytes(b"FACEPAK\0" + struct.pack(">IQ", 1, len(blob)) + blob
                                + b"".join(data for _, data in entries))

"""The aligned-face file: a plain JPEG whose header carries the face's metadata (`FaceMeta`).

Why inside the JPEG: a faceset stays a folder of ordinary images that any viewer opens, and a face
can never be separated from its landmarks. Our metadata is JSON (`faceset.meta`) in APP11 segments
that start with `FACEKIT\\0` (so another tool's APP11, e.g. JPEG XT/JUMBF, is never mistaken for
ours); JSON over one segment's 64 KB is split across numbered segments. DeepFaceLab files (a pickled
dict in APP15, `faceset.dfl_meta`) are read too, and a DFL face keeps its DFL segment. Our JSON
records the SHA-256 of the DFL segment written with it; when DFL later rewrites the face (its XSeg
editor, its resize) the digests differ and DFL's fields are read, with our own extras kept.
Rewriting metadata never re-encodes the image.
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import cv2
import numpy as np

from core.errors import UserError
from core.fileio import atomic_write_bytes
from faceset.dfl_meta import (
    DFL_EXTRA_KEY,
    DFL_MARKER,
    MAX_SEGMENT_PAYLOAD,
    dfl_payload,
    looks_like_pickle,
    meta_from_dfl,
)
from faceset.meta import MAX_META_JSON, FaceMeta, json_dict, meta_from_dict, meta_to_json

META_MARKER = 0xEB  # APP11
META_PREFIX = b"FACEKIT\0"
_SEQ = struct.Struct(">HH")  # segment index, segment count
_MAX_CHUNK = MAX_SEGMENT_PAYLOAD - len(META_PREFIX) - _SEQ.size
_APP0 = 0xE0
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0..7: no length field


def write_aligned_face(path: str | Path, image_bgr: np.ndarray, meta: FaceMeta, jpeg_quality: int = 90) -> None:
    """Encode `image_bgr` (uint8) as JPEG with `meta` embedded and write it atomically."""
    image = np.asarray(image_bgr)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"aligned face must be a uint8 BGR or grey image, got {image.dtype} {image.shape}")
    quality = int(jpeg_quality)
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise UserError("OpenCV could not encode this image as JPEG", path)
    _write(path, jpeg_bytes_with_meta(buf.tobytes(), meta, path))


def read_face_meta(path: str | Path) -> FaceMeta | None:
    """The face metadata of an aligned face file (ours or DFL's), or None when it has none."""
    return meta_from_jpeg_bytes(_read(path), path)


def load_aligned_face(path: str | Path) -> tuple[np.ndarray, FaceMeta]:
    """The face image (uint8 BGR) and its metadata; a JPEG without metadata is a UserError."""
    return face_from_bytes(_read(path), path)


def face_from_bytes(data: bytes, path: str | Path | None = None) -> tuple[np.ndarray, FaceMeta]:
    """`load_aligned_face` on a face file's bytes (e.g. from a pack); `path` only names errors."""
    meta = meta_from_jpeg_bytes(data, path)
    if meta is None:
        raise UserError("this JPEG has no face metadata (not an aligned face; extract faces first)", path)
    # Landmarks are in stored pixel order, so EXIF rotation must not be applied.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise UserError("corrupt JPEG (OpenCV cannot decode the image)", path)
    return image, meta


def update_face_meta(path: str | Path, meta: FaceMeta) -> None:
    """Replace the metadata of an existing JPEG atomically, keeping its compressed image bytes.

    A DFL face keeps its DFL segment, verbatim when `meta` still says what it says, else rewritten
    from `meta` (see the module docstring), so DFL can still read the face.
    """
    _write(path, jpeg_bytes_with_meta(_read(path), meta, path))


def meta_from_jpeg_bytes(data: bytes, path: str | Path | None = None) -> FaceMeta | None:
    """`read_face_meta` on bytes in memory (e.g. a packed faceset); `path` only names errors."""
    segments, _scan = _parse_jpeg(data, path)
    ours = [p for m, p in segments if m == META_MARKER and p.startswith(META_PREFIX)]
    dfl = [p for m, p in segments if m == DFL_MARKER]
    if ours:
        d = json_dict(_join_chunks(ours, path), path)
        meta = meta_from_dict(d, path)
        recorded = d.get("dfl_sha256")
        theirs = [p for p in dfl if looks_like_pickle(p)]
        if theirs and isinstance(recorded, str) and recorded != hashlib.sha256(theirs[0]).hexdigest():
            return _merge_dfl_edit(meta_from_dfl(theirs[0], path), meta)  # DFL rewrote the face after us
        return meta
    if dfl:
        return meta_from_dfl(dfl[0], path)
    return None


def _merge_dfl_edit(theirs: FaceMeta, ours: FaceMeta) -> FaceMeta:
    """A face DFL changed after we wrote it: DFL's fields, with what only we keep (identity, our extras)."""
    theirs.identity = ours.identity
    theirs.track_id = ours.track_id
    theirs.extra = {**{k: v for k, v in ours.extra.items() if k != DFL_EXTRA_KEY}, **theirs.extra}
    return theirs


def jpeg_bytes_with_meta(data: bytes, meta: FaceMeta, path: str | Path | None = None) -> bytes:
    """The JPEG `data` with its face metadata replaced by `meta`; image segments are kept verbatim."""
    segments, scan = _parse_jpeg(data, path)
    old_dfl = next((p for m, p in segments if m == DFL_MARKER and looks_like_pickle(p)), None)
    kept = [
        (m, p) for m, p in segments
        if not (m == META_MARKER and p.startswith(META_PREFIX)) and not (m == DFL_MARKER and looks_like_pickle(p))
    ]
    n_app0 = 0
    while n_app0 < len(kept) and kept[n_app0][0] == _APP0:
        n_app0 += 1
    dfl = dfl_payload(meta, old_dfl, path)
    blob = meta_to_json(meta, None if dfl is None else hashlib.sha256(dfl).hexdigest())
    if len(blob) > MAX_META_JSON:
        raise UserError(f"face metadata too large to write ({len(blob)} bytes; at most {MAX_META_JSON})", path)
    ours = [(META_MARKER, p) for p in _split_chunks(blob)] + ([] if dfl is None else [(DFL_MARKER, dfl)])
    out = [b"\xff\xd8"]
    for marker, payload in kept[:n_app0] + ours + kept[n_app0:]:
        out.append(struct.pack(">BBH", 0xFF, marker, len(payload) + 2))
        out.append(payload)
    out.append(scan)
    return b"".join(out)


# ---- JPEG segments ----------------------------------------------------------------------------


def _parse_jpeg(data: bytes, path: str | Path | None) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split a JPEG into its header segments (marker, payload) and the rest from SOS to EOI.

    The part from SOS on is kept as one opaque block: it is the compressed image, which we never
    touch. A file that ends before its EOI marker is reported as truncated.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != _SOI:
        raise UserError("not a JPEG file (aligned faces are .jpg)", path)
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        if pos >= len(data):
            raise UserError("truncated JPEG (ends inside its header, before the image data)", path)
        if data[pos] != 0xFF:
            raise UserError(f"corrupt JPEG (expected a marker at byte {pos})", path)
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= len(data):
            raise UserError("truncated JPEG (ends inside its header, before the image data)", path)
        marker = data[pos]
        pos += 1
        if marker == _SOS:
            scan = data[pos - 2:]
            if scan.rfind(b"\xff\xd9") < 0:
                raise UserError("truncated JPEG (the image data ends before the end-of-image marker)", path)
            return segments, scan
        if marker in (_SOI, _EOI) or marker == 0x00:
            raise UserError(f"corrupt JPEG (unexpected marker 0x{marker:02X} before the image data)", path)
        if marker in _STANDALONE:
            continue
        if pos + 2 > len(data):
            raise UserError("truncated JPEG (ends inside a segment header)", path)
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise UserError(f"corrupt JPEG (segment 0x{marker:02X} has length {length})", path)
        end = pos + length
        if end > len(data):
            raise UserError(f"truncated JPEG (segment 0x{marker:02X} runs past the end of the file)", path)
        segments.append((marker, data[pos + 2:end]))
        pos = end


def _split_chunks(blob: bytes) -> list[bytes]:
    chunks = [blob[i:i + _MAX_CHUNK] for i in range(0, len(blob), _MAX_CHUNK)] or [b""]
    if len(chunks) > 0xFFFF:
        raise ValueError(f"face metadata too large ({len(blob)} bytes)")
    return [META_PREFIX + _SEQ.pack(i, len(chunks)) + c for i, c in enumerate(chunks)]


def _join_chunks(payloads: list[bytes], path: str | Path | None) -> bytes:
    total = sum(len(p) - len(META_PREFIX) - _SEQ.size for p in payloads)
    if total > MAX_META_JSON:
        raise UserError(f"refusing face metadata: too large ({total} bytes; a face's is kilobytes, "
                        f"at most {MAX_META_JSON})", path)
    parts: dict[int, bytes] = {}
    counts = set()
    for p in payloads:
        head = p[len(META_PREFIX):len(META_PREFIX) + _SEQ.size]
        if len(head) < _SEQ.size:
            raise UserError("corrupt face metadata (a FACEKIT segment is too short)", path)
        index, count = _SEQ.unpack(head)
        if index in parts:
            raise UserError(f"corrupt face metadata (segment {index} appears twice)", path)
        parts[index] = p[len(META_PREFIX) + _SEQ.size:]
        counts.add(count)
    if len(counts) != 1:
        raise UserError("corrupt face metadata (its segments disagree on how many there are)", path)
    (count,) = counts
    missing = sorted(set(range(count)) - parts.keys())
    if missing:
        raise UserError(f"corrupt face metadata (split into {count} segments, {missing} missing)", path)
    if len(parts) != count:
        raise UserError(f"corrupt face metadata (segment numbers beyond the count of {count})", path)
    return b"".join(parts[i] for i in range(count))


# ---- file access ------------------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except OSError as e:
        raise UserError(f"cannot read this file ({e.strerror or e})", path) from None


def _write(path: str | Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise UserError(f"cannot write this file ({e.strerror or e})", path) from None

"""The aligned-face file: a plain JPEG whose header carries the face's metadata (`FaceMeta`).

Why inside the JPEG: a faceset stays a folder of ordinary images that any viewer opens, and a face
can never be separated from its landmarks. Our metadata is JSON in APP11 segments that start with
`FACEKIT\\0` (so another tool's APP11, e.g. JPEG XT/JUMBF, is never mistaken for ours); JSON over
one segment's 64 KB is split across numbered segments. DeepFaceLab files (a pickled dict in APP15)
are read too, through a restricted, bounded unpickler. Rewriting metadata never re-encodes the image.

DFL faces stay DFL faces: a face read from DFL's pickle carries `extra["dfl"]` (DFL's other plain
keys, possibly none), and every write of such a face keeps a DFL segment next to ours: DFL's own
bytes verbatim while they still say what our metadata says (sort, renames), else a fresh DFL dict
of plain data and numpy arrays (resize, new masks), written by `dfl_dumps`. Our JSON records the
SHA-256 of the DFL segment written with it; when DFL later rewrites the face (its XSeg editor, its
resize) the digests differ and DFL's fields are read, with our own extras kept.

Metadata is untrusted input: our JSON is bounded in size and nesting, DFL's pickle by its loader,
and numbers must be finite, so a hostile face is one clear error naming the file.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import log
from core.dfl_restricted_pickle import MAX_DEPTH, dfl_dumps, restricted_loads
from core.errors import UserError
from core.fileio import atomic_write_bytes

FORMAT_NAME = "facekit.face_meta"
FORMAT_VERSION = 1  # the major version: readers refuse newer majors, additive fields keep it

META_MARKER = 0xEB  # APP11
META_PREFIX = b"FACEKIT\0"
_SEQ = struct.Struct(">HH")  # segment index, segment count
_MAX_PAYLOAD = 0xFFFF - 2  # the 16-bit length field counts itself
_MAX_CHUNK = _MAX_PAYLOAD - len(META_PREFIX) - _SEQ.size

DFL_MARKER = 0xEF  # APP15, DeepFaceLab's pickled dict
DFL_EXTRA_KEY = "dfl"  # meta.extra["dfl"]: the face came from DFL (value: DFL's other plain keys)
_DFL_MASK_MAX = 50_000  # DFL re-encodes its xseg_mask as JPEG until it fits this many bytes
# Our JSON: a face's metadata is kilobytes; a noise XSeg mask at 2048 px with a long identity is
# about 2 MB. The bound is checked on the joined segments' size before anything is joined or parsed.
MAX_META_JSON = 8 << 20
_APP0 = 0xE0
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0..7: no length field


@dataclass(eq=False)
class FaceMeta:
    """What an aligned face file carries besides its pixels (see GUIDE §1).

    Arrays are normalised on construction: landmarks, polygons and identity as float32,
    the matrix as float64 (2x3), the XSeg mask as float32 HxW in 0..1 (stored as 8-bit PNG, so a
    read-back mask is quantised to 1/255).
    """

    face_type: str
    landmarks: np.ndarray  # Nx2 (68 for iBUG), aligned-face pixels
    source_filename: str = ""
    source_rect: tuple[int, int, int, int] | None = None  # l, t, r, b in frame pixels
    source_landmarks: np.ndarray | None = None  # Nx2, frame pixels; the merger uses these
    image_to_face_mat: np.ndarray | None = None  # 2x3, frame -> aligned face
    eyebrows_expand_mod: float = 1.0
    seg_ie_polys: list[dict[str, Any]] | None = None  # [{"type": 0 exclude | 1 include, "pts": Nx2}]
    xseg_mask: np.ndarray | None = None
    identity: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able; for fields not known yet

    def __post_init__(self) -> None:
        self.face_type = str(self.face_type)
        self.landmarks = _points(self.landmarks, "landmarks")
        self.source_filename = str(self.source_filename or "")
        if self.source_rect is not None:
            rect = [float(v) for v in np.asarray(self.source_rect).reshape(-1)]
            if len(rect) != 4:
                raise ValueError(f"source_rect needs 4 numbers (l, t, r, b), got {len(rect)}")
            if not all(math.isfinite(v) and abs(v) < 2**31 for v in rect):
                raise ValueError(f"source_rect needs 4 finite pixel positions, got {rect}")
            self.source_rect = tuple(int(round(v)) for v in rect)  # type: ignore[assignment]
        if self.source_landmarks is not None:
            self.source_landmarks = _points(self.source_landmarks, "source_landmarks")
        if self.image_to_face_mat is not None:
            mat = np.asarray(self.image_to_face_mat, dtype=np.float64)
            if mat.shape != (2, 3):
                raise ValueError(f"image_to_face_mat must be 2x3, got {mat.shape}")
            if not np.isfinite(mat).all():
                raise ValueError("image_to_face_mat must hold finite numbers")
            self.image_to_face_mat = mat
        self.eyebrows_expand_mod = float(self.eyebrows_expand_mod)
        if not math.isfinite(self.eyebrows_expand_mod):
            raise ValueError("eyebrows_expand_mod must be a finite number")
        if self.seg_ie_polys is not None:
            self.seg_ie_polys = [_poly(p) for p in self.seg_ie_polys]
        if self.xseg_mask is not None:
            mask = np.asarray(self.xseg_mask, dtype=np.float32)
            if mask.ndim == 3 and mask.shape[2] == 1:
                mask = mask[:, :, 0]
            if mask.ndim != 2 or mask.size == 0:
                raise ValueError(f"xseg_mask must be HxW, got {mask.shape}")
            self.xseg_mask = mask
        if self.identity is not None:
            self.identity = np.asarray(self.identity, dtype=np.float32).reshape(-1)
            if not np.isfinite(self.identity).all():
                raise ValueError("identity must hold finite numbers")
        self.extra = dict(self.extra or {})


def _points(value: Any, what: str) -> np.ndarray:
    pts = np.asarray(value, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{what} must be Nx2, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{what} must hold finite numbers")
    return pts


def _poly(p: Any) -> dict[str, Any]:
    if isinstance(p, dict):
        kind, pts = p["type"], p["pts"]
    else:  # DFL's legacy (type, pts) pairs
        kind, pts = p
    kind = int(kind)
    if kind not in (0, 1):
        raise ValueError(f"polygon type must be 0 (exclude) or 1 (include), got {kind}")
    pts = np.asarray(pts, dtype=np.float32).reshape(-1, 2) if len(pts) else np.zeros((0, 2), np.float32)
    if not np.isfinite(pts).all():
        raise ValueError("polygon points must be finite numbers")
    return {"type": kind, "pts": pts}


# ---- public API -------------------------------------------------------------------------------


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
    data = _read(path)
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
        d = _json_dict(_join_chunks(ours, path), path)
        meta = _meta_from_dict(d, path)
        recorded = d.get("dfl_sha256")
        theirs = [p for p in dfl if _looks_like_pickle(p)]
        if theirs and isinstance(recorded, str) and recorded != hashlib.sha256(theirs[0]).hexdigest():
            return _merge_dfl_edit(_meta_from_dfl(theirs[0], path), meta)  # DFL rewrote the face after us
        return meta
    if dfl:
        return _meta_from_dfl(dfl[0], path)
    return None


def _merge_dfl_edit(theirs: FaceMeta, ours: FaceMeta) -> FaceMeta:
    """A face DFL changed after we wrote it: DFL's fields, with what only we keep (identity, our extras)."""
    theirs.identity = ours.identity
    theirs.extra = {**{k: v for k, v in ours.extra.items() if k != DFL_EXTRA_KEY}, **theirs.extra}
    return theirs


def jpeg_bytes_with_meta(data: bytes, meta: FaceMeta, path: str | Path | None = None) -> bytes:
    """The JPEG `data` with its face metadata replaced by `meta`; image segments are kept verbatim."""
    segments, scan = _parse_jpeg(data, path)
    old_dfl = next((p for m, p in segments if m == DFL_MARKER and _looks_like_pickle(p)), None)
    kept = [
        (m, p) for m, p in segments
        if not (m == META_MARKER and p.startswith(META_PREFIX)) and not (m == DFL_MARKER and _looks_like_pickle(p))
    ]
    n_app0 = 0
    while n_app0 < len(kept) and kept[n_app0][0] == _APP0:
        n_app0 += 1
    dfl = _dfl_payload(meta, old_dfl, path)
    blob = _meta_to_json(meta, None if dfl is None else hashlib.sha256(dfl).hexdigest())
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


def _looks_like_pickle(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[0] == 0x80 and 2 <= payload[1] <= 5  # PROTO opcode


# ---- our JSON ---------------------------------------------------------------------------------


def _meta_to_json(meta: FaceMeta, dfl_sha256: str | None = None) -> bytes:
    d: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "face_type": meta.face_type,
        "landmarks": meta.landmarks.tolist(),
        "source_filename": meta.source_filename,
        "eyebrows_expand_mod": meta.eyebrows_expand_mod,
    }
    if meta.source_rect is not None:
        d["source_rect"] = list(meta.source_rect)
    if meta.source_landmarks is not None:
        d["source_landmarks"] = meta.source_landmarks.tolist()
    if meta.image_to_face_mat is not None:
        d["image_to_face_mat"] = meta.image_to_face_mat.tolist()
    if meta.seg_ie_polys is not None:
        d["seg_ie_polys"] = [{"type": p["type"], "pts": p["pts"].tolist()} for p in meta.seg_ie_polys]
    if meta.xseg_mask is not None:
        d["xseg_mask_png"] = base64.b64encode(_encode_mask(meta.xseg_mask)).decode("ascii")
    if meta.identity is not None:
        d["identity"] = meta.identity.tolist()
    if meta.extra:
        d["extra"] = meta.extra
    if dfl_sha256 is not None:  # the DFL segment written with this JSON (see meta_from_jpeg_bytes)
        d["dfl_sha256"] = dfl_sha256
    # ASCII only, so no 0xFF byte can ever appear inside our segments.
    return json.dumps(d, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _meta_from_json(blob: bytes, path: str | Path | None) -> FaceMeta:
    return _meta_from_dict(_json_dict(blob, path), path)


def _json_dict(blob: bytes, path: str | Path | None) -> Any:
    """Our JSON parsed, bounded in size (by the caller) and in nesting."""
    if len(blob) > MAX_META_JSON:
        raise UserError(f"refusing face metadata: too large ({len(blob)} bytes; at most {MAX_META_JSON})", path)
    try:
        d = json.loads(blob.decode("ascii"))
    except RecursionError:
        raise UserError(f"refusing face metadata: nested too deeply (more than {MAX_DEPTH} levels)", path) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"corrupt face metadata (invalid JSON: {e})", path) from None
    stack = [(d, 1)]
    while stack:  # JSON holds no shared objects, so this visits at most as many values as the text has
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UserError(f"refusing face metadata: nested too deeply (more than {MAX_DEPTH} levels)", path)
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return d


def _meta_from_dict(d: Any, path: str | Path | None) -> FaceMeta:
    if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
        raise UserError("corrupt face metadata (not a facekit face_meta object)", path)
    version = d.get("version")
    if not isinstance(version, int) or version < 1:
        raise UserError(f"corrupt face metadata (bad format version {version!r})", path)
    if version > FORMAT_VERSION:
        raise UserError(f"face metadata format version {version} is newer than this program reads "
                        f"({FORMAT_VERSION}); update the toolkit", path)
    try:
        mask = d.get("xseg_mask_png")
        return FaceMeta(
            face_type=d["face_type"],
            landmarks=d["landmarks"],
            source_filename=d.get("source_filename", ""),
            source_rect=d.get("source_rect"),
            source_landmarks=d.get("source_landmarks"),
            image_to_face_mat=d.get("image_to_face_mat"),
            eyebrows_expand_mod=d.get("eyebrows_expand_mod", 1.0),
            seg_ie_polys=d.get("seg_ie_polys"),
            xseg_mask=None if mask is None else _decode_mask(base64.b64decode(mask, validate=True), path),
            identity=d.get("identity"),
            extra=d.get("extra") or {},
        )
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, binascii.Error) as e:
        raise UserError(f"corrupt face metadata ({type(e).__name__}: {e})", path) from None


def _encode_mask(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("OpenCV could not encode the XSeg mask as PNG")
    return buf.tobytes()


_MAX_MASK_SIDE = 4096  # the largest face size; a mask is at most the face's size


def _encoded_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's SOF, read without decoding; None otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in _STANDALONE:
            pos += 2
        elif marker in (_SOI, _EOI, _SOS):
            return None
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn: precision, height, width
            if pos + 9 > len(data):
                return None
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return w, h
        else:
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


def _decode_mask(data: bytes | np.ndarray, path: str | Path | None) -> np.ndarray:
    data = bytes(data)
    size = _encoded_image_size(data)  # checked before decoding: a 1 KB PNG can declare a gigapixel
    if size is None:
        raise UserError("corrupt face metadata (the XSeg mask is not a PNG or JPEG image)", path)
    if not (0 < size[0] <= _MAX_MASK_SIDE and 0 < size[1] <= _MAX_MASK_SIDE):
        raise UserError(f"refusing face metadata: the XSeg mask is too large ({size[0]}x{size[1]}; "
                        f"at most {_MAX_MASK_SIDE}x{_MAX_MASK_SIDE})", path)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UserError("corrupt face metadata (the XSeg mask image cannot be decoded)", path)
    if img.ndim == 3:
        img = img[:, :, 0]
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) / scale


# ---- DFL's pickled dict -----------------------------------------------------------------------

_DFL_KNOWN = {
    "face_type", "landmarks", "source_filename", "source_rect", "source_landmarks",
    "image_to_face_mat", "eyebrows_expand_mod", "seg_ie_polys", "xseg_mask",
}


def _meta_from_dfl(payload: bytes, path: str | Path | None) -> FaceMeta:
    if not _looks_like_pickle(payload):
        raise UserError("the APP15 segment is not DeepFaceLab face metadata (no pickle inside)", path)
    d = restricted_loads(payload, path)
    if not isinstance(d, dict):
        raise UserError(f"corrupt DFL metadata (APP15 holds a {type(d).__name__}, not a dict)", path)
    if d.get("landmarks") is None:
        raise UserError("DFL metadata has no landmarks", path)
    try:
        polys = d.get("seg_ie_polys")
        if isinstance(polys, dict):  # SegIEPolys.dump(); older files hold a list of (type, pts)
            polys = polys.get("polys")
        polys = list(polys) if polys else None  # DFL writes an empty dump for "no labels"
        brows = d.get("eyebrows_expand_mod")
        mask = d.get("xseg_mask")
        extra = {k: _jsonable(v) for k, v in d.items() if k not in _DFL_KNOWN and v is not None}
        extra = {k: v for k, v in extra.items() if v is not None}
        return FaceMeta(
            face_type=d.get("face_type") or "full_face",  # DFL's own default for old files
            landmarks=d["landmarks"],
            source_filename=d.get("source_filename") or "",
            source_rect=d.get("source_rect"),
            source_landmarks=d.get("source_landmarks"),
            image_to_face_mat=d.get("image_to_face_mat"),
            eyebrows_expand_mod=1.0 if brows is None else brows,
            seg_ie_polys=polys,
            xseg_mask=None if mask is None else _decode_mask(mask, path),
            extra={DFL_EXTRA_KEY: extra},  # marks a DFL face: its writes keep a DFL segment
        )
    except UserError:
        raise
    except RecursionError:
        raise UserError("refusing DFL metadata: nested too deeply", path) from None
    except MemoryError:
        raise UserError("refusing DFL metadata: too large to load (out of memory)", path) from None
    except Exception as e:  # a hostile dict can fail anywhere in the conversion; all mean the same
        raise UserError(f"corrupt DFL metadata ({type(e).__name__}: {e})", path) from None


def _dfl_payload(meta: FaceMeta, old: bytes | None, path: str | Path | None) -> bytes | None:
    """The APP15 payload to write with `meta`: the file's DFL bytes verbatim while they still say
    what `meta` says, else DFL's dict rebuilt from `meta`; None for a face that is not DFL's."""
    if old is not None:
        try:
            if _same_dfl_fields(_meta_from_dfl(old, path), meta):
                return old
        except UserError as e:
            log.warning(f"{path}: its DFL metadata is unreadable ({e.problem}); it is written anew from ours")
    if DFL_EXTRA_KEY not in meta.extra:
        return None
    try:
        payload = dfl_dumps(_dfl_dict(meta))
    except (TypeError, ValueError) as e:
        raise UserError(f"cannot write DFL's copy of the face metadata ({e})", path) from None
    if len(payload) > _MAX_PAYLOAD:
        log.warning(f"{path}: DFL's copy of the face metadata ({len(payload)} bytes) does not fit one JPEG "
                    f"segment; left out, so DeepFaceLab cannot read this face")
        return None
    return payload


def _same_dfl_fields(a: FaceMeta, b: FaceMeta) -> bool:
    """Do `a` and `b` agree on everything DFL's dict holds?"""
    def same_array(x: np.ndarray | None, y: np.ndarray | None) -> bool:
        return x is y or (x is not None and y is not None and x.shape == y.shape and np.array_equal(x, y))

    pa, pb = a.seg_ie_polys or [], b.seg_ie_polys or []  # DFL stores no labels as no key
    return (a.face_type == b.face_type and a.source_filename == b.source_filename
            and a.source_rect == b.source_rect and a.eyebrows_expand_mod == b.eyebrows_expand_mod
            and all(same_array(getattr(a, k), getattr(b, k))
                    for k in ("landmarks", "source_landmarks", "image_to_face_mat", "xseg_mask"))
            and len(pa) == len(pb)
            and all(p["type"] == q["type"] and same_array(p["pts"], q["pts"]) for p, q in zip(pa, pb))
            and a.extra.get(DFL_EXTRA_KEY) == b.extra.get(DFL_EXTRA_KEY))


def _dfl_dict(meta: FaceMeta) -> dict[str, Any]:
    """DFL's metadata dict for `meta`, with the types DFL's own extractor and editor write."""
    other = meta.extra.get(DFL_EXTRA_KEY)
    d: dict[str, Any] = {k: v for k, v in other.items() if k not in _DFL_KNOWN} if isinstance(other, dict) else {}
    d.update(face_type=meta.face_type, landmarks=meta.landmarks, eyebrows_expand_mod=meta.eyebrows_expand_mod,
             source_filename=meta.source_filename)
    if meta.source_rect is not None:
        d["source_rect"] = np.array(meta.source_rect, np.int64)  # DFL indexes it as an array
    if meta.source_landmarks is not None:
        d["source_landmarks"] = meta.source_landmarks
    if meta.image_to_face_mat is not None:
        d["image_to_face_mat"] = meta.image_to_face_mat
    if meta.seg_ie_polys:  # SegIEPolys.dump()
        d["seg_ie_polys"] = {"polys": [{"type": p["type"], "pts": p["pts"]} for p in meta.seg_ie_polys]}
    if meta.xseg_mask is not None:
        d["xseg_mask"] = _dfl_mask_buffer(meta.xseg_mask)
    return d


def _dfl_mask_buffer(mask: np.ndarray) -> np.ndarray:
    """The mask as DFL stores it: an encoded PNG as a uint8 array, or a JPEG when the PNG is over
    50,000 bytes (DFL's rule, keeping its dict in one JPEG segment)."""
    img = np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img)
    quality = 100
    while (not ok or len(buf) > _DFL_MASK_MAX) and quality >= 0:
        ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        quality -= 5
    if not ok:
        raise ValueError("OpenCV could not encode the XSeg mask")
    return buf.reshape(-1)


def _jsonable(v: Any) -> Any:
    """DFL's other keys, kept in `extra` when they are plain data; binary blobs are dropped."""
    if isinstance(v, np.ndarray):  # uint8 buffers are encoded images (e.g. the old fanseg_mask)
        keep = v.dtype.kind in "bif" or (v.dtype.kind == "u" and v.dtype != np.uint8)
        return v.tolist() if keep and v.size <= 4096 else None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return None


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

"""`FaceMeta`, what an aligned face carries besides its pixels, and its JSON form (our metadata).

In memory the face type is the `FaceType` enum; the JSON holds its long name (`whole_face`), the
only place a string stands for it. Metadata is untrusted input: the JSON is bounded in size and
nesting, numbers must be finite, an XSeg mask's declared size is checked before it is decoded, and
every problem is one UserError naming the file.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import UserError
from facelib.face_type import FaceType
from faceset.dfl_pickle import MAX_DEPTH

FORMAT_NAME = "facekit.face_meta"
FORMAT_VERSION = 1  # the major version: readers refuse newer majors, additive fields keep it
# Our JSON: a face's metadata is kilobytes; a noise XSeg mask at 2048 px with a long identity is
# about 2 MB. The bound is checked on the joined segments' size before anything is joined or parsed.
MAX_META_JSON = 8 << 20
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0..7: no length field


def face_type_from_file(value: Any) -> FaceType:
    """The face type a file names (`whole_face`, DFL's `full_face`, …): the one string-to-enum step."""
    if isinstance(value, FaceType):
        return value
    if not isinstance(value, str):
        raise ValueError(f"face type must be a name such as 'whole_face', got {type(value).__name__}")
    try:
        return FaceType.from_string(value)
    except UserError as e:
        raise ValueError(e.problem) from None


def _face_type(value: Any) -> FaceType:
    """The enum only: a name from a file goes through `face_type_from_file` first, at the boundary."""
    if isinstance(value, FaceType):
        return value
    raise ValueError(f"face_type must be a FaceType, got {type(value).__name__}")


@dataclass(eq=False)
class FaceMeta:
    """What an aligned face file carries besides its pixels (`faceset/face_file.py` reads and writes it).

    Arrays are normalised on construction: landmarks, polygons and identity as float32,
    the matrix as float64 (2x3), the XSeg mask as float32 HxW in 0..1 (stored as 8-bit PNG, so a
    read-back mask is quantised to 1/255).
    """

    face_type: FaceType  # strings only in files: JSON and DFL's dict hold the long name
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
    track_id: int | None = None  # which face track of the video (facelib.tracks); None: not tracked

    def __post_init__(self) -> None:
        self.face_type = _face_type(self.face_type)
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
        if self.track_id is not None:
            if isinstance(self.track_id, bool) or not isinstance(self.track_id, (int, np.integer)) \
                    or not 0 <= int(self.track_id) < 2**31:
                raise ValueError(f"track_id must be a whole number from 0 to 2^31-1, got {self.track_id!r}")
            self.track_id = int(self.track_id)


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


# ---- our JSON ---------------------------------------------------------------------------------


def meta_to_json(meta: FaceMeta, dfl_sha256: str | None = None) -> bytes:
    d: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "face_type": meta.face_type.long_name,
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
        d["xseg_mask_png"] = base64.b64encode(encode_mask(meta.xseg_mask)).decode("ascii")
    if meta.identity is not None:
        d["identity"] = meta.identity.tolist()
    if meta.extra:
        d["extra"] = meta.extra
    if meta.track_id is not None:
        d["track_id"] = meta.track_id
    if dfl_sha256 is not None:  # the DFL segment written with this JSON (see meta_from_jpeg_bytes)
        d["dfl_sha256"] = dfl_sha256
    # ASCII only, so no 0xFF byte can ever appear inside our segments.
    return json.dumps(d, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def meta_from_json(blob: bytes, path: str | Path | None) -> FaceMeta:
    return meta_from_dict(json_dict(blob, path), path)


def json_dict(blob: bytes, path: str | Path | None) -> Any:
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


def meta_from_dict(d: Any, path: str | Path | None) -> FaceMeta:
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
            face_type=face_type_from_file(d["face_type"]),
            landmarks=d["landmarks"],
            source_filename=d.get("source_filename", ""),
            source_rect=d.get("source_rect"),
            source_landmarks=d.get("source_landmarks"),
            image_to_face_mat=d.get("image_to_face_mat"),
            eyebrows_expand_mod=d.get("eyebrows_expand_mod", 1.0),
            seg_ie_polys=d.get("seg_ie_polys"),
            xseg_mask=None if mask is None else decode_mask(base64.b64decode(mask, validate=True), path),
            identity=d.get("identity"),
            extra=d.get("extra") or {},
            track_id=d.get("track_id"),
        )
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, binascii.Error) as e:
        raise UserError(f"corrupt face metadata ({type(e).__name__}: {e})", path) from None


def encode_mask(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("OpenCV could not encode the XSeg mask as PNG")
    return buf.tobytes()


_MAX_MASK_SIDE = 4096  # the largest face size; a mask is at most the face's size


def encoded_image_size(data: bytes) -> tuple[int, int] | None:
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


def decode_mask(data: bytes | np.ndarray, path: str | Path | None) -> np.ndarray:
    data = bytes(data)
    size = encoded_image_size(data)  # checked before decoding: a 1 KB PNG can declare a gigapixel
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

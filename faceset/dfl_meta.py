"""DeepFaceLab's face metadata: the pickled dict in a JPEG's APP15 segment, read and written.

A face read from DFL's dict carries `extra["dfl"]` (DFL's other plain keys, possibly none), and
every write of such a face keeps a DFL segment next to ours: DFL's own bytes verbatim while they
still say what our metadata says (sort, renames), else a fresh DFL dict of plain data and numpy
arrays (resize, new masks). The pickle is read only through the restricted loader (`dfl_pickle`).
DFL's dict names the face type by its long name; here it becomes the `FaceType` enum.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import log
from core.errors import UserError
from faceset.dfl_pickle import dfl_dumps, restricted_loads
from faceset.meta import FaceMeta, decode_mask, face_type_from_file

DFL_MARKER = 0xEF  # APP15, DeepFaceLab's pickled dict
DFL_EXTRA_KEY = "dfl"  # meta.extra["dfl"]: the face came from DFL (value: DFL's other plain keys)
_DFL_MASK_MAX = 50_000  # DFL re-encodes its xseg_mask as JPEG until it fits this many bytes
MAX_SEGMENT_PAYLOAD = 0xFFFF - 2  # a JPEG segment's 16-bit length field counts itself


def looks_like_pickle(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[0] == 0x80 and 2 <= payload[1] <= 5  # PROTO opcode


_DFL_KNOWN = {
    "face_type", "landmarks", "source_filename", "source_rect", "source_landmarks",
    "image_to_face_mat", "eyebrows_expand_mod", "seg_ie_polys", "xseg_mask",
}


def meta_from_dfl(payload: bytes, path: str | Path | None) -> FaceMeta:
    if not looks_like_pickle(payload):
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
            face_type=face_type_from_file(d.get("face_type") or "full_face"),  # DFL's default for old files
            landmarks=d["landmarks"],
            source_filename=d.get("source_filename") or "",
            source_rect=d.get("source_rect"),
            source_landmarks=d.get("source_landmarks"),
            image_to_face_mat=d.get("image_to_face_mat"),
            eyebrows_expand_mod=1.0 if brows is None else brows,
            seg_ie_polys=polys,
            xseg_mask=None if mask is None else decode_mask(mask, path),
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


def dfl_payload(meta: FaceMeta, old: bytes | None, path: str | Path | None) -> bytes | None:
    """The APP15 payload to write with `meta`: the file's DFL bytes verbatim while they still say
    what `meta` says, else DFL's dict rebuilt from `meta`; None for a face that is not DFL's."""
    if old is not None:
        try:
            if _same_dfl_fields(meta_from_dfl(old, path), meta):
                return old
        except UserError as e:
            log.warning(f"{path}: its DFL metadata is unreadable ({e.problem}); it is written anew from ours")
    if DFL_EXTRA_KEY not in meta.extra:
        return None
    try:
        payload = dfl_dumps(_dfl_dict(meta))
    except (TypeError, ValueError) as e:
        raise UserError(f"cannot write DFL's copy of the face metadata ({e})", path) from None
    if len(payload) > MAX_SEGMENT_PAYLOAD:
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
    d.update(face_type=meta.face_type.long_name, landmarks=meta.landmarks, eyebrows_expand_mod=meta.eyebrows_expand_mod,
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

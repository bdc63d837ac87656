"""A packed faceset: every face file of a folder in one file, so training opens one file, not thousands.

The pack is an ordinary uncompressed zip (any zip tool lists and extracts it): each face file is a
member, stored byte for byte (JPEG with our metadata inside), so unpacking is byte-identical; the
first member, `faceset.json`, is the index: {"format", "version", "count", "faces": [{"name",
"size", "sha256"}]}, in faceset order. Stored members lie in the file as they are, so a face is read
straight from its byte range, without extracting anything. Packs of the first format
(`pack_legacy`) are still read; writing always makes a zip.

A pack may come from a stranger, so the whole listing is checked before any face is read or
written: the end-of-central-directory record (count and size bounded before zipfile parses the
directory), every member (stored, not encrypted, a plain face name or the index, sizes within the
bounds, its local header where the directory says and naming the same file), the members' byte
ranges (no two overlap, all before the directory: a small zip cannot unpack to gigabytes) and the
index (bounded, exactly the face members, with their sizes). Every face's SHA-256 is checked when it
is read, so a damaged pack is a UserError naming it, never used silently. DeepFaceLab's own pack
(`pack_dfl`) is read too, the same way, though it records no digest to check.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Iterable

from core.errors import UserError
from core.fileio import atomic_path, loads_bounded
from faceset import pack_dfl, pack_legacy
from faceset.pack_rules import (
    MAX_ENTRIES,
    MAX_ENTRY,
    MAX_INDEX,
    PACK_NAME,
    PackEntry,
    face_name_problem,
    is_int,
    is_sha256,
)

INDEX_NAME = "faceset.json"
FORMAT_NAME = "facekit.faceset_pack"
FORMAT_VERSION = 1
UNPACK_HINT = f"the faces are packed in {PACK_NAME}; run util --unpack-faceset first"
_EOCD = struct.Struct("<4s4H2LH")  # signature, disk, cd disk, entries here, entries, cd size, cd offset, comment
_LOC64 = struct.Struct("<4sLQL")  # zip64 locator: signature, disk, offset of the zip64 record, disks
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory (fixed part)
_LOCAL = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, sizes, name/extra length
_STAMP = (1980, 1, 1, 0, 0, 0)  # fixed, so packing the same faces gives the same bytes
_INDEX_DEPTH = 8  # the index nests 3 deep: {"faces": [{...}]}


def pack_path(faceset_dir: str | Path) -> Path:
    """Where the pack of a faceset folder lives."""
    return Path(faceset_dir) / PACK_NAME


def is_packed(faceset_dir: str | Path) -> bool:
    return pack_path(faceset_dir).is_file()


# ---- writing ------------------------------------------------------------------------------------


def write_packed(pack_file: str | Path, entries: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs as one zip pack, atomically (a killed write leaves the old pack or none)."""
    pack_file = Path(pack_file)
    items = [(name, bytes(data)) for name, data in entries]
    faces, seen = [], set()
    for name, data in items:
        problem = face_name_problem(name)
        if problem:
            raise UserError(f"cannot pack {name!r}: {problem}; rename or remove it first", pack_file)
        if name in seen:
            raise ValueError(f"face file name appears twice in pack: {name!r}")
        seen.add(name)
        faces.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    blob = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "count": len(faces), "faces": faces},
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")
    odd = [name for name, data in items if not 0 < len(data) <= MAX_ENTRY]
    if len(faces) > MAX_ENTRIES or len(blob) > MAX_INDEX or odd:  # what the reader would refuse
        raise UserError(f"cannot pack these faces: {len(faces)} faces (at most {MAX_ENTRIES}), each 1 to "
                        f"{MAX_ENTRY} bytes" + (f"; {odd[0]} is not" if odd else ""), pack_file)
    try:
        with atomic_path(pack_file) as tmp:
            with open(tmp, "wb") as f:
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
                    for name, data in [(INDEX_NAME, blob), *items]:
                        info = zipfile.ZipInfo(name, _STAMP)
                        info.external_attr = 0o644 << 16
                        zf.writestr(info, data, zipfile.ZIP_STORED)
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        raise UserError(f"cannot write the packed faceset ({e.strerror or e})", pack_file) from None


# ---- reading ------------------------------------------------------------------------------------


def list_packed(pack_file: str | Path) -> list[PackEntry]:
    """The faces of a pack (zip, first format or DeepFaceLab's) in faceset order, every entry checked;
    no face is read."""
    pack_file = Path(pack_file)
    try:
        with open(pack_file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(len(pack_legacy.MAGIC))
            f.seek(0)
            if head == pack_legacy.MAGIC:
                return pack_legacy.read_index(f, size, pack_file)
            if head == pack_dfl.MAGIC:
                return pack_dfl.read_index(f, size, pack_file)
            return _zip_index(f, size, pack_file)
    except FileNotFoundError:
        raise UserError("packed faceset not found", pack_file) from None
    except IsADirectoryError:
        raise UserError("packed faceset is a folder, not a file", pack_file) from None
    except OSError as e:
        raise UserError(f"cannot read the packed faceset ({e.strerror or e})", pack_file) from None


def read_entry(pack_file: str | Path, entry: PackEntry, f=None) -> bytes:
    """One face's bytes, SHA-256 checked where the pack records one (DFL's does not); `f` an open
    handle of the pack, to read many faces."""
    where = f"{pack_file}:{entry.name}"
    try:
        if f is None:
            with open(pack_file, "rb") as g:
                return read_entry(pack_file, entry, g)
        f.seek(entry.offset)
        data = f.read(entry.size)
    except OSError as e:
        raise UserError(f"cannot read this face ({e.strerror or e})", where) from None
    if len(data) != entry.size:
        raise UserError("truncated packed faceset (the file changed or was cut short)", where)
    if entry.sha256 is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
        raise UserError(f"corrupt packed faceset ({entry.name} fails its SHA-256 check)", pack_file)
    return data


def read_packed(pack_file: str | Path) -> list[tuple[str, bytes]]:
    """All (name, bytes) of a pack in faceset order; a damaged or hostile pack is a UserError."""
    entries = list_packed(pack_file)
    try:
        with open(pack_file, "rb") as f:
            return [(e.name, read_entry(pack_file, e, f)) for e in entries]
    except OSError as e:
        raise UserError(f"cannot read the packed faceset ({e.strerror or e})", pack_file) from None


def _refuse(problem: str, pack_file: Path) -> UserError:
    return UserError(f"refusing this packed faceset: {problem}; nothing was unpacked", pack_file)


def _zip_index(f, file_size: int, pack_file: Path) -> list[PackEntry]:
    tail_len = min(file_size, _EOCD.size + 0xFFFF)
    f.seek(file_size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise UserError("not a packed faceset (neither a zip nor the first pack format; truncated?)", pack_file)
    _sig, disk, cd_disk, here, count, cd_size, _cd_offset, _comment = _EOCD.unpack_from(tail, at)
    if 0xFFFF in (here, count) or cd_size == 0xFFFFFFFF:  # zip64: the real numbers are in its own record
        loc = tail[at - _LOC64.size:at] if at >= _LOC64.size else b""
        if len(loc) != _LOC64.size or loc[:4] != b"PK\x06\x07":
            raise UserError("not a packed faceset (a damaged zip64 directory)", pack_file)
        f.seek(min(_LOC64.unpack(loc)[2], file_size))
        rec = f.read(_EOCD64.size)
        if len(rec) != _EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise UserError("not a packed faceset (a damaged zip64 directory)", pack_file)
        _sig, _n, _v, _w, disk, cd_disk, here, count, cd_size, _cd_offset = _EOCD64.unpack(rec)
    if disk or cd_disk or here != count:
        raise _refuse("a zip split over several disks", pack_file)
    if count > MAX_ENTRIES + 1 or cd_size > MAX_INDEX:
        raise _refuse(f"its zip lists {count} members in {cd_size} bytes (at most {MAX_ENTRIES} faces)", pack_file)
    f.seek(0)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise UserError(f"not a packed faceset (a damaged zip: {e})", pack_file) from None
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES + 1:
        raise _refuse(f"{len(infos)} members (at most {MAX_ENTRIES} faces)", pack_file)
    members: dict[str, tuple[int, int]] = {}  # name -> (data offset, size)
    spans = []
    for info in infos:
        name = info.filename
        if name != info.orig_filename or name in members:
            raise _refuse(f"member {info.orig_filename!r} is named twice or holds odd characters", pack_file)
        problem = None if name == INDEX_NAME else face_name_problem(name)
        if problem:
            raise _refuse(f"member {name!r} is {problem}", pack_file)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _refuse(f"member {name!r} is compressed or encrypted (packs are stored zips)", pack_file)
        bound = MAX_INDEX if name == INDEX_NAME else MAX_ENTRY
        if info.compress_size != info.file_size or not 0 < info.file_size <= bound:
            raise _refuse(f"member {name!r} has a size of {info.file_size} bytes (1..{bound})", pack_file)
        start = _data_start(f, info, file_size, pack_file)
        members[name] = (start, info.file_size)
        spans.append((info.header_offset, start + info.file_size, name))
    spans.sort()
    for (_a, end, name), (nxt, _b, other) in zip(spans, spans[1:]):
        if end > nxt:
            raise _refuse(f"members {name!r} and {other!r} overlap", pack_file)
    if spans and spans[-1][1] > zf.start_dir:
        raise _refuse(f"member {spans[-1][2]!r} runs into the zip's directory", pack_file)
    if INDEX_NAME not in members:
        raise UserError(f"not a packed faceset (a zip without {INDEX_NAME})", pack_file)
    return _check_index(f, members, pack_file)


def _data_start(f, info: zipfile.ZipInfo, file_size: int, pack_file: Path) -> int:
    """Where a stored member's bytes begin, from its local header (which must name the same file)."""
    f.seek(info.header_offset)
    head = f.read(_LOCAL.size)
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        raise UserError(f"corrupt packed faceset (no local header for {info.filename!r})", pack_file)
    fields = _LOCAL.unpack(head)
    name_len, extra_len = fields[-2], fields[-1]
    raw = f.read(name_len)
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if raw != info.orig_filename.encode(encoding, "replace"):
        raise _refuse(f"member {info.filename!r} is named otherwise in its local header", pack_file)
    start = info.header_offset + _LOCAL.size + name_len + extra_len
    if start + info.file_size > file_size:
        raise UserError(f"truncated packed faceset ({info.filename} runs past the end of the file)", pack_file)
    return start


def _check_index(f, members: dict[str, tuple[int, int]], pack_file: Path) -> list[PackEntry]:
    offset, size = members[INDEX_NAME]
    f.seek(offset)
    index = loads_bounded(f.read(size), pack_file, f"the packed faceset index {INDEX_NAME}", MAX_INDEX, _INDEX_DEPTH)
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise UserError(f"corrupt packed faceset index ({INDEX_NAME} is not a facekit pack index)", pack_file)
    version = index.get("version")
    if not is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise UserError(f"packed faceset format version {version!r} is not one this program reads "
                        f"(1..{FORMAT_VERSION}); update the toolkit", pack_file)
    faces, count = index.get("faces"), index.get("count")
    if not isinstance(faces, list) or not is_int(count) or count != len(faces) or count != len(members) - 1:
        raise UserError(f"corrupt packed faceset index (count {count!r} does not match its faces and the zip's "
                        f"{len(members) - 1} face members)", pack_file)
    out, seen = [], set()
    for i, e in enumerate(faces):
        name = e.get("name") if isinstance(e, dict) else None
        if not isinstance(name, str) or name == INDEX_NAME or name not in members or name in seen:
            raise UserError(f"corrupt packed faceset index (entry {i + 1} names no face member of the zip, "
                            f"or one twice)", pack_file)
        seen.add(name)
        offset, size = members[name]
        if e.get("size") != size or not is_sha256(e.get("sha256")):
            raise UserError(f"corrupt packed faceset index (entry {name!r} needs the member's size and a "
                            f"SHA-256 digest)", pack_file)
        out.append(PackEntry(name, offset, size, e["sha256"]))
    return out

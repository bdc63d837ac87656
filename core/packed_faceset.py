"""A packed faceset: every face file of a folder in one file, so training opens one file, not thousands.

Layout (no pickle, readable by any language):

    8 bytes   magic  b"FACEPAK\\0"
    4 bytes   format version, big-endian uint32
    8 bytes   index length N, big-endian uint64
    N bytes   JSON index: {"format", "version", "count", "entries": [{"name", "offset", "size", "sha256"}]}
    ...       the face files' bytes, back to back; offsets count from the end of the index

Each entry's bytes are the face file exactly as it was on disk (JPEG with our metadata inside), so
unpacking is byte-identical. Reading checks sizes and SHA-256 digests and raises a UserError naming
the pack on any damage, so a truncated copy is never used silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Iterable

from core.errors import UserError
from core.fileio import atomic_path

PACK_NAME = "faceset.pak"
MAGIC = b"FACEPAK\0"
FORMAT_NAME = "facekit.packed_faceset"
FORMAT_VERSION = 1
_HEAD = struct.Struct(">8sIQ")  # magic, version, index length
_MAX_INDEX = 1 << 31  # a sanity bound: a corrupt length must not make us allocate terabytes


def pack_path(faceset_dir: str | Path) -> Path:
    """Where the pack of a faceset folder lives."""
    return Path(faceset_dir) / PACK_NAME


def is_packed(faceset_dir: str | Path) -> bool:
    return pack_path(faceset_dir).is_file()


def _check_name(name: str) -> str:
    """Entry names are plain file names: a name with a folder part could unpack outside the folder."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"bad face file name in pack: {name!r}")
    return name


def write_packed(pack_file: str | Path, entries: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs as one pack, atomically (a killed write leaves the old pack or none)."""
    pack_file = Path(pack_file)
    items = [(_check_name(name), bytes(data)) for name, data in entries]
    seen: set[str] = set()
    index = []
    offset = 0
    for name, data in items:
        if name in seen:
            raise ValueError(f"face file name appears twice in pack: {name!r}")
        seen.add(name)
        index.append({"name": name, "offset": offset, "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
        offset += len(data)
    blob = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "count": len(index), "entries": index},
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")
    try:
        with atomic_path(pack_file) as tmp:
            with open(tmp, "wb") as f:
                f.write(_HEAD.pack(MAGIC, FORMAT_VERSION, len(blob)))
                f.write(blob)
                for _name, data in items:
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        raise UserError(f"cannot write the packed faceset ({e.strerror or e})", pack_file) from None


def read_packed(pack_file: str | Path) -> list[tuple[str, bytes]]:
    """All (name, bytes) entries of a pack, in packing order; a damaged pack is a UserError."""
    pack_file = Path(pack_file)
    try:
        data = pack_file.read_bytes()
    except FileNotFoundError:
        raise UserError("packed faceset not found", pack_file) from None
    except OSError as e:
        raise UserError(f"cannot read the packed faceset ({e.strerror or e})", pack_file) from None
    if len(data) < _HEAD.size:
        raise UserError("truncated packed faceset (shorter than its header)", pack_file)
    magic, version, index_len = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise UserError("not a packed faceset (wrong magic bytes)", pack_file)
    if version > FORMAT_VERSION or version < 1:
        raise UserError(f"packed faceset format version {version} is not one this program reads "
                        f"(1..{FORMAT_VERSION}); update the toolkit", pack_file)
    start = _HEAD.size + index_len
    if index_len > _MAX_INDEX or start > len(data):
        raise UserError("truncated packed faceset (the index runs past the end of the file)", pack_file)
    try:
        index = json.loads(data[_HEAD.size:start].decode("ascii"))
        if index.get("format") != FORMAT_NAME:
            raise ValueError("not a facekit packed faceset index")
        entries = index["entries"]
        if int(index["count"]) != len(entries):
            raise ValueError(f"index says {index['count']} faces but lists {len(entries)}")
        parsed = [(_check_name(e["name"]), int(e["offset"]), int(e["size"]), str(e["sha256"])) for e in entries]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"corrupt packed faceset index ({type(e).__name__}: {e})", pack_file) from None
    if len({name for name, *_ in parsed}) != len(parsed):
        raise UserError("corrupt packed faceset index (a face name appears twice)", pack_file)
    out: list[tuple[str, bytes]] = []
    for name, offset, size, digest in parsed:
        lo, hi = start + offset, start + offset + size
        if offset < 0 or size < 0 or hi > len(data):
            raise UserError(f"truncated packed faceset ({name} runs past the end of the file)", pack_file)
        chunk = data[lo:hi]
        if hashlib.sha256(chunk).hexdigest() != digest:
            raise UserError(f"corrupt packed faceset ({name} fails its SHA-256 check)", pack_file)
        out.append((name, chunk))
    return out

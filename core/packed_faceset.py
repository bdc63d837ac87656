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

A pack may come from a stranger, so reading also refuses, before anything is used or written: an
index over its bound or nested like no index we write, an entry that is not a face file (a plain name
with an image extension, not starting with a dot: no `.rename_journal.json`, no `x.pth`, no folder
part), and entries that do not tile the data exactly (overlapping entries would let a small pack
unpack to gigabytes).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Iterable

from core.errors import UserError
from core.fileio import IMAGE_EXTENSIONS, atomic_path

PACK_NAME = "faceset.pak"
MAGIC = b"FACEPAK\0"
FORMAT_NAME = "facekit.packed_faceset"
FORMAT_VERSION = 1
_HEAD = struct.Struct(">8sIQ")  # magic, version, index length
_MAX_ENTRIES = 1_000_000  # far past any faceset (DFL's pretraining pack holds tens of thousands)
_MAX_INDEX = 256 << 20  # bounds the index before it is read and parsed; one entry's JSON is ~150 bytes
_MAX_ENTRY = 1 << 30  # one face file: megabytes in practice
_MAX_NAME = 255
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def pack_path(faceset_dir: str | Path) -> Path:
    """Where the pack of a faceset folder lives."""
    return Path(faceset_dir) / PACK_NAME


def is_packed(faceset_dir: str | Path) -> bool:
    return pack_path(faceset_dir).is_file()


def face_name_problem(name: object) -> str | None:
    """Why `name` cannot be a face file of a pack (None when it can): a plain file name with an image
    extension, not hidden, valid on every OS. Anything else could unpack outside the folder or as a
    file that another command acts on (a rename journal, a .pth file)."""
    if not isinstance(name, str) or not name:
        return "not a file name"
    if len(name) > _MAX_NAME:
        return "file name too long"
    if any(c in name for c in '/\\:*?"<>|') or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "not a plain file name (folder separators or characters no OS allows)"
    if name.startswith("."):
        return "a hidden file, not a face"
    if name.endswith((" ", ".")) or name.split(".")[0].upper() in _WINDOWS_DEVICES:
        return "a file name Windows cannot hold"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return f"not a face image (faces end in {', '.join(IMAGE_EXTENSIONS)})"
    return None


def _check_name(name: str, pack_file: Path) -> str:
    """Entry names are face file names (see `face_name_problem`)."""
    problem = face_name_problem(name)
    if problem:
        raise UserError(f"cannot pack {name!r}: {problem}; rename or remove it first", pack_file)
    return name


def write_packed(pack_file: str | Path, entries: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs as one pack, atomically (a killed write leaves the old pack or none)."""
    pack_file = Path(pack_file)
    items = [(_check_name(name, pack_file), bytes(data)) for name, data in entries]
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
    odd = [name for name, data in items if not 0 < len(data) <= _MAX_ENTRY]
    if len(index) > _MAX_ENTRIES or len(blob) > _MAX_INDEX or odd:  # what read_packed would refuse
        raise UserError(f"cannot pack these faces: {len(index)} faces (at most {_MAX_ENTRIES}), each 1 to "
                        f"{_MAX_ENTRY} bytes" + (f"; {odd[0]} is not" if odd else ""), pack_file)
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
    """All (name, bytes) entries of a pack, in packing order; a damaged or hostile pack is a UserError.

    The header and index are checked before the face data is read: the index length against its bound
    and the file size, every entry's types, name, size and place (entries tile the data exactly, in
    order), so nothing is allocated from a number the file made up.
    """
    pack_file = Path(pack_file)
    try:
        with open(pack_file, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            start, parsed = _read_index(f, file_size, pack_file)
            data = f.read(file_size - start)
    except FileNotFoundError:
        raise UserError("packed faceset not found", pack_file) from None
    except IsADirectoryError:
        raise UserError("packed faceset is a folder, not a file", pack_file) from None
    except OSError as e:
        raise UserError(f"cannot read the packed faceset ({e.strerror or e})", pack_file) from None
    if len(data) != file_size - start:
        raise UserError("truncated packed faceset (the file changed while it was read)", pack_file)
    out: list[tuple[str, bytes]] = []
    for name, offset, size, digest in parsed:
        chunk = data[offset:offset + size]
        if hashlib.sha256(chunk).hexdigest() != digest:
            raise UserError(f"corrupt packed faceset ({name} fails its SHA-256 check)", pack_file)
        out.append((name, chunk))
    return out


def _read_index(f, file_size: int, pack_file: Path) -> tuple[int, list[tuple[str, int, int, str]]]:
    """(where the face data starts, [(name, offset, size, sha256)]) of an open pack, fully checked."""
    head = f.read(_HEAD.size)
    if len(head) < _HEAD.size:
        raise UserError("truncated packed faceset (shorter than its header)", pack_file)
    magic, version, index_len = _HEAD.unpack(head)
    if magic != MAGIC:
        raise UserError("not a packed faceset (wrong magic bytes)", pack_file)
    if version > FORMAT_VERSION or version < 1:
        raise UserError(f"packed faceset format version {version} is not one this program reads "
                        f"(1..{FORMAT_VERSION}); update the toolkit", pack_file)
    start = _HEAD.size + index_len
    if start > file_size:
        raise UserError("truncated packed faceset (the index runs past the end of the file)", pack_file)
    if index_len > _MAX_INDEX:
        raise UserError(f"corrupt packed faceset index (declares {index_len} bytes; at most {_MAX_INDEX})", pack_file)
    raw = f.read(index_len)
    if len(raw) != index_len:
        raise UserError("truncated packed faceset (the index runs past the end of the file)", pack_file)
    try:
        index = json.loads(raw.decode("ascii"))
    except RecursionError:
        raise UserError("corrupt packed faceset index (nested too deeply)", pack_file) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"corrupt packed faceset index ({type(e).__name__}: {e})", pack_file) from None
    del raw
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise UserError("corrupt packed faceset index (not a facekit packed faceset index)", pack_file)
    entries, count = index.get("entries"), index.get("count")
    if not isinstance(entries, list) or not _is_int(count) or count != len(entries) or count > _MAX_ENTRIES:
        raise UserError(f"corrupt packed faceset index (count {count!r} does not match its list of entries, "
                        f"or is over {_MAX_ENTRIES})", pack_file)
    parsed: list[tuple[str, int, int, str]] = []
    names: set[str] = set()
    end = 0
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise UserError(f"corrupt packed faceset index (entry {i + 1} has no name)", pack_file)
        name = e["name"]
        problem = face_name_problem(name)
        if problem:
            raise UserError(f"refusing this packed faceset: entry {name!r} is {problem}; nothing was unpacked",
                            pack_file)
        if name in names:
            raise UserError(f"corrupt packed faceset index (a face name appears twice: {name!r})", pack_file)
        names.add(name)
        offset, size, digest = e.get("offset"), e.get("size"), e.get("sha256")
        if not (_is_int(offset) and _is_int(size) and isinstance(digest, str) and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)):
            raise UserError(f"corrupt packed faceset index (entry {name!r} needs an integer offset and size "
                            f"and a SHA-256 digest)", pack_file)
        if offset != end or not 0 < size <= _MAX_ENTRY:
            raise UserError(f"refusing this packed faceset: entry {name!r} does not follow the previous one "
                            f"(offset {offset}, size {size}; entries must tile the data, each 1..{_MAX_ENTRY} "
                            f"bytes)", pack_file)
        end = offset + size
        if start + end > file_size:
            raise UserError(f"truncated packed faceset ({name} runs past the end of the file)", pack_file)
        parsed.append((name, offset, size, digest))
    if start + end != file_size:
        raise UserError(f"corrupt packed faceset ({file_size - start - end} bytes after the last face)", pack_file)
    return start, parsed


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)

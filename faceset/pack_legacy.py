"""The first packed-faceset format (before packs became zips), still read; nothing writes it now.

Layout (no pickle):

    8 bytes   magic  b"FACEPAK\\0"
    4 bytes   format version, big-endian uint32
    8 bytes   index length N, big-endian uint64
    N bytes   JSON index: {"format", "version", "count", "entries": [{"name", "offset", "size", "sha256"}]}
    ...       the face files' bytes, back to back; offsets count from the end of the index

The header and index are checked before any face data is read: the index length against its bound
and the file size, every entry's types, name (`pack_rules.face_name_problem`), size and place:
entries tile the data exactly, in order, so overlapping entries cannot make a small pack unpack to
gigabytes.
"""
from __future__ import annotations

import struct
from pathlib import Path

from core.errors import UserError
from core.fileio import loads_bounded
from faceset.pack_rules import MAX_ENTRIES, MAX_ENTRY, MAX_INDEX, PackEntry, face_name_problem, is_int, is_sha256

MAGIC = b"FACEPAK\0"
FORMAT_NAME = "facekit.packed_faceset"
FORMAT_VERSION = 1
HEAD = struct.Struct(">8sIQ")  # magic, version, index length
_INDEX_DEPTH = 8  # the index nests 3 deep: {"entries": [{...}]}


def read_index(f, file_size: int, pack_file: Path) -> list[PackEntry]:
    """The entries of an open pack of this format (offsets from the start of the file), fully checked."""
    head = f.read(HEAD.size)
    if len(head) < HEAD.size:
        raise UserError("truncated packed faceset (shorter than its header)", pack_file)
    magic, version, index_len = HEAD.unpack(head)
    if magic != MAGIC:
        raise UserError("not a packed faceset (wrong magic bytes)", pack_file)
    if version > FORMAT_VERSION or version < 1:
        raise UserError(f"packed faceset format version {version} is not one this program reads "
                        f"(1..{FORMAT_VERSION}); update the toolkit", pack_file)
    start = HEAD.size + index_len
    if start > file_size:
        raise UserError("truncated packed faceset (the index runs past the end of the file)", pack_file)
    if index_len > MAX_INDEX:
        raise UserError(f"corrupt packed faceset index (declares {index_len} bytes; at most {MAX_INDEX})", pack_file)
    raw = f.read(index_len)
    if len(raw) != index_len:
        raise UserError("truncated packed faceset (the index runs past the end of the file)", pack_file)
    index = loads_bounded(raw, pack_file, "the packed faceset index", MAX_INDEX, _INDEX_DEPTH)
    del raw
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise UserError("corrupt packed faceset index (not a facekit packed faceset index)", pack_file)
    entries, count = index.get("entries"), index.get("count")
    if not isinstance(entries, list) or not is_int(count) or count != len(entries) or count > MAX_ENTRIES:
        raise UserError(f"corrupt packed faceset index (count {count!r} does not match its list of entries, "
                        f"or is over {MAX_ENTRIES})", pack_file)
    parsed: list[PackEntry] = []
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
        if not (is_int(offset) and is_int(size) and is_sha256(digest)):
            raise UserError(f"corrupt packed faceset index (entry {name!r} needs an integer offset and size "
                            f"and a SHA-256 digest)", pack_file)
        if offset != end or not 0 < size <= MAX_ENTRY:
            raise UserError(f"refusing this packed faceset: entry {name!r} does not follow the previous one "
                            f"(offset {offset}, size {size}; entries must tile the data, each 1..{MAX_ENTRY} "
                            f"bytes)", pack_file)
        end = offset + size
        if start + end > file_size:
            raise UserError(f"truncated packed faceset ({name} runs past the end of the file)", pack_file)
        parsed.append(PackEntry(name, start + offset, size, digest))
    if start + end != file_size:
        raise UserError(f"corrupt packed faceset ({file_size - start - end} bytes after the last face)", pack_file)
    return parsed


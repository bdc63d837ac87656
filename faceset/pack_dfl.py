"""DeepFaceLab's own `faceset.pak`, read without trusting it: face names and byte ranges, nothing run.

DFL's layout (its samplelib/PackedFaceset.py, version 1; integers are little-endian uint64):

    8 bytes    version, 1
    8 bytes    L, the length of the sample list
    L bytes    a pickle (protocol 4) of a list of sample config dicts: filename (the face file's
               name), person_name (None, or the subfolder of a "person faceset"), sample_type and
               face_type (members of DFL's IntEnums), shape, landmarks, seg_ie_polys,
               xseg_mask(_compressed), eyebrows_expand_mod, source_filename
    8 (n+1)    the offsets of the n faces from the end of this table, then the end of the last face
    ...        the face files (DFL JPEGs, their metadata inside), back to back

DFL's writer stores that last offset as a position in the file rather than from the table's end
(its reader reads the last face to the end of the file either way), so both forms are accepted.

The pack may come from a stranger, so everything is checked before any face is read: the version,
L (bounded, inside the file), the pickle (through `dfl_pickle`'s restricted loader, which lets the
two enum classes through as plain ints and refuses every other global), the count, each config (a
dict with a plain face name, `pack_rules.face_name_problem`, no name twice, no person subfolder)
and the offset table (n+1 entries inside the file, the first face at the data's start, strictly
increasing, each face within `MAX_ENTRY`, the last ending at the end of the file), so the faces
tile the data exactly. The configs give only the names and the order: a face's metadata is the DFL
dict inside its JPEG, read as for a loose DFL face. DFL keeps no digest, so entries carry none.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from core.errors import UserError
from faceset.dfl_pickle import restricted_loads
from faceset.pack_rules import MAX_ENTRIES, MAX_ENTRY, PackEntry, face_name_problem

VERSION = 1
HEAD = struct.Struct("<QQ")  # version, length of the pickled sample list
MAGIC = struct.pack("<Q", VERSION)  # how a DFL pack starts
MAX_SAMPLE_LIST = 1 << 30  # bytes of pickled configs: ~2 KB a face, more with XSeg masks inside
# The only globals of DFL's sample list: IntEnums, loaded as their plain int values.
SAMPLE_ENUMS = (("samplelib.Sample", "SampleType"), ("facelib.FaceType", "FaceType"))
_OFFSET = struct.Struct("<Q")


def _refuse(problem: str, pack_file: Path) -> UserError:
    return UserError(f"refusing this DeepFaceLab faceset.pak: {problem}; nothing was read", pack_file)


def _shown(value: Any) -> str:
    """A value from the pack as an error shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_index(f, file_size: int, pack_file: Path) -> list[PackEntry]:
    """The faces of an open DFL pack (offsets from the start of the file), in its order, fully checked."""
    head = f.read(HEAD.size)
    if len(head) < HEAD.size:
        raise UserError("truncated DeepFaceLab faceset.pak (shorter than its header)", pack_file)
    version, length = HEAD.unpack(head)
    if version != VERSION:
        raise _refuse(f"version {version} is not DFL's pack version {VERSION}", pack_file)
    if length > MAX_SAMPLE_LIST:
        raise _refuse(f"its sample list declares {length} bytes (at most {MAX_SAMPLE_LIST})", pack_file)
    table = HEAD.size + length
    if table + _OFFSET.size > file_size:
        raise _refuse(f"its sample list ({length} bytes) runs past the end of the file ({file_size} bytes)",
                      pack_file)
    raw = f.read(length)
    if len(raw) != length:
        raise UserError("truncated DeepFaceLab faceset.pak (the file changed while it was read)", pack_file)
    configs = restricted_loads(raw, pack_file, int_enums=SAMPLE_ENUMS, max_payload=MAX_SAMPLE_LIST,
                               what="DeepFaceLab faceset.pak's sample list")
    del raw
    names = _face_names(configs, pack_file)
    data_start = table + _OFFSET.size * (len(names) + 1)
    if data_start > file_size:
        raise _refuse(f"its offset table for {len(names)} faces runs past the end of the file", pack_file)
    raw = f.read(data_start - table)
    if len(raw) != data_start - table:
        raise UserError("truncated DeepFaceLab faceset.pak (the file changed while it was read)", pack_file)
    offsets = struct.unpack(f"<{len(names) + 1}Q", raw)
    return _entries(names, offsets, data_start, file_size, pack_file)


def _face_names(configs: Any, pack_file: Path) -> list[str]:
    """The face file names of DFL's sample configs, in order; anything but a flat set of faces refused."""
    if not isinstance(configs, list):
        raise _refuse(f"its sample list is a {type(configs).__name__}, not a list", pack_file)
    if len(configs) > MAX_ENTRIES:
        raise _refuse(f"it lists {len(configs)} faces (at most {MAX_ENTRIES})", pack_file)
    names: list[str] = []
    seen: set[str] = set()
    for i, config in enumerate(configs):
        if not isinstance(config, dict):
            raise _refuse(f"sample {i + 1} is a {type(config).__name__}, not a sample config", pack_file)
        name = config.get("filename")
        problem = face_name_problem(name)
        if problem:
            raise _refuse(f"sample {i + 1}'s file name {_shown(name)} is {problem}", pack_file)
        person = config.get("person_name")
        if person is not None:
            raise _refuse(f"a person faceset (sample {i + 1} belongs to the subfolder {_shown(person)}), which "
                          "this toolkit does not read; unpack it with DeepFaceLab", pack_file)
        if name in seen:
            raise _refuse(f"the face name {_shown(name)} appears twice", pack_file)
        seen.add(name)
        names.append(name)
    return names


def _entries(names: list[str], offsets: tuple[int, ...], data_start: int, file_size: int,
             pack_file: Path) -> list[PackEntry]:
    """Each face's byte range from DFL's offset table, which must tile the data exactly."""
    data_len = file_size - data_start
    if offsets[-1] not in (data_len, file_size):  # from the data's start, or DFL's own: from the file's
        raise _refuse(f"its offset table ends at {offsets[-1]}, not at the end of the file's "
                      f"{data_len} bytes of faces", pack_file)
    if names and offsets[0] != 0:
        raise _refuse(f"its first face {_shown(names[0])} starts at offset {offsets[0]}, not 0", pack_file)
    entries = []
    for i, name in enumerate(names):
        start = offsets[i]
        end = offsets[i + 1] if i + 1 < len(names) else data_len  # the last face runs to the end of the file
        if end <= start:
            raise _refuse(f"face {_shown(name)} ends at offset {end}, not after its start {start} (offsets "
                          "overlap, go backwards or run past the end of the file)", pack_file)
        if end - start > MAX_ENTRY:
            raise _refuse(f"face {_shown(name)} is {end - start} bytes (at most {MAX_ENTRY})", pack_file)
        entries.append(PackEntry(name, data_start + start, end - start, None))
    return entries

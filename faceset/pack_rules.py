"""What every packed faceset must satisfy, whatever its container: plain face names, bounded sizes.

A pack may come from a stranger, so its listing is checked before anything is read or written: an
entry that is not a face file (a plain name with an image extension, not starting with a dot: no
`.rename_journal.json`, no `x.pth`, no folder part) could unpack outside the folder or as a file
another command acts on; a count or size past these bounds is refused before it is allocated.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.fileio import IMAGE_EXTENSIONS

PACK_NAME = "faceset.pak"
MAX_ENTRIES = 1_000_000  # far past any faceset (DFL's pretraining pack holds tens of thousands)
MAX_INDEX = 256 << 20  # bounds an index before it is read and parsed; one entry's JSON is ~150 bytes
MAX_ENTRY = 1 << 30  # one face file: megabytes in practice
_MAX_NAME = 255
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


@dataclass(frozen=True)
class PackEntry:
    """One face of a pack: its file name and where its bytes lie in the pack file (checked)."""

    name: str
    offset: int  # from the start of the pack file
    size: int
    sha256: str | None  # hex digest, checked whenever the bytes are read; None: DFL's pack keeps none


def face_name_problem(name: object) -> str | None:
    """Why `name` cannot be a face file of a pack (None when it can): a plain file name with an image
    extension, not hidden, valid on every OS."""
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


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_sha256(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)

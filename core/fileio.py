"""File helpers: atomic writes, writable-folder checks, and image-folder listing.

Anything that would hurt to lose is written to a temporary name in the same folder and renamed into
place, so a killed process leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TEMP_MARK = ".partial"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    The temporary name keeps the real suffix (`x.partial-abc.mp4`), so tools that pick a format by
    extension (ffmpeg, OpenCV) still work when writing to it.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{path.stem}{TEMP_MARK}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def ensure_writable_dir(path: str | Path) -> Path:
    """Create `path` if needed and prove we can write there, or raise a UserError naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to this folder ({e.strerror or e})", path) from None
    return path


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return `path` if it is an existing file, else raise a UserError saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found", path)
    if not path.is_file():
        raise UserError(f"expected a {what}, found a folder", path)
    return path


def require_dir(path: str | Path, what: str = "folder") -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found", path)
    if not path.is_dir():
        raise UserError(f"expected a {what}, found a file", path)
    return path


def natural_key(path: Path) -> list:
    """Sort key that orders 99999.png before 100000.png (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, in natural name order; leftovers of killed writes are ignored."""
    folder = require_dir(folder, "image folder")
    return sorted(
        (p for p in folder.iterdir()
         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and TEMP_MARK not in p.name),
        key=natural_key,
    )


def list_image_sequence(folder: str | Path) -> tuple[list[Path], str]:
    """The images of a frame sequence and their one shared extension.

    Raises a UserError when the folder is empty or mixes extensions, since ffmpeg sequences and DFL's
    frame naming both assume one extension.
    """
    images = list_images(folder)
    if not images:
        raise UserError("no images in this folder", folder)
    exts = sorted({p.suffix.lower() for p in images})
    if len(exts) > 1:
        raise UserError(f"mixed image extensions ({', '.join(exts)}); use one format per folder", folder)
    return images, exts[0]


def resolve_wildcard_ext(path: str | Path) -> Path:
    """DFL scripts pass `workspace/data_src.*`: a `.*` suffix means the first file with that stem."""
    path = Path(path)
    if path.suffix != ".*":
        return path
    matches = sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())
    if not matches:
        raise UserError("no file with this name and any extension", path)
    return matches[0]

"""File helpers: atomic writes, writable-folder checks, and image-folder listing.

Anything that would hurt to lose is written to a temporary name in the same folder and renamed into
place, so a killed process leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from core.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TEMP_MARK = ".partial"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


_PARTIAL_RE = re.compile(r"^(?P<target>.+?)\.partial-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+(?P<suffix>\.[A-Za-z0-9]+)?$")


def partial_name(path: Path, keep_suffix: bool = False) -> str:
    """The name pattern prefix of a temporary file for `path`: `<name>.partial-<pid>-` (see atomic_path)."""
    return f"{path.name if not keep_suffix else path.stem}{TEMP_MARK}-{os.getpid()}-"


def disk_error(e: OSError, path: str | Path) -> UserError:
    """One clear line for a failed write: the disk is full, read-only, or another OS error."""
    if e.errno == errno.ENOSPC:
        return UserError("could not write: the disk is full (free some space and run the command again)", path)
    if e.errno == errno.EDQUOT:
        return UserError("could not write: disk quota exceeded", path)
    if e.errno == errno.EROFS:
        return UserError("could not write: the file system is read-only", path)
    return UserError(f"could not write ({e.strerror or e})", path)


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    The temporary file is `<name>.partial-<pid>-<random>`, so it is never named like a face or a frame
    (no image extension) and `remove_stale_partials` can tell a dead writer's leftovers from a live
    one's. With `keep_suffix` it is `<stem>.partial-<pid>-<random><suffix>` instead, for tools that
    pick a format by extension (ffmpeg). A write that fails for lack of space raises a UserError that
    names `path`.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=partial_name(path, keep_suffix),
                                        suffix=path.suffix if keep_suffix else "", dir=path.parent)
    except OSError as e:
        raise disk_error(e, path) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise disk_error(e, path) from None
        raise


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (a stale partial file's writer is gone when False)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_partial(path: Path) -> bool:
    """True for a temporary file of atomic_path (this version's or an older one's)."""
    return TEMP_MARK + "-" in path.name and _PARTIAL_RE.match(path.name) is not None


def remove_stale_partials(folder: str | Path, targets: Iterable[str] | None = None,
                          target_suffixes: Iterable[str] | None = None) -> list[Path]:
    """Delete leftovers of killed atomic writes in `folder` whose writer is no longer running.

    Only files named like atomic_path's temporaries are touched, and with `targets` only those of
    the listed final names (`x_state.npz`, `result.mp4`) or final extensions (`.jpg` for a faceset's
    metadata rewrites), so a command removes its own debris and nothing else. Older versions wrote
    `<stem>.partial-<random><suffix>` without a process id; such files are always stale. Returns what was removed.
    """
    folder = Path(folder)
    wanted = None if targets is None else set(targets)
    suffixes = None if target_suffixes is None else {x.lower() for x in target_suffixes}
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _PARTIAL_RE.match(p.name)
        if m is None or TEMP_MARK + "-" not in p.name or not p.is_file():
            continue
        target = m.group("target")
        names = {target, target + (m.group("suffix") or "")}
        if wanted is not None and not (names & wanted):
            continue
        if suffixes is not None and not any(Path(n).suffix.lower() in suffixes for n in names):
            continue
        pid = m.group("pid")
        if pid is not None and pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


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


def read_json_file(path: str | Path, what: str, max_bytes: int = 16 << 20, max_depth: int = 100) -> Any:
    """Parse a JSON file that may come from a stranger (options, sessions, configs, saved metadata):
    its size is checked before it is read and too deep nesting is refused, each as one UserError naming
    the file, so a crafted file can neither exhaust memory nor end in an unexpected RecursionError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UserError(f"{what} is too large ({size} bytes; at most {max_bytes})", path)
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise UserError(f"{what} not found", path) from None
    except OSError as e:
        raise UserError(f"cannot read {what} ({e.strerror or e})", path) from None
    return loads_bounded(data, path, what, max_bytes, max_depth)


def loads_bounded(data: bytes, where: str | Path | None, what: str = "JSON", max_bytes: int = 16 << 20,
                  max_depth: int = 100) -> Any:
    """`read_json_file` on bytes already in memory (a pack's index, a journal): UTF-8 JSON of at most
    `max_bytes`, nested at most `max_depth` deep, else one UserError naming `where` and `what`."""
    if len(data) > max_bytes:
        raise UserError(f"{what} is too large ({len(data)} bytes; at most {max_bytes})", where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} is not UTF-8 text ({e.reason})", where) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{what} is nested too deeply", where) from None
    except json.JSONDecodeError as e:
        raise UserError(f"{what} is not valid JSON ({e.msg} at line {e.lineno})", where) from None
    if _depth_over(value, max_depth):
        raise UserError(f"{what} is nested too deeply (more than {max_depth} levels)", where)
    return value


def _depth_over(value: Any, max_depth: int) -> bool:
    """True when lists and objects in `value` nest more than `max_depth` deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, (list, dict)):
            if depth > max_depth:
                return True
            stack.extend((x, depth + 1) for x in (obj.values() if isinstance(obj, dict) else obj)
                         if isinstance(x, (list, dict)))
    return False


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
         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_partial(p)),
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

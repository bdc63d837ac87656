"""One writer per folder: a lock that a second run sees and that a dead process does not keep.

Two `train` runs of one model, or two `merge` runs into one output folder, would each overwrite the
other's files. Each such command takes `FolderLock(folder, what)` first. The lock is an OS lock on a
small file (`.facekit.lock`: flock on POSIX, msvcrt on Windows), so it is released by the kernel when
its process dies, however it dies; the file holds the owner's pid and command line only so that the
refusal can say who holds it.

A model folder holds several models (DFL keeps the XSeg model beside the face model), and each may
train at once: `FolderLock(folder, "train", part="<name>_<Class>")` locks one model only
(`.facekit.<part>.lock`). A part lock and the whole-folder lock exclude each other (each takes its
own file, then tries the other's), so a command that needs the whole folder (import, clearing the
workspace) still refuses while any model in it trains, and the other way round.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from core.errors import UserError

LOCK_NAME = ".facekit.lock"
PART_LOCK_GLOB = ".facekit.*.lock"  # one model's lock in a shared folder: .facekit.<name>_<Class>.lock
_WIN_LOCK_OFFSET = 1 << 20  # Windows locks byte ranges; lock one far past the text so it stays readable


def _try_lock(fd: int) -> bool:
    if os.name == "nt":
        import msvcrt
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_UN)


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8")[:4096])
        return f"process {int(info['pid'])} ({str(info.get('command', '?'))[:200]})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _held_by_other(path: Path) -> bool:
    """Whether another process holds the lock on `path` now (probed by taking and dropping it)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # no file: nobody holds it
    try:
        if not _try_lock(fd):
            return True
        _unlock(fd)
        return False
    finally:
        os.close(fd)


def _valid_part(part: str) -> bool:
    """A piece of one file name (a model's `<name>_<Class>`, itself a prefix of the model's files)."""
    return bool(part) and len(part) <= 200 and not any(c in part for c in "/\\\0") and part not in (".", "..")


class FolderLock:
    """Exclusive use of `folder` (or, with `part`, of one model in it) by this process for `what`
    (e.g. "train", "merge").

    Use as a context manager or call acquire()/release(). Raises a UserError naming the folder (or
    the model) and the holder when another live process has it.
    """

    def __init__(self, folder: str | Path, what: str, part: str | None = None):
        self.folder = Path(folder)
        self.what = what
        if part is not None and not _valid_part(part):
            raise ValueError(f"a lock part must be a plain file-name piece, got {part!r}")
        self.part = part
        self.path = self.folder / (LOCK_NAME if part is None else f".facekit.{part}.lock")
        self._fd: int | None = None

    def _rivals(self) -> list[Path]:
        """The locks that exclude this one besides its own file: the whole-folder lock for a part;
        every part lock for the whole folder."""
        if self.part is not None:
            return [self.folder / LOCK_NAME]
        return sorted(p for p in self.folder.glob(PART_LOCK_GLOB) if p.name != LOCK_NAME)

    def _refuse(self, holder: Path) -> UserError:
        where = self.folder if self.part is None else self.folder / self.part
        if holder == self.path:
            what = "this model" if self.part is not None else "this folder"
        elif self.part is not None:
            what = "its folder"
        else:
            what = f"a model in this folder ({holder.name[len('.facekit.'):-len('.lock')]})"
        return UserError(f"{what} is in use by {_holder_text(holder)}; wait for it to end or stop it, then run "
                         f"{self.what} again", where)

    def acquire(self) -> "FolderLock":
        if self._fd is not None:
            return self
        for _ in range(10):  # the holder may unlink the file between our open and our lock: retry
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f"cannot create the lock file ({e.strerror or e})", self.path) from None
            if not _try_lock(fd):
                os.close(fd)
                raise self._refuse(self.path)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                _unlock(fd)
                os.close(fd)
                continue
            text = json.dumps({"pid": os.getpid(), "what": self.what, "command": " ".join(sys.argv)}).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, text)
            self._fd = fd
            held = next((p for p in self._rivals() if _held_by_other(p)), None)
            if held is not None:  # ours is taken first, so two rivals can both refuse but never both win
                if self.part is None:  # the folder's lock file may be a model lock's marker: keep it, empty
                    self._fd = None
                    os.ftruncate(fd, 0)
                    _unlock(fd)
                    os.close(fd)
                else:
                    self.release()
                raise self._refuse(held)
            if self.part is not None:
                self._mark_folder()
            return self
        raise UserError("could not take the folder lock (it keeps changing)", self.path)

    def _mark_folder(self) -> None:
        """Leave an empty, unlocked `.facekit.lock` beside a model lock: commands that look for that
        file before taking the whole folder (clear-workspace) then try, and are refused naming the model."""
        with contextlib.suppress(OSError):
            os.close(os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644))

    def _unmark_folder(self) -> None:
        """Remove the marker when no model of the folder is locked any more and nobody holds the folder."""
        if any(_held_by_other(p) for p in self.folder.glob(PART_LOCK_GLOB)):
            return
        marker = self.folder / LOCK_NAME
        try:
            fd = os.open(marker, os.O_RDWR)
        except OSError:
            return
        try:
            if not _try_lock(fd):
                return
            if os.fstat(fd).st_size == 0 and os.name != "nt":
                with contextlib.suppress(OSError):
                    marker.unlink()
            _unlock(fd)
        finally:
            os.close(fd)
        if os.name == "nt" and not _held_by_other(marker):
            with contextlib.suppress(OSError):
                if marker.stat().st_size == 0:
                    marker.unlink()

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if os.name != "nt":  # on Windows an open file cannot be unlinked; the empty lock file stays
            with contextlib.suppress(OSError):
                self.path.unlink()
        _unlock(fd)
        os.close(fd)
        if os.name == "nt":
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self.part is not None:
            self._unmark_folder()

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

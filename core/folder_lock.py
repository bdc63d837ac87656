"""One writer per folder: a lock that a second run sees and that a dead process does not keep.

Two `train` runs on one model folder, or two `merge` runs into one output folder, would each
overwrite the other's files. Each such command takes `FolderLock(folder, what)` first. The lock is
an OS lock on a small file (`.facekit.lock`: flock on POSIX, msvcrt on Windows), so it is released by
the kernel when its process dies, however it dies; the file holds the owner's pid and command line
only so that the refusal can say who holds it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from core.errors import UserError

LOCK_NAME = ".facekit.lock"
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


class FolderLock:
    """Exclusive use of `folder` by this process for `what` (e.g. "train", "merge").

    Use as a context manager or call acquire()/release(). Raises a UserError naming the folder and
    the holder when another live process has it.
    """

    def __init__(self, folder: str | Path, what: str):
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

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
                raise UserError(f"this folder is in use by {_holder_text(self.path)}; wait for it to end or "
                                f"stop it, then run {self.what} again", self.folder)
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
            return self
        raise UserError("could not take the folder lock (it keeps changing)", self.path)

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

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

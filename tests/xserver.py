"""A private X server (Xvfb) for window tests, and xdotool to drive windows on it.

Window code is tested for real: a subprocess opens its OpenCV window on a virtual screen and the
test sends it mouse and key events with xdotool. Each test gets its own server on a display number
Xvfb picks itself (`-displayfd`), so parallel runs and a developer's own X session never collide.
Missing tools fail the test with the apt packages to install (scripts/setup_and_test.sh installs
them where it can): a window test that did not run proves nothing.

Debian/Ubuntu packages: `xvfb` (the server) and `xdotool` (the events).
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

APT_PACKAGES = ("xvfb", "xdotool")
SCREEN = "1600x1000x24"
START_TIMEOUT = 20.0
XDOTOOL_TIMEOUT = 20.0
SHIFT_PAUSE = 0.3  # seconds between Shift going down and the key (Window.press)


@dataclass
class XServer:
    """A running Xvfb: its DISPLAY value and an environment for subprocesses that use it."""

    display: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DISPLAY=self.display)
        env.pop("WAYLAND_DISPLAY", None)  # toolkits prefer Wayland when both are set
        env["QT_QPA_PLATFORM"] = "xcb"
        return env

    def xdotool(self, *args: str, timeout: float = XDOTOOL_TIMEOUT) -> str:
        """Run one xdotool command on this display; a hang or a failure raises with its stderr."""
        try:
            proc = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"xdotool {' '.join(args)} did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout


def missing_tools() -> list[str]:
    """The apt packages whose programs are not on PATH."""
    return [pkg for pkg, exe in zip(APT_PACKAGES, ("Xvfb", "xdotool")) if shutil.which(exe) is None]


def start_xvfb(screen: str = SCREEN, timeout: float = START_TIMEOUT) -> XServer:
    """Start Xvfb on a free display and wait until it accepts clients."""
    read_fd, write_fd = os.pipe()
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks on it
    try:
        process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log)
    finally:
        os.close(write_fd)
    number = b""
    deadline = time.monotonic() + timeout
    try:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(0.0, left))
            if not ready:
                raise RuntimeError(f"Xvfb did not report a display within {timeout:.0f} s")
            chunk = os.read(read_fd, 16)
            if not chunk:  # Xvfb exited before reporting
                code = process.wait(timeout=5)
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"Xvfb exited ({code}): {err.strip()[-500:]}")
            number += chunk
    except BaseException:
        stop_xvfb(process)
        raise
    finally:
        os.close(read_fd)
        log.close()  # Xvfb keeps its own descriptor to the file
    return XServer(display=f":{int(number)}", process=process)


def stop_xvfb(process: subprocess.Popen) -> None:
    """Stop our Xvfb (terminate, then kill if it lingers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def xserver() -> Iterator[XServer]:
    """A fresh Xvfb for one test, stopped afterwards; fails when xvfb/xdotool are not installed."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"window tests need an X server and xdotool: apt-get install -y {' '.join(missing)}")
    server = start_xvfb()
    try:
        yield server
    finally:
        stop_xvfb(server.process)


class Window:
    """A subprocess that opens a window on an XServer, with waits that fail clearly instead of hanging.

    Output goes to pipes (read them with `proc.communicate()`), or to `log` when given (for chatty
    processes, whose pipes could fill)."""

    def __init__(self, server: XServer, proc: subprocess.Popen, timeout: float = 30.0, log: Path | None = None):
        self.server, self.proc, self.timeout, self.log = server, proc, timeout, log
        self.wid = ""

    def _died(self) -> str:
        if self.log is not None:
            self.proc.wait(timeout=10)
            return f"the window process exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
        out, err = self.proc.communicate(timeout=10)
        return f"the window process exited ({self.proc.returncode}):\n{out}\n{err}"

    def wait_title(self, pattern: str) -> str:
        """Wait for a visible window whose title matches `pattern` (xdotool regex)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(self._died())
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", pattern],
                                   env=self.server.env, capture_output=True, text=True, timeout=10)
            if found.returncode == 0 and found.stdout.split():
                self.wid = found.stdout.split()[0]
                return self.wid
            time.sleep(0.1)
        titles = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", ".", "getwindowname", "%@"],
                                env=self.server.env, capture_output=True, text=True, timeout=10).stdout
        pytest.fail(f"no window titled /{pattern}/ after {self.timeout:.0f} s; windows: {titles.strip()!r}")

    def wait_size(self, width: int, height: int) -> None:
        deadline = time.monotonic() + self.timeout
        geometry = ""
        while time.monotonic() < deadline:
            geometry = self.server.xdotool("getwindowgeometry", self.wid)
            if f"Geometry: {width}x{height}" in geometry:
                return
            time.sleep(0.1)
        pytest.fail(f"window never reached {width}x{height}: {geometry}")

    def press(self, name: str) -> None:
        """A key press to the window (focused first: no window manager gives it focus). Shift+key is sent
        as Shift held, a pause, the key: OpenCV's Qt backend reports Shift as a key of its own
        (core/keys.py), and one waitKey call that finds both presses queued (the window busy merging
        on a loaded machine) keeps only the last, so a chord sent at once could arrive unshifted."""
        self.server.xdotool("windowfocus", self.wid)
        if name.startswith("shift+"):
            self.server.xdotool("keydown", "shift")
            time.sleep(SHIFT_PAUSE)
            try:
                self.server.xdotool("key", name[len("shift+"):])
            finally:
                self.server.xdotool("keyup", "shift")
            return
        self.server.xdotool("key", name)

    def key(self, name: str, then_title: str) -> None:
        self.press(name)
        self.wait_title(then_title)

    def wait_exit(self) -> None:
        """Wait for the process to end by itself, successfully."""
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("the window process did not exit")
        assert self.proc.returncode == 0, self._died()


@contextlib.contextmanager
def window_process(server: XServer, cmd: list[str], timeout: float = 30.0, log: Path | None = None,
                   cwd: Path | None = None) -> Iterator[Window]:
    """Start `cmd` (which opens a window) on `server`; always reaped, killed if still running."""
    if log is not None:
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=server.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd)
    else:
        proc = subprocess.Popen(cmd, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, cwd=cwd)
    try:
        yield Window(server, proc, timeout, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)

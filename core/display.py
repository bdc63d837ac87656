"""Whether a window can open here, asked before opening one.

OpenCV's Linux wheels draw windows through Qt's xcb (X11) plugin, and when Qt cannot reach an X
server it aborts the whole process (exit code 134) instead of raising: no DISPLAY over SSH or in a
container, or a DISPLAY whose server is gone. `display_problem()` finds that out first, with a plain
X connection attempt (libxcb through ctypes, bounded in time), so a command can go on without its
window and say why.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from pathlib import Path

WINDOW_WIDTH = 1368  # DFL's initial width of its windows (merger preview, manual extraction)
PROBE_TIMEOUT_S = 5.0  # an unreachable TCP display can block connect() for minutes


def _x_server_answers(display: str, timeout: float = PROBE_TIMEOUT_S) -> bool | None:
    """True/False when libxcb could tell whether the X server `display` accepts us; None when libxcb is
    not there to ask (then nothing is known)."""
    name = ctypes.util.find_library("xcb")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.xcb_connect.restype = ctypes.c_void_p
        lib.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.xcb_connection_has_error.restype = ctypes.c_int
        lib.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        lib.xcb_disconnect.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    result: list[bool] = []

    def probe() -> None:
        conn = lib.xcb_connect(display.encode(), None)
        result.append(bool(conn) and lib.xcb_connection_has_error(conn) == 0)
        if conn:
            lib.xcb_disconnect(conn)

    worker = threading.Thread(target=probe, name="x-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else False


def _opencv_qt_platforms() -> set[str] | None:
    """The Qt platform plugins OpenCV's wheel ships (e.g. {"xcb"}), or None when it is not a Qt build."""
    try:
        import cv2
    except ImportError:
        return None
    folder = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if not folder.is_dir():
        return None
    return {p.name[len("libq"):].split(".")[0] for p in folder.glob("libq*.so*")}


def display_problem() -> str | None:
    """None when a window can open; otherwise why not, in a few words (for "...: no preview")."""
    if sys.platform in ("win32", "darwin"):
        return None
    display = os.environ.get("DISPLAY", "")
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if display:
        if _x_server_answers(display) is False:
            return f"the X server of DISPLAY={display} cannot be opened"
        return None
    if wayland:
        platforms = _opencv_qt_platforms()
        if platforms is not None and not any(p.startswith("wayland") for p in platforms):
            return "only WAYLAND_DISPLAY is set and OpenCV's window needs X11 (DISPLAY, e.g. XWayland)"
        return None
    return "no DISPLAY or WAYLAND_DISPLAY is set"

"""SIGTERM and SIGHUP end a command the way Ctrl+C does: through KeyboardInterrupt, so it saves.

`timeout`, `kill`, systemd, container runtimes and a closed SSH session stop a process with SIGTERM
or SIGHUP, whose default action kills it on the spot; training would lose everything since its last
save. Turning them into KeyboardInterrupt in the main thread lets every command's existing Ctrl+C
path (save, then exit) run.

SIGINT itself gets Python's KeyboardInterrupt handler back: a process started as a background job of a
non-interactive shell (`cmd &` in a script, CI runners) inherits SIGINT *ignored*, and Python then keeps
it ignored, so `kill -INT` (or Ctrl+C forwarded to it) would never stop and save a training run.
"""
from __future__ import annotations

import signal
import threading


def _raise_interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def handle_termination_as_interrupt() -> None:
    """Install the handlers (main thread only; elsewhere Python cannot set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _raise_interrupt)

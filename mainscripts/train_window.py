"""What the user sees while training: DFL's console progress line, and the preview window (main thread) that
shows the session's previews and sends it DFL's key commands."""
from __future__ import annotations

import queue
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mainscripts.trainer import TrainingSession

WINDOW_NAME = "Training preview"


def console_line(iteration: int, seconds: float, losses: list[float]) -> str:
    """DFL's progress line: [time][#iteration][step time][loss per side]."""
    took = f"{seconds * 1000:04.0f}ms" if seconds < 10 else f"{seconds:.3f}s"
    return f"[{time.strftime('%H:%M:%S')}][#{iteration:06d}][{took}]" + "".join(f"[{v:.4f}]" for v in losses)


class Console:
    """Overwrites one line on a terminal; without a terminal prints at most one line a second."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._last = 0.0
        self._pending = ""

    def progress(self, line: str, force: bool = False) -> None:
        if self.tty:
            print("\r" + line, end="", flush=True)
            return
        now = time.monotonic()
        self._pending = line
        if force or now - self._last >= 1.0:
            print(line, flush=True)
            self._last, self._pending = now, ""

    def message(self, text: str) -> None:
        if self.tty:
            print("\r", end="")
        elif self._pending:
            print(self._pending, flush=True)
            self._pending = ""
        print(text, flush=True)


# --- the preview window (main thread) -------------------------------------------------------------

class PreviewWindow:
    """DFL's keys: Enter save+exit, s save, b backup, p refresh, space next preview, l graph range."""

    def __init__(self, session: TrainingSession):
        self.session = session
        self.images: dict[str, np.ndarray] = {}
        self.index = 0
        self.range_idx = 0

    def run(self) -> None:
        import cv2

        from models.preview import GRAPH_RANGES, compose_window
        cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE)
        shown_iter = -1
        dirty = True
        try:
            while not self.session.done.is_set():
                try:
                    self.images = self.session.previews.get_nowait()
                    dirty = True
                except queue.Empty:
                    pass
                if self.images and (dirty or self.session.model.iteration != shown_iter):
                    names = list(self.images)
                    name = names[self.index % len(names)]
                    title = f'Preview: "{name}" [{self.index % len(names) + 1}/{len(names)}]'
                    frame = compose_window(self.images[name], title, self.session.model.loss_history,
                                           GRAPH_RANGES[self.range_idx])
                    cv2.imshow(WINDOW_NAME, frame)
                    shown_iter, dirty = self.session.model.iteration, False
                key = cv2.waitKey(50) & 0xFF
                if key in (13, 10):
                    self.session.commands.put("exit")
                    self.session.done.wait()
                elif key == ord("s"):
                    self.session.commands.put("save")
                elif key == ord("b"):
                    self.session.commands.put("backup")
                elif key == ord("p"):
                    self.session.commands.put("preview")
                elif key == ord(" "):
                    self.index += 1
                    dirty = True
                elif key == ord("l"):
                    self.range_idx = (self.range_idx + 1) % len(GRAPH_RANGES)
                    dirty = True
        finally:
            cv2.destroyAllWindows()

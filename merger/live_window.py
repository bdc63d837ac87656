"""The live window: the swapped stream with an fps / latency overlay, and the merger's setting keys.

The keys are the interactive merger's (merger.config.apply_key: mode, mask mode, erode/blur, colour
transfer, face scale, and whatever the merger gains, such as AMP's morph factor); they change the
settings of the frames composed from then on. Tab shows the keys, Enter saves the settings as a
merge config JSON (`merge --config FILE` reads it), Esc or the window's X ends. The title carries the
settings (as the merger's does), so scripts and tests can follow the window's state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from core import log
from core.display import WINDOW_WIDTH
from core.keys import KeyReader
from merger.config import CHOICES, KEY_HELP, MergeConfig, apply_key, is_setting_key, save_config
from merger.live_pipeline import LiveSettings, LiveStats
from merger.window import key_help_image
from merger.xseg_masks import needs_xseg

WINDOW_NAME = "Live"
MAX_HEIGHT = 900
LIVE_HELP: tuple[tuple[str, str], ...] = (
    ("Tab", "help / stream"),
    ("Enter", "save these settings as a merge config JSON (merge --config reads it)"),
    ("Esc", "quit (the output video is finished)"),
)


def title_of(cfg: MergeConfig, show_help: bool = False, note: str = "", morph: bool = False) -> str:
    """The window title: every setting in effect (the morph factor with `morph`: for a model that has one)."""
    parts = [f"{WINDOW_NAME} -", cfg.mode, f"mask={cfg.mask_mode}", f"ct={cfg.color_transfer}", f"erode={cfg.erode}",
             f"blur={cfg.blur}", f"motion={cfg.motion_blur}", f"scale={cfg.output_face_scale}",
             f"sharpen={cfg.sharpen_mode}:{cfg.sharpen_amount}", f"denoise={cfg.image_denoise}",
             f"bicubic={cfg.bicubic_degrade}", f"cdegrade={cfg.color_degrade}"]
    if cfg.mode.endswith("hist-match"):
        parts.append(f"hist={cfg.hist_match_threshold}")
    if morph:
        parts.append(f"morph={getattr(cfg, 'morph_factor', 0.5):.2f}")
    text = " ".join(parts)
    if show_help:
        text += " - help"
    if note:
        text += f" - {note}"
    return text


def help_image(width: int = 900, height: int = 600) -> np.ndarray:
    # the temporal window needs frames ahead, which live does not have: the key only sets it for the saved config
    merger_keys = [(k, "temporal window for the saved config (merge only)" if k == "t / g" else what)
                   for k, what in KEY_HELP]
    return key_help_image("Live face swap - keys", list(LIVE_HELP) + [("", "")] + merger_keys, width, height)


def overlay(image: np.ndarray, text: str) -> np.ndarray:
    """`image` scaled to fit the screen, with `text` drawn top-left (outlined, readable on any frame)."""
    h, w = image.shape[:2]
    scale = min(1.0, WINDOW_WIDTH / w, MAX_HEIGHT / h)
    shown = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    shown = shown.copy()
    for colour, thick in (((0, 0, 0), 3), ((80, 255, 80), 1)):
        cv2.putText(shown, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, thick, cv2.LINE_AA)
    return shown


class LiveWindow:
    """Shows frames and turns key presses into settings (`settings`) and actions (save, help, quit)."""

    def __init__(self, settings: LiveSettings, save_path: Path, default_mode: str = "overlay", morph: bool = False,
                 mask_ok: Callable[[str], bool] | None = None):
        self.settings, self.save_path, self.default_mode = settings, Path(save_path), default_mode
        # whether a mask mode can run (the XSeg ones need the XSeg model: loaded the first time one is chosen);
        # None: no XSeg model, `x` steps past the XSeg modes
        self.mask_ok = mask_ok or (lambda mode: not needs_xseg(mode))
        self.morph = morph  # the model has a morph factor: show it
        self.show_help = False
        self.quit = False
        self.note = ""
        self._keys = KeyReader()
        self._title = ""
        self._last: np.ndarray | None = None
        self._help = help_image()
        self._open = False  # the window opens with the first frame (no empty window while the model loads)

    def on_key(self, key: str | None) -> None:
        if key is None:
            return
        if key == "tab":
            self.show_help = not self.show_help
        elif key == "esc":
            self.quit = True
        elif key == "enter":
            cfg = self.settings.get()
            save_config(self.save_path, cfg)
            self.note = f"saved {self.save_path.name}"
            log.info(f"Saved the settings to {self.save_path} (merge --config {self.save_path} uses them)")
        elif is_setting_key(key):
            cfg = apply_key(self.settings.get(), key, self.default_mode)
            skipped = False
            for _ in CHOICES["mask_mode"]:  # x: past the mask modes that cannot run, at most once round
                if self.mask_ok(cfg.mask_mode):
                    break
                skipped = True
                cfg = apply_key(cfg, key, self.default_mode)
            self.settings.set(cfg)
            self.note = "XSeg off: no XSeg model" if skipped else ""
        self._update_title()

    def _update_title(self) -> None:
        if not self._open:
            return
        title = title_of(self.settings.get(), self.show_help, self.note, self.morph)
        if title != self._title:
            cv2.setWindowTitle(WINDOW_NAME, title)
            self._title = title

    def show(self, image: np.ndarray, stats: LiveStats | None = None, faces: int = 0) -> None:
        text = "" if stats is None else f"{stats.fps:.1f} fps  latency {stats.latency_ms:.0f} ms  faces {faces}   Tab: keys"
        self._last = overlay(image, text)
        if not self._open:
            cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            self._open = True
        cv2.imshow(WINDOW_NAME, self._help if self.show_help else self._last)
        self._update_title()
        self.poll(1)

    def poll(self, wait_ms: int = 1) -> None:
        """Read one key (waiting up to `wait_ms`); the window's X ends like Esc."""
        if not self._open:
            return
        was_help = self.show_help
        code = cv2.waitKeyEx(wait_ms)
        self.on_key(self._keys.read(code))
        if self.show_help != was_help and self._last is not None:
            cv2.imshow(WINDOW_NAME, self._help if self.show_help else self._last)
        if code == -1 and cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
            self.quit = True

    def close(self) -> None:
        if self._open and cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) >= 1:
            cv2.destroyWindow(WINDOW_NAME)
        cv2.waitKey(1)

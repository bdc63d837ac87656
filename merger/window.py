"""The interactive merger: one OpenCV window, one key per knob, as in DFL's interactive merger.

The keys act on the session (settings per frame, with inheritance) through `MergerController`, a
plain object the tests drive without a display; `run_window` only shows frames and reads keys.
Every frame shown is merged with the settings on screen and written to the output folders, so
what the user saw is what is on disk. The title carries the frame and its settings, so scripts
(and the window tests) can follow the window's state.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from core import log
from core.display import WINDOW_WIDTH
from core.image_io import read_image, write_image
from core.keys import KeyReader
from facelib.face_type import FaceType
from merger import temporal
from merger.compose import FacePrediction, compose_frame
from merger.config import CHOICES, KEY_HELP, MORPH_KEYS, MergeConfig, apply_key, is_setting_key
from merger.frames import FrameInfo
from merger.pipeline import model_crop, output_paths, predict_faces
from merger.session import MergeSession
from merger.xseg_masks import LazyMasker, XSegNeed, fill_xseg, needs_xseg

WINDOW_NAME = "Merger"
PREVIEW_WIDTH = WINDOW_WIDTH  # DFL's initial preview width
PREVIEW_MAX_HEIGHT = 900
HELP_HEIGHT = 768
ZOOM_RANGE = (0.1, 4.0)

NAV_HELP: tuple[tuple[str, str], ...] = (
    ("Tab", "help / preview"),
    ("Esc", "save the session and quit"),
    (", / .", "previous / next frame (a new frame inherits the settings)"),
    ("<", "first frame"),
    (">", "process all remaining frames on/off"),
    ("/ / m", "next / previous frame, overriding its settings with these"),
    ("M", "back to the first frame, overriding every frame on the way"),
    ("?", "apply these settings to all remaining frames"),
    ("- / =", "zoom out / in"),
    ("v", "checkerboard behind the mask"),
)


@dataclass
class ViewState:
    show_help: bool = True  # DFL opens on the help screen
    zoom: float = 1.0
    checker: bool = False
    auto: bool = False  # "process all remaining frames"
    quit: bool = False


class MergerController:
    """What each key does to the session and the view (no drawing, no model). `mask_mode_ok` says whether
    a mask mode can be used (the XSeg ones need an XSeg model): `x` skips those that cannot. `has_morph`: the
    model takes a morph factor (AMP): its keys act and the title shows it; other models ignore those keys."""

    def __init__(self, session: MergeSession, default_mode: str = "overlay",
                 mask_mode_ok: Callable[[str], bool] = lambda mode: True, has_morph: bool = False):
        self.session = session
        self.has_morph = has_morph
        self.view = ViewState()
        self.default_mode = default_mode
        self.mask_mode_ok = mask_mode_ok
        self.note = ""  # shown at the end of the title (e.g. why the XSeg modes are skipped)
        self.n = len(session.frame_names)
        session.materialise(session.current)

    @property
    def index(self) -> int:
        return self.session.current

    @property
    def cfg(self) -> MergeConfig:
        return self.session.config_for(self.index)

    def _go(self, i: int) -> None:
        """Move to frame i; frames skipped over going forward inherit like DFL's one-by-one steps."""
        i = min(max(0, i), self.n - 1)
        for k in range(self.session.current + 1, i + 1):
            self.session.materialise(k)
        self.session.current = i
        self.session.materialise(i)

    def on_key(self, key: str | None) -> None:
        if key is None:
            return
        s, v = self.session, self.view
        if key == "tab":
            v.show_help = not v.show_help
        elif key == "esc":
            v.quit = True
        elif key in MORPH_KEYS and not self.has_morph:
            pass  # a model without a morph factor: nothing to change
        elif is_setting_key(key):
            cfg = apply_key(self.cfg, key, self.default_mode)
            for _ in CHOICES["mask_mode"]:  # x: past the modes that cannot be used (at most once round)
                if key != "x" or self.mask_mode_ok(cfg.mask_mode):
                    break
                cfg = apply_key(cfg, key, self.default_mode)
            s.set_config(self.index, cfg)
        elif key == ",":
            self._go(self.index - 1)
        elif key == "<":
            self._go(0)
        elif key == ".":
            self._go(self.index + 1)
        elif key == ">":
            v.auto = not v.auto
        elif key == "/":
            if self.index + 1 < self.n:
                cfg = self.cfg
                self._go(self.index + 1)
                s.set_config(self.index, cfg)
        elif key == "m":
            if self.index > 0:
                cfg = self.cfg
                self._go(self.index - 1)
                s.set_config(self.index, cfg)
        elif key == "M":
            cfg = self.cfg
            for k in range(self.index, -1, -1):
                s.set_config(k, cfg)
            self._go(0)
        elif key == "?":
            cfg = self.cfg
            for k in range(self.index + 1, self.n):
                s.set_config(k, cfg)
        elif key == "-":
            v.zoom = max(ZOOM_RANGE[0], round(v.zoom - 0.1, 2))
        elif key == "=":
            v.zoom = min(ZOOM_RANGE[1], round(v.zoom + 0.1, 2))
        elif key == "v":
            v.checker = not v.checker
        if key != "tab" and key != "esc" and v.show_help and key in (",", ".", "<", ">", "/", "m", "M"):
            v.show_help = False  # navigating means the user wants to see frames

    def make_usable(self) -> None:
        """A frame whose mask mode cannot be used (an XSeg mode without an XSeg model, e.g. from a saved
        session) gets the next mode that can, as `x` would choose."""
        if not self.mask_mode_ok(self.cfg.mask_mode):
            self.on_key("x")

    def auto_step(self) -> bool:
        """One step of 'process all remaining': move to the next frame; False when at the end."""
        if self.index + 1 >= self.n:
            self.view.auto = False
            return False
        self._go(self.index + 1)
        return True

    def title(self) -> str:
        c = self.cfg
        name = self.session.frame_names[self.index]
        masked = "/masked" if c.masked_hist_match else ""
        hist = f" hist={c.hist_match_threshold}{masked}" if c.mode.endswith("hist-match") else ""
        parts = [f"{WINDOW_NAME} - frame {self.index + 1}/{self.n} {name} -", c.mode, f"mask={c.mask_mode}",
                 f"ct={c.color_transfer}", f"erode={c.erode}", f"blur={c.blur}", f"motion={c.motion_blur}",
                 f"scale={c.output_face_scale}", f"sharpen={c.sharpen_mode}:{c.sharpen_amount}",
                 f"denoise={c.image_denoise}", f"bicubic={c.bicubic_degrade}", f"cdegrade={c.color_degrade}",
                 f"temporal={c.temporal}"]
        if self.has_morph:
            parts.append(f"morph={c.morph_factor:.2f}")
        text = " ".join(parts) + hist + f" zoom={self.view.zoom:.1f}"
        if self.view.checker:
            text += " checker"
        if self.view.auto:
            text += " auto"
        if self.view.show_help:
            text += " - help"
        if self.note:
            text += f" - {self.note}"
        return text


class FrameMerger:
    """Merges one frame at a time in this process; model predictions are cached per frame, so
    changing a setting only re-composites (a model with a morph factor predicts again when it changes).
    XSeg masks are made the first time a frame's mask mode needs them (with `xseg`, loaded then), and
    cached with the predictions. With a temporal window (merger.temporal) a tracked face is predicted on its
    smoothed landmarks, and its neighbours along the track are predicted too (and cached), as batch mode does."""

    def __init__(self, infos: list[FrameInfo], predictor, output_dir: Path, mask_dir: Path, cache_frames: int = 8,
                 xseg: LazyMasker | None = None):
        self.infos, self.predictor = infos, predictor
        self.xseg = xseg or LazyMasker(None)
        self.output_dir, self.mask_dir = Path(output_dir), Path(mask_dir)
        self._cache: dict[int, tuple[np.ndarray, list[FacePrediction], tuple]] = {}
        self._order: list[int] = []
        self.has_morph = bool(getattr(predictor, "has_morph", False))
        self.cache_frames = cache_frames
        self._runs = temporal.track_runs(infos)
        self._run_of = temporal.run_index(self._runs)
        self._smoothed: dict[int, list[FrameInfo]] = {0: infos}

    def _infos(self, radius: int) -> list[FrameInfo]:
        """The frames with their tracked faces' landmarks smoothed over `radius` frames (0: as extracted)."""
        if not self._runs:
            return self.infos
        if radius not in self._smoothed:
            self._smoothed[radius] = temporal.smooth_landmarks(self.infos, lambda k: radius, self._runs)
        return self._smoothed[radius]

    def _frame(self, i: int, morph: float, radius: int = 0) -> tuple[np.ndarray, list[FacePrediction]]:
        key = (morph if self.has_morph else None, radius if self._runs else 0)
        if i in self._cache and self._cache[i][2] != key:  # the morph factor or the smoothing changed: predict again
            frame = self._cache[i][0]
            info = self._infos(key[1])[i]
            faces = predict_faces(self.predictor, frame, info.landmarks, morph=morph)[0] if info.landmarks else []
            self._cache[i] = (frame, faces, key)
        if i not in self._cache:
            info = self._infos(key[1])[i]
            frame = read_image(info.path)
            faces = predict_faces(self.predictor, frame, info.landmarks, morph=morph)[0] if info.landmarks else []
            self._cache[i] = (frame, faces, key)
            self._order.append(i)
            while len(self._order) > self.cache_frames:
                self._cache.pop(self._order.pop(0), None)
        frame, faces, _ = self._cache[i]
        return frame, faces

    def xseg_ok(self, mask_mode: str) -> bool:
        """Whether `mask_mode` can be used: an XSeg mode loads the XSeg model the first time it is asked."""
        return not needs_xseg(mask_mode) or self.xseg.get() is not None

    def _predicted(self, i: int, cfg: MergeConfig) -> tuple[np.ndarray, list[FacePrediction]]:
        """Frame i and its faces' predictions, with the XSeg masks `cfg`'s mask mode needs."""
        frame, faces = self._frame(i, cfg.morph_factor, cfg.temporal)
        need = XSegNeed.of([cfg.mask_mode])
        if need and faces:  # the same masks batch mode makes (merger.pipeline.predict_faces)
            baked = [self.infos[i].baked_mask(j) for j in range(len(faces))]
            fill_xseg(faces, [frame] * len(faces), baked, self.xseg.get(), need, model_crop(self.predictor))
        return frame, faces

    def merge(self, i: int, cfg: MergeConfig) -> tuple[np.ndarray, np.ndarray]:
        r = cfg.temporal if self._runs else 0
        self.cache_frames = max(self.cache_frames, 2 * r + 2)  # the whole window stays predicted
        frame, faces = self._predicted(i, cfg)
        if r > 0:  # as batch mode (merger.pipeline.stabilised_batches), this frame's settings for all
            spec = model_crop(self.predictor)
            stable = []
            for j, fp in enumerate(faces):
                if (i, j) in self._run_of:
                    run, pos = self._run_of[(i, j)]
                    samples = []
                    for (k, jk), w in temporal.window(run, pos, r):
                        frame_k, faces_k = (frame, faces) if k == i else self._predicted(k, cfg)
                        samples.append((temporal.face_sample(frame_k, faces_k[jk], cfg, spec), w))
                    fp = temporal.stabilise(fp, samples)
                stable.append(fp)
            faces = stable
        image, mask = compose_frame(frame, faces, cfg, int(self.predictor.resolution),
                                    FaceType(self.predictor.face_type), self._infos(r)[i].motion)
        out, mask_path = output_paths(self.infos[i].path, self.output_dir, self.mask_dir)
        write_image(out, image)
        write_image(mask_path, mask)
        return image, mask


# --- drawing ---------------------------------------------------------------------------------------

def help_image(width: int = 1024, height: int = HELP_HEIGHT) -> np.ndarray:
    """The help screen: every key and what it does."""
    return key_help_image("Interactive merger - keys", list(NAV_HELP) + [("", "")] + list(KEY_HELP), width, height)


def key_help_image(title: str, rows: list[tuple[str, str]], width: int, height: int) -> np.ndarray:
    """A help screen (the merger's, live's): the title, then each key and what it does (("", "") = a gap),
    laid out for `width` (text sized for 1024 px wide)."""
    img = np.full((height, width, 3), 32, np.uint8)
    k = width / 1024.0
    lines = [(title, "")] + rows
    y = round(40 * k)
    step = max(18, (height - round(60 * k)) // max(1, len(lines)))
    for key, what in lines:
        if key and not what:
            cv2.putText(img, key, (round(30 * k), y), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * k, (255, 255, 255), 2, cv2.LINE_AA)
        elif key:
            cv2.putText(img, key, (round(30 * k), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * k, (120, 220, 255), 1, cv2.LINE_AA)
            cv2.putText(img, what, (round(200 * k), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * k, (230, 230, 230), 1,
                        cv2.LINE_AA)
        y += step
    return img


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = (((yy // cell) + (xx // cell)) % 2).astype(np.uint8)
    return np.where(board[..., None] == 1, 200, 120).astype(np.uint8).repeat(3, axis=2)


def preview_image(image: np.ndarray, mask: np.ndarray, view: ViewState, status: str) -> np.ndarray:
    """The merged frame as shown: zoomed, optionally over a checkerboard where the mask is empty."""
    h, w = image.shape[:2]
    if view.checker:
        a = (mask.astype(np.float32) / 255.0)[..., None]
        image = (image * a + checkerboard(h, w) * (1 - a)).astype(np.uint8)
    base = min(PREVIEW_WIDTH / w, PREVIEW_MAX_HEIGHT / h)
    scale = base * view.zoom
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    shown = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    bar = np.full((28, shown.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, status, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    return np.vstack([shown, bar])


def run_window(infos: list[FrameInfo], predictor, session: MergeSession, output_dir: Path, mask_dir: Path,
               xseg: LazyMasker | None = None) -> MergeSession:
    """Show the merger until Esc (or until 'process all remaining' reaches the end); the session is
    saved on the way out. Returns the session. `xseg` loads the XSeg model when an XSeg mask mode is
    first chosen; without one those modes are skipped and the status line says why."""
    merger = FrameMerger(infos, predictor, output_dir, mask_dir, xseg=xseg)
    ctl = MergerController(session, getattr(predictor, "default_mode", "overlay"), merger.xseg_ok, merger.has_morph)
    cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    rendered: tuple[int, MergeConfig] | None = None
    image = mask = None
    shown: tuple | None = None
    title = ""
    printed: MergeConfig | None = None
    help_img = help_image()
    keys = KeyReader()
    try:
        while not ctl.view.quit:
            ctl.make_usable()
            if merger.xseg.problem and not ctl.note:
                log.warning(f"XSeg mask modes are skipped: {merger.xseg.problem}")
                ctl.note = "XSeg off"
            i, cfg = ctl.index, ctl.cfg
            if rendered != (i, cfg):
                image, mask = merger.merge(i, cfg)
                session.mark_done(i)
                rendered = (i, cfg)
                if cfg != printed:
                    log.info(f"--- frame {i + 1}: {session.frame_names[i]} ---\n{cfg.describe(merger.has_morph)}")
                    printed = cfg
            look = (i, cfg, ctl.view.show_help, ctl.view.zoom, ctl.view.checker, ctl.view.auto, ctl.note)
            if look != shown:
                status = f"{i + 1}/{ctl.n} {session.frame_names[i]}   {cfg.mode} | {cfg.mask_mode} | {cfg.color_transfer}" \
                         f"   Tab: help"
                if merger.xseg.problem:
                    status += f"   XSeg modes skipped: {merger.xseg.problem}"
                cv2.imshow(WINDOW_NAME, help_img if ctl.view.show_help else preview_image(image, mask, ctl.view, status))
                shown = look
                if ctl.title() != title:
                    title = ctl.title()
                    cv2.setWindowTitle(WINDOW_NAME, title)
            code = cv2.waitKeyEx(1 if ctl.view.auto else 20)
            ctl.on_key(keys.read(code))
            if ctl.view.auto and not ctl.view.quit and code < 0:  # no key waiting: next frame
                if not ctl.auto_step() and not session.remaining:
                    image, mask = merger.merge(ctl.index, ctl.cfg) if rendered != (ctl.index, ctl.cfg) else (image, mask)
                    session.mark_done(ctl.index)
                    log.info("All frames are merged.")
                    break
            if code == -1 and cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
                break  # closed with the title bar's X: like Esc
    finally:
        session.save()
        if cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) >= 1:
            cv2.destroyWindow(WINDOW_NAME)
        cv2.waitKey(1)
    return session

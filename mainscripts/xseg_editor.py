"""`xseg editor`: the XSeg labelling window (DFL's XSegEditor, on OpenCV HighGUI instead of Qt).

The face is shown enlarged to a 768 px canvas with its include/exclude polygons, the labels' mask
as a semi-transparent overlay, and optionally the trained XSeg mask (of `--model-dir`, or the one
baked into the face by `xseg apply`). Mouse and keys go to `EditorSession` / `LabelState`
(mainscripts/xseg_editor_session.py, xseg_editor_state.py), which hold every rule; this module only
reads events, maps window pixels to face pixels through `View`, and draws.
The window title carries the face and the label counts, so scripts and window tests can follow it.
Under the face, a strip of thumbnails of the neighbouring faces shows which carry labels (a click on
one goes there). The window can be resized (the picture scales; clicks map back to face pixels), and
its position and size are kept between runs in `<faces folder's parent>/.xseg_editor_window.json`.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import atomic_write_json, loads_bounded
from core.keys import KeyReader
from facelib.masks import polygons_mask
from faceset.faceset import Face
from mainscripts.xseg_editor_session import KEYS, MOUSE_HELP, STRIP, WINDOW_NAME, EditorSession, open_faces
from mainscripts.xseg_editor_state import EXCLUDE, KIND_NAMES, CentreLock, View

CANVAS = 768  # the face is shown at this size (DFL's editor fills a similar area)
THUMB = CANVAS // STRIP  # one slot of the thumbnail strip under the face
BAR = 48  # status lines under the strip
FRAME_H = CANVAS + THUMB + BAR
GEOMETRY_NAME = ".xseg_editor_window.json"  # in the faces folder's parent: where the window was
GEOMETRY_LIMIT = 20000  # pixels: a saved position or size past this is not a screen's
LABELLED_COLOUR, UNLABELLED_COLOUR, CURRENT_COLOUR = (60, 200, 60), (80, 80, 80), (255, 255, 255)
HIT_PX = 8.0  # how near (window pixels) a click must be to grab a point or an edge
WHEEL_ZOOM = 1.25
OVERLAY_ALPHA = 0.35
# BGR (include, exclude) line colours per scheme (keys 1 2 3)
SCHEME_COLOURS = {0: ((40, 40, 255), (255, 160, 40)), 1: ((40, 230, 40), (230, 60, 230)),
                  2: ((255, 90, 30), (30, 230, 255))}
TRAINED_COLOUR = (255, 255, 0)  # cyan tint for the trained mask overlay
_SHIFT_PREC = 4  # sub-pixel bits for drawing polygons


# --- drawing -------------------------------------------------------------------------------------

def _tint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    a = (np.clip(mask, 0.0, 1.0) * alpha)[..., None]
    return (image * (1.0 - a) + np.array(colour, np.float32) * a).astype(np.uint8)


def _warp(image: np.ndarray, view: View, nearest: bool = False) -> np.ndarray:
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, view.matrix, (CANVAS, CANVAS), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def draw_canvas(session: EditorSession, view: View, centred: bool = False) -> np.ndarray:
    """The face (or a mask, keys 4/5) as the window shows it, with overlays and polygons; `centred`
    (Shift held): a cross marks the centre, where a click lands."""
    s, f = session.state, session.flags
    h, w = session.image.shape[:2]
    labels = polygons_mask((h, w), [p.as_dict() for p in s.polys])
    if f.mode == "labels":
        base = cv2.cvtColor((labels * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    elif f.mode == "trained" and session.trained_mask() is not None:
        base = cv2.cvtColor((session.trained_mask() * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    else:
        base = session.image
    canvas = _warp(base, view, nearest=view.zoom >= 4)
    include_colour, exclude_colour = SCHEME_COLOURS[f.scheme]
    if f.mode == "face" and f.label_overlay and s.polys:
        canvas = _tint(canvas, _warp(labels, view), include_colour, OVERLAY_ALPHA)
    if f.mode == "face" and f.trained_overlay and session.trained_mask() is not None:
        trained = _warp(session.trained_mask(), view)
        canvas = _tint(canvas, trained, TRAINED_COLOUR, OVERLAY_ALPHA)
        contours, _ = cv2.findContours((trained > 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, TRAINED_COLOUR, 1, cv2.LINE_AA)
    one = 1 << _SHIFT_PREC
    for i, poly in enumerate(s.polys):
        if not poly.pts:
            continue
        colour = exclude_colour if poly.kind == EXCLUDE else include_colour
        pts = np.array([view.to_window(x, y) for x, y in poly.pts], np.float64)
        fixed = np.rint(pts * one).astype(np.int32)
        thick = 2 if i in (s.selected, s.open) else 1
        cv2.polylines(canvas, [fixed], i != s.open, colour, thick, cv2.LINE_AA, shift=_SHIFT_PREC)
        for k, (u, v) in enumerate(fixed):
            radius = (6 if (i == s.open and k == 0) else 3) * one
            cv2.circle(canvas, (int(u), int(v)), radius, colour, -1 if k else 2, cv2.LINE_AA, shift=_SHIFT_PREC)
    if centred:
        c, arm = CANVAS // 2, 12
        for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.line(canvas, (c - arm, c), (c + arm, c), colour, thick, cv2.LINE_AA)
            cv2.line(canvas, (c, c - arm), (c, c + arm), colour, thick, cv2.LINE_AA)
    return canvas


def status_bar(session: EditorSession, view: View) -> np.ndarray:
    s, f = session.state, session.flags
    bar = np.full((BAR, CANVAS, 3), 24, np.uint8)
    views = {"face": "", "labels": "  [labels' mask]", "trained": "  [trained mask]"}[f.mode]
    line1 = (f"{session.index + 1}/{session.n}  {session.face.name}  |  {KIND_NAMES[s.mode]}  |  "
             f"{len(s.polys)} polygons{' (changed)' if s.changed else ''}  |  {sum(session.labelled)} labelled"
             f"{views}  |  zoom {view.zoom:.1f}  |  Tab: help")
    cv2.putText(bar, line1, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    if s.message:
        cv2.putText(bar, s.message[:110], (8, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 220, 255), 1, cv2.LINE_AA)
    return bar


class Thumbnails:
    """Small pictures of faces for the strip, decoded once per face file (a bounded cache)."""

    MAX = 64

    def __init__(self, size: int = THUMB - 6) -> None:
        self.size = size
        self._cache: dict[Path, np.ndarray] = {}

    def get(self, face: Face) -> np.ndarray:
        if face.path not in self._cache:
            if len(self._cache) >= self.MAX:
                self._cache.clear()
            try:
                data = np.frombuffer(face.read_bytes(), np.uint8)
                image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            except UserError:
                image = None
            if image is None:  # unreadable: a grey square with a question mark
                thumb = np.full((self.size, self.size, 3), 60, np.uint8)
                cv2.putText(thumb, "?", (self.size // 3, 2 * self.size // 3), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                            (200, 200, 200), 2, cv2.LINE_AA)
            else:
                thumb = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
            self._cache[face.path] = thumb
        return self._cache[face.path]


def draw_strip(session: EditorSession, thumbs: Thumbnails) -> np.ndarray:
    """The neighbouring faces, the one on screen in the middle (white frame); a green frame and dot on
    the faces that carry labels, grey on the others."""
    strip = np.full((THUMB, CANVAS, 3), 16, np.uint8)
    inner = THUMB - 6
    for slot, index in enumerate(session.strip()):
        if index is None:
            continue
        x0 = slot * THUMB
        labelled = session.labelled[index]
        frame = CURRENT_COLOUR if index == session.index else LABELLED_COLOUR if labelled else UNLABELLED_COLOUR
        cv2.rectangle(strip, (x0 + 1, 1), (x0 + THUMB - 2, THUMB - 2), frame, 2)
        strip[3:3 + inner, x0 + 3:x0 + 3 + inner] = thumbs.get(session.faces[index])
        if labelled:
            cv2.circle(strip, (x0 + 12, 12), 6, LABELLED_COLOUR, -1, cv2.LINE_AA)
            cv2.circle(strip, (x0 + 12, 12), 6, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def read_geometry(path: Path) -> tuple[int, int, int, int] | None:
    """The saved (x, y, width, height) of the window, or None: a missing, damaged or odd file (it may
    come with a stranger's workspace) is ignored, so the window opens where the system puts it."""
    try:
        if path.stat().st_size > 4096:
            raise UserError("too large", path)
        value = loads_bounded(path.read_bytes(), path, "window settings", max_bytes=4096, max_depth=2)
        rect = tuple(int(value[k]) for k in ("x", "y", "width", "height") if type(value[k]) is int)
    except FileNotFoundError:
        return None
    except (OSError, UserError, TypeError, KeyError, ValueError) as e:
        log.warning(f"{path}: window settings ignored ({e})")
        return None
    x, y, w, h = rect if len(rect) == 4 else (0, 0, 0, 0)
    if not (abs(x) <= GEOMETRY_LIMIT and abs(y) <= GEOMETRY_LIMIT and 64 <= w <= GEOMETRY_LIMIT
            and 64 <= h <= GEOMETRY_LIMIT):
        log.warning(f"{path}: window settings ignored (not a window on a screen)")
        return None
    return x, y, w, h


def write_geometry(path: Path, rect: tuple[int, int, int, int]) -> None:
    """Keep where the window is for the next run (atomically); a folder that cannot be written only
    costs a warning."""
    x, y, w, h = (int(v) for v in rect)
    try:
        atomic_write_json(path, {"x": x, "y": y, "width": w, "height": h})
    except (OSError, UserError) as e:
        log.warning(f"{path}: window position not kept ({e})")


def help_image() -> np.ndarray:
    """Every key and mouse action (from the session's key table), on the canvas's footprint."""
    img = np.full((FRAME_H, CANVAS, 3), 32, np.uint8)
    lines = [("XSeg editor - keys", 0.8)] + [(text, 0.5) for _, _, text in KEYS if text] + [("", 0.5)]
    lines += [(text, 0.5) for text in MOUSE_HELP]
    lines += [("strip: green frame and dot = labelled face; click a face to go there", 0.5), ("", 0.5),
              ("Tab / H: back to the face", 0.5)]
    y = 40
    for text, size in lines:
        colour = (255, 255, 255) if size > 0.5 else (220, 230, 240)
        cv2.putText(img, text, (24, y), cv2.FONT_HERSHEY_SIMPLEX, size, colour, 2 if size > 0.5 else 1, cv2.LINE_AA)
        y += 34 if size > 0.5 else 24
    return img


# --- the loop ------------------------------------------------------------------------------------

class _Mouse:
    """Applies HighGUI mouse events to the session: canvas pixels -> face pixels through the view."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, int, int]] = []
        self.pan_from: tuple[int, int] | None = None
        self.lock = CentreLock()

    def callback(self, event: int, x: int, y: int, flags: int, _param: object) -> None:
        self.events.append((event, x, y, flags))

    def apply(self, session: EditorSession, view: View) -> None:
        events, self.events = self.events, []
        s = session.state
        for ev, u, v, flags in events:
            if session.flags.show_help:
                continue
            on_canvas = 0 <= u < CANVAS and 0 <= v < CANVAS
            if self.pan_from is None and (on_canvas or self.lock.locked):  # Shift: the view follows (DFL)
                x, y = self.lock.point(view, u, v, bool(flags & cv2.EVENT_FLAG_SHIFTKEY))
            else:
                x, y = view.to_face(u, v)
            radius = HIT_PX / view.scale
            if ev == cv2.EVENT_MOUSEMOVE:
                if self.pan_from is not None:
                    view.pan(u - self.pan_from[0], v - self.pan_from[1])
                    self.pan_from = (u, v)
                else:
                    s.move(x, y)
            elif ev == cv2.EVENT_LBUTTONDOWN and 0 <= u < STRIP * THUMB and CANVAS <= v < CANVAS + THUMB:
                index = session.strip()[u // THUMB]  # a thumbnail: go to that face
                if index is not None and index != session.index:
                    session.go(index)
                    return  # the rest of the events were meant for the face that was on screen
            elif ev == cv2.EVENT_LBUTTONDOWN and on_canvas:
                s.left_down(x, y, radius, ctrl=bool(flags & cv2.EVENT_FLAG_CTRLKEY))
            elif ev == cv2.EVENT_LBUTTONUP:
                s.left_up(x, y)
            elif ev == cv2.EVENT_RBUTTONDOWN and on_canvas:
                s.right_click(x, y, radius)
            elif ev == cv2.EVENT_MBUTTONDOWN and on_canvas:
                self.pan_from = (u, v)
            elif ev == cv2.EVENT_MBUTTONUP:
                self.pan_from = None
            elif ev == cv2.EVENT_MOUSEWHEEL and on_canvas:
                bits = flags & 0xFFFFFFFF  # the delta is the signed high 16 bits
                delta = (bits - (1 << 32) if bits & 0x80000000 else bits) >> 16
                if delta and self.lock.at is not None:  # zoom about the centred point, which stays centred
                    view.zoom_at(u, v, WHEEL_ZOOM if delta > 0 else 1.0 / WHEEL_ZOOM)
                    view.centre_on(*self.lock.at)
                elif delta:
                    view.zoom_at(u, v, WHEEL_ZOOM if delta > 0 else 1.0 / WHEEL_ZOOM)


def _look(session: EditorSession, view: View, centred: bool) -> tuple:
    s, f = session.state, session.flags
    return (session.index, session.n, s.polys, s.open, s.selected, s.mode, s.message, f.mode, f.label_overlay,
            f.trained_overlay, f.scheme, f.show_help, view.zoom, view.tx, view.ty, tuple(session.labelled), centred)


def _window_open() -> bool:
    return cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) >= 1


class _Placement:
    """Where the window is: restored from the saved geometry at the start, followed while it is open
    (the window may be closed before it can be asked), written back at the end when it changed.
    `offset` is what the window system adds to a requested position (a title bar): measured once and
    taken off, so the window does not creep by it from run to run."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.saved = read_geometry(path) if path is not None else None
        self.rect: tuple[int, int, int, int] | None = None
        self.offset: tuple[int, int] | None = None

    def restore(self) -> None:
        w, h = (self.saved[2], self.saved[3]) if self.saved else (CANVAS, FRAME_H)
        cv2.resizeWindow(WINDOW_NAME, w, h)
        if self.saved:
            cv2.moveWindow(WINDOW_NAME, self.saved[0], self.saved[1])

    def follow(self) -> None:
        try:
            x, y, w, h = (int(v) for v in cv2.getWindowImageRect(WINDOW_NAME))
        except cv2.error:
            return
        if w <= 0 or h <= 0:
            return
        if self.offset is None:
            self.offset = (x - self.saved[0], y - self.saved[1]) if self.saved else (0, 0)
        self.rect = (x - self.offset[0], y - self.offset[1], w, h)

    def keep(self) -> None:
        if self.path is not None and self.rect is not None and self.rect != self.saved:
            write_geometry(self.path, self.rect)


def edit(session: EditorSession, geometry: Path | None = None) -> None:
    """Show the editor until Esc or the window is closed; the face on screen is saved on the way out.
    `geometry`: the file that keeps the window's position and size between runs."""
    mouse, keys = _Mouse(), KeyReader()
    cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
    cv2.setMouseCallback(WINDOW_NAME, mouse.callback)
    place = _Placement(geometry)
    place.restore()
    help_img, thumbs = help_image(), Thumbnails()
    view, view_of = View(max(session.image.shape[:2]), CANVAS), (session.index, session.n)
    shown, title, ticks = None, "", 0
    try:
        while not session.quit:
            if (session.index, session.n) != view_of:  # another face (or the next one after X)
                view, view_of = View(max(session.image.shape[:2]), CANVAS), (session.index, session.n)
                mouse.lock.release()
            look = _look(session, view, mouse.lock.locked)
            if look != shown:
                if session.flags.show_help:
                    frame = help_img
                else:
                    frame = np.vstack([draw_canvas(session, view, mouse.lock.locked), draw_strip(session, thumbs),
                                       status_bar(session, view)])
                cv2.imshow(WINDOW_NAME, frame)
                shown = look
            if session.title() != title:
                title = session.title()
                cv2.setWindowTitle(WINDOW_NAME, title)
            code = cv2.waitKeyEx(15)
            ticks += 1
            if ticks % 20 == 1:  # about 3 times a second
                place.follow()
            mouse.apply(session, view)
            key = keys.read(code)
            if key == "0":
                view = View(max(session.image.shape[:2]), CANVAS)
                mouse.lock.release()
            session.on_key(key)
            if code == -1 and not session.quit and not _window_open():
                if not session.leave():  # closed with the title bar's X: like Esc, once
                    log.warning(f"{session.face.where}: left unsaved (its labels on disk are unchanged)")
                break
    except BaseException:
        try:  # a crash or Ctrl+C: keep what was drawn on this face if it can be written
            session.leave()
        except Exception as e:  # noqa: BLE001 - the first error is the one to report
            log.warning(f"{session.face.where}: labels not saved ({e})")
        raise
    finally:
        if _window_open():
            place.follow()
            cv2.destroyWindow(WINDOW_NAME)
        cv2.waitKey(1)
        place.keep()


def run_editor(input_dir: Path, model_dir: Path | None = None) -> int:
    """The `xseg editor` command: label the faces of `input_dir`; 0 when the user quits.

    A pack, a folder without faces, a model folder without an XSeg model, or no display is a
    UserError (one line naming the folder), raised before any window opens."""
    from core.display import display_problem
    faceset, faces, labelled = open_faces(Path(input_dir))
    problem = display_problem()  # before loading a model, which takes seconds
    if problem is not None:
        raise UserError(f"the XSeg editor opens a window: run it in a desktop session ({problem})", input_dir)
    masker = None
    if model_dir is not None:
        from models.xseg import load_xseg  # loads Keras: only when a model is asked for
        masker = load_xseg(Path(model_dir))
        log.info(f"Trained mask from {model_dir} (` overlays it, 5 shows it)")
    session = EditorSession(faceset, faces, labelled, masker=masker)
    edit(session, Path(input_dir).resolve().parent / GEOMETRY_NAME)
    log.info(f"Labels saved on {session.saved} face{'s' * (session.saved != 1)}; "
             f"{sum(session.labelled)} of {session.n} faces labelled.")
    if session.trashed:
        log.info(f"{len(session.trashed)} face{'s' * (len(session.trashed) != 1)} moved to "
                 f"{session.trashed[0].parent} (move them back to restore them).")
    return 0

"""Manual extraction window ("Manual pass"): the user places one face per frame with the mouse.

DFL's manual-extract rhythm: the face rectangle follows the mouse, the wheel resizes it,
the 68 landmarks are shown live on it, a left click locks it, Enter accepts the face and moves on,
Space marks the frame as having no face, `,` / `.` step back and forth, `q` stops (frames not yet
decided stay undecided) and `h` hides the help. On a video's frames the rect is labelled with the face
track it would join (`track 3`, or `new track`), so a face placed by hand continues the right track.

The module has two halves so the rules can be tested without a display:
- `ManualState` and the `on_*` functions: a frozen state and pure transitions (event in, new state
  out), all in frame pixels;
- `run_manual_pass`: the OpenCV HighGUI loop that loads frames, maps window pixels to frame pixels,
  runs the landmark predictor on the rect and draws.

The rect is a square in dlib-HOG's convention (brows to lower lip, side to side), because that is
the box the 68-point predictor was trained on: what the user frames is what the predictor gets,
with no box fit. Accepted faces carry `detector="manual"`, which `facelib.landmarks` maps to the
identity fit, so running the landmark step again on them gives the same points.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from core.display import WINDOW_WIDTH
from core.image_io import read_image
from facelib.detected_face import DetectedFace
from facelib.draw import draw_landmarks, draw_rect, draw_track_id
from facelib.landmarks import BOX_FITS, IDENTITY, landmarks_from_box

Rect = tuple[float, float, float, float]
# (frame index, the face under the mouse, the faces accepted in other frames) -> the track id it would
# get, None for a new track (extract_tracks.ManualTracks.label)
TrackOf = Callable[[int, DetectedFace, Mapping[int, DetectedFace]], "int | None"]
NO_TRACKS = object()  # _draw: the frames are no video's, no track label

WINDOW_NAME = "Manual pass"
MANUAL_DETECTOR = "manual"

# waitKeyEx codes (the same under Qt, GTK and Win32 for these keys)
KEYS_ACCEPT = (13, 10)
KEY_SKIP = 32
KEY_PREV = ord(",")
KEY_NEXT = ord(".")
KEY_QUIT = ord("q")
KEY_HELP = ord("h")

GREEN = (0, 255, 0)
CYAN = (255, 255, 0)  # BGR: DFL's colour for a locked rect
BLUE = (255, 0, 0)

MIN_HALF = 5.0  # smallest half side, frame pixels: the predictor needs some pixels to work on

HELP_LINES = (
    "mouse move: move rect   wheel: rect size   L-click: lock / unlock",
    "Enter: accept face, next frame   Space: no face, next frame",
    ", / . : previous / next frame (a locked rect is kept)",
    "q: stop (remaining frames untouched)   h: hide / show help",
)

_EMPTY: Mapping = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Pure logic: state and transitions, frame pixels only.


@dataclass(frozen=True)
class ManualState:
    """Everything the window shows and decides, as an immutable value.

    `decisions` holds each decided frame's rect (accepted face) or None (no face); `kept` holds
    rects to show locked when the user comes back to a frame (pre-placed or left locked with `,`/`.`).
    `cursor` is the last mouse position, so that unlocking puts the rect back under the mouse.
    """

    n_frames: int
    index: int = 0
    centre: tuple[float, float] = (0.0, 0.0)
    half: float = 50.0
    locked: bool = False
    show_help: bool = True
    cursor: tuple[float, float] | None = None
    decisions: Mapping[int, Rect | None] = field(default_factory=lambda: _EMPTY)
    kept: Mapping[int, Rect] = field(default_factory=lambda: _EMPTY)
    finished: bool = False

    @property
    def rect(self) -> Rect:
        """The current square (left, top, right, bottom) in frame pixels."""
        return square(self.centre, self.half)


def square(centre: tuple[float, float], half: float) -> Rect:
    cx, cy = centre
    return (cx - half, cy - half, cx + half, cy + half)


def rect_centre_half(rect: Rect) -> tuple[tuple[float, float], float]:
    """Centre and half side of the square that best stands for `rect` (mean of its sides)."""
    l, t, r, b = rect
    return ((l + r) / 2.0, (t + b) / 2.0), max(MIN_HALF, ((r - l) + (b - t)) / 4.0)


def start_state(n_frames: int, *, centre: tuple[float, float], half: float,
                kept: Mapping[int, Rect] | None = None) -> ManualState:
    """The state on opening the window: frame 0, showing its kept rect (locked) if it has one."""
    if n_frames < 1:
        raise ValueError("the manual pass needs at least one frame")
    state = ManualState(n_frames=n_frames, centre=centre, half=max(MIN_HALF, half),
                        kept=MappingProxyType(dict(kept or {})))
    return _arrive(state, 0)


def wheel_step(half: float) -> float:
    """DFL's wheel step: 1 px for small rects (40 px or less), otherwise a tenth, clamped to 1-10."""
    return 1.0 if half <= 40 else float(np.clip(half / 10.0, 1.0, 10.0))


def on_mouse_move(state: ManualState, x: float, y: float) -> ManualState:
    """The rect follows the mouse unless it is locked."""
    if state.finished:
        return state
    if state.locked:
        return dataclasses.replace(state, cursor=(x, y))
    return dataclasses.replace(state, cursor=(x, y), centre=(x, y))


def on_wheel(state: ManualState, delta: int) -> ManualState:
    """Wheel up (positive delta) grows the rect, down shrinks it; a locked rect stays as it is."""
    if state.finished or state.locked or delta == 0:
        return state
    step = wheel_step(state.half)
    half = state.half + step if delta > 0 else max(MIN_HALF, state.half - step)
    return dataclasses.replace(state, half=half)


def on_click(state: ManualState) -> ManualState:
    """Left click toggles the lock; unlocking puts the rect back under the mouse."""
    if state.finished:
        return state
    if state.locked:
        centre = state.cursor if state.cursor is not None else state.centre
        return dataclasses.replace(state, locked=False, centre=centre)
    return dataclasses.replace(state, locked=True)


def on_key(state: ManualState, key: int) -> ManualState:
    """One key press (a waitKeyEx code); unknown keys change nothing."""
    if state.finished or key < 0:
        return state
    key = key & 0xFFFF if key > 0xFFFF else key
    if key in KEYS_ACCEPT:
        return _advance(_decide(state, state.rect))
    if key == KEY_SKIP:
        return _advance(_decide(state, None))
    if key == KEY_NEXT:
        return _advance(_keep_locked(state))
    if key == KEY_PREV:
        if state.index == 0:
            return state
        return _arrive(_keep_locked(state), state.index - 1)
    if key in (KEY_QUIT, ord("Q")):
        return dataclasses.replace(state, finished=True)
    if key in (KEY_HELP, ord("H")):
        return dataclasses.replace(state, show_help=not state.show_help)
    return state


def _decide(state: ManualState, rect: Rect | None) -> ManualState:
    decisions = dict(state.decisions)
    decisions[state.index] = rect
    return dataclasses.replace(state, decisions=MappingProxyType(decisions))


def _keep_locked(state: ManualState) -> ManualState:
    """Leaving a frame with `,`/`.`: a locked rect counts as the accepted face (as in DFL)."""
    return _decide(state, state.rect) if state.locked else state


def _advance(state: ManualState) -> ManualState:
    if state.index + 1 >= state.n_frames:
        return dataclasses.replace(state, finished=True, locked=False)
    return _arrive(state, state.index + 1)


def _arrive(state: ManualState, index: int) -> ManualState:
    """Show frame `index`: its accepted or kept rect, locked; otherwise the current rect, unlocked
    (faces move little between video frames, so the last place is the best first guess)."""
    rect = state.decisions.get(index) or state.kept.get(index)
    if rect is None:
        return dataclasses.replace(state, index=index, locked=False)
    centre, half = rect_centre_half(rect)
    return dataclasses.replace(state, index=index, centre=centre, half=half, locked=True)


# ---------------------------------------------------------------------------------------------
# Geometry shared by the window and its tests.


def view_scale(frame_shape: tuple[int, ...], window_size: int) -> float:
    """Frame-to-window scale: the frame's height x 16/9 becomes `window_size` (DFL), and the frame's
    width never exceeds it (wide frames would otherwise run off the screen)."""
    h, w = frame_shape[:2]
    return min(window_size * 9.0 / 16.0 / h, window_size / w)


def default_half(frame_shape: tuple[int, ...]) -> float:
    """Starting half side: a face filling about a third of the frame's short side."""
    return max(MIN_HALF, round(min(frame_shape[:2]) / 6.0))


def manual_rect_from_face(face: DetectedFace) -> Rect:
    """A detector's box in the manual (HOG) convention, for pre-placing a rect from `initial`."""
    if face.detector == MANUAL_DETECTOR:
        return tuple(face.rect)  # type: ignore[return-value]
    return BOX_FITS.get(face.detector, IDENTITY).apply(face.rect, face.keypoints)


def predict_landmarks(frame: np.ndarray, rect: Rect) -> np.ndarray:
    """68 landmarks for a manual rect, in frame pixels.

    The predictor runs on a crop around the rect (one rect side of margin) rather than the whole
    frame: the colour conversion of a 4K frame would otherwise dominate, and the predictor never
    looks that far outside its box.
    """
    h, w = frame.shape[:2]
    l, t, r, b = rect
    m = r - l
    x0, y0 = int(max(0, np.floor(l - m))), int(max(0, np.floor(t - m)))
    x1, y1 = int(min(w, np.ceil(r + m))), int(min(h, np.ceil(b + m)))
    if x1 - x0 < 2 or y1 - y0 < 2:  # rect entirely off the frame: predict on the whole frame
        return landmarks_from_box(frame, rect)
    crop = frame[y0:y1, x0:x1]
    points = landmarks_from_box(crop, (l - x0, t - y0, r - x0, b - y0))
    return points + (x0, y0)


# ---------------------------------------------------------------------------------------------
# The HighGUI window.


class _Frames:
    """Frames loaded on demand, a few kept (the user steps back and forth around one place)."""

    def __init__(self, paths: Sequence[Path], keep: int = 4):
        self.paths = [Path(p) for p in paths]
        self.keep = keep
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self._cache:
            if len(self._cache) >= self.keep:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = read_image(self.paths[index])
        return self._cache[index]


class _Landmarks:
    """Predictions per (frame, rect), so a still mouse costs nothing and accepted faces reuse them."""

    def __init__(self, frames: _Frames):
        self.frames = frames
        self._cache: dict[tuple[int, Rect], np.ndarray] = {}

    def __call__(self, index: int, rect: Rect) -> np.ndarray:
        key = (index, tuple(float(v) for v in rect))
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = predict_landmarks(self.frames[index], rect)
        return self._cache[key]


def _draw(view: np.ndarray, state: ManualState, points: np.ndarray, scale: float, name: str,
          track: object = NO_TRACKS) -> np.ndarray:
    """The window's image: the rect, its landmarks, the track it would join (`track`: an id, None for a
    new track, NO_TRACKS for none shown) and the status and help lines."""
    image = view.copy()
    colour = CYAN if state.locked else GREEN
    rect = tuple(v * scale for v in state.rect)
    draw_rect(image, rect, BLUE, 1)
    draw_landmarks(image, points * scale, colour, hull_alpha=0.15)
    if track is not NO_TRACKS:
        draw_track_id(image, rect, track, scale=0.6)
    if state.index not in state.decisions:
        decided = "undecided"
    else:
        decided = "no face" if state.decisions[state.index] is None else "face accepted"
    status = (f"frame {state.index + 1}/{state.n_frames}  {name}  "
              f"{'locked' if state.locked else 'unlocked'}  {decided}")
    lines = list(HELP_LINES) + [""] if state.show_help else []
    lines.append(status + ("" if state.show_help else "   (h: help)"))
    _text_panel(image, lines)
    return image


def _text_panel(image: np.ndarray, lines: Sequence[str], line_h: int = 20) -> None:
    """White text on a darkened panel, readable on any frame (an outline drawn with a thicker
    stroke does not line up with the text under OpenCV 5's font renderer)."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    width = max(cv2.getTextSize(t, font, size, 1)[0][0] for t in lines) + 16
    h, w = image.shape[:2]
    panel = image[0:min(h, line_h * len(lines) + 8), 0:min(w, width)]
    panel[:] = (panel * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(image, text, (8, line_h * (i + 1)), font, size, (255, 255, 255), 1, cv2.LINE_AA)


def window_title(state: ManualState, name: str) -> str:
    """The title bar: where the user is, and whether the rect is locked (tests wait on it too)."""
    return (f"{WINDOW_NAME} - frame {state.index + 1}/{state.n_frames} {name}"
            f"{' locked' if state.locked else ''}")


def run_manual_pass(frames: Sequence[Path], *, initial: dict[int, DetectedFace] | None = None,
                    window_size: int = WINDOW_WIDTH, track_of: TrackOf | None = None) -> dict[int, DetectedFace | None]:
    """Let the user place one face per frame in the "Manual pass" window.

    Returns, for each frame index the user decided on, the accepted face (square rect and 68
    landmarks in frame pixels, score 1.0, detector "manual") or None for a frame marked as having no
    face. Frames left undecided (the user pressed q, or closed the window) are absent. `initial`
    pre-places a locked rect on some frames (a previous extraction's face, for re-extracting).
    `track_of` (a video's frames) names the track the face under the mouse would join, drawn over it.
    """
    if not frames:
        return {}
    loaded = _Frames(frames)
    predict = _Landmarks(loaded)
    kept = {i: manual_rect_from_face(face) for i, face in (initial or {}).items() if 0 <= i < len(frames)}
    first = loaded[0]
    h, w = first.shape[:2]
    state = start_state(len(frames), centre=(w / 2.0, h / 2.0), half=default_half(first.shape), kept=kept)

    events: list[tuple[int, int, int, int]] = []
    cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    cv2.setMouseCallback(WINDOW_NAME, lambda ev, x, y, flags, _: events.append((ev, x, y, flags)))
    views: dict[int, tuple[np.ndarray, float]] = {}
    shown: tuple | None = None
    title = ""
    try:
        while not state.finished:
            if state.index not in views:
                views.clear()
                frame = loaded[state.index]
                scale = view_scale(frame.shape, window_size)
                size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
                views[state.index] = (cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1
                                                 else cv2.INTER_LINEAR), scale)
            view, scale = views[state.index]
            name = Path(frames[state.index]).name
            look = (state.index, state.rect, state.locked, state.show_help, tuple(state.decisions.items()))
            if look != shown:
                points = predict(state.index, state.rect)
                track = NO_TRACKS if track_of is None else track_of(
                    state.index, _face(state.rect, points), _accepted(state, predict))
                cv2.imshow(WINDOW_NAME, _draw(view, state, points, scale, name, track))
                shown = look
                if window_title(state, name) != title:
                    title = window_title(state, name)
                    cv2.setWindowTitle(WINDOW_NAME, title)
            key = cv2.waitKeyEx(15)
            for ev, x, y, flags in events:
                state = _on_mouse_event(state, ev, x / scale, y / scale, flags)
            events.clear()
            state = on_key(state, key)
            if key == -1 and cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
                break  # closed with the title bar's X: like q
    finally:
        if cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) >= 1:  # not closed by the user
            cv2.destroyWindow(WINDOW_NAME)
        cv2.waitKey(1)  # lets HighGUI process the close

    out: dict[int, DetectedFace | None] = {}
    for index in sorted(state.decisions):
        rect = state.decisions[index]
        out[index] = None if rect is None else _face(rect, predict(index, rect).copy())
    return out


def _face(rect: Rect, points: np.ndarray) -> DetectedFace:
    return DetectedFace(rect=tuple(float(v) for v in rect), landmarks=points, score=1.0, detector=MANUAL_DETECTOR)


TRACK_NEIGHBOURS = 11  # accepted frames on each side that the live track label looks at


def _accepted(state: ManualState, predict: _Landmarks) -> dict[int, DetectedFace]:
    """The faces accepted in the frames near the current one (their landmarks are cached)."""
    return {i: _face(rect, predict(i, rect)) for i, rect in state.decisions.items()
            if rect is not None and i != state.index and abs(i - state.index) <= TRACK_NEIGHBOURS}


def _on_mouse_event(state: ManualState, event: int, x: float, y: float, flags: int) -> ManualState:
    """HighGUI mouse event (coordinates already in frame pixels) to a state transition."""
    if event == cv2.EVENT_MOUSEMOVE:
        return on_mouse_move(state, x, y)
    if event == cv2.EVENT_LBUTTONDOWN:
        return on_click(on_mouse_move(state, x, y))
    if event == cv2.EVENT_MOUSEWHEEL:
        # the wheel delta is the high 16 bits of flags, signed (C++'s getMouseWheelDelta)
        bits = flags & 0xFFFFFFFF
        return on_wheel(state, (bits - (1 << 32) if bits & 0x80000000 else bits) >> 16)
    return state

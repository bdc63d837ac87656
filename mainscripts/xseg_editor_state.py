"""The XSeg label editor's pure state: one face's polygons, undo/redo, hit-testing and the
window <-> face pixel mapping, with no window and no files, so every rule is testable directly.

Coordinates here are the aligned face's pixels (DFL's `seg_ie_polys` layout: an integer point is a
pixel centre, as `cv2.fillPoly` and `facelib.masks.polygons_mask` read it). The window maps through
`View`, the same affine transform that draws the face, so a click lands on the pixel under it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

INCLUDE, EXCLUDE = 1, 0
KIND_NAMES = {INCLUDE: "include", EXCLUDE: "exclude"}

Point = tuple[float, float]
Checker = Callable[[np.ndarray, int], "str | None"]


@dataclass(frozen=True)
class Polygon:
    """One label polygon: include (1) or exclude (0), points in face pixels."""

    kind: int
    pts: tuple[Point, ...]

    def as_dict(self) -> dict:
        """DFL's layout, as `FaceMeta.seg_ie_polys` holds it."""
        return {"type": self.kind, "pts": np.asarray(self.pts, np.float32).reshape(-1, 2)}


def polygons_from_meta(polys: list[dict] | None) -> tuple[Polygon, ...]:
    return tuple(Polygon(int(p["type"]), tuple((float(x), float(y)) for x, y in np.asarray(p["pts"]).reshape(-1, 2)))
                 for p in polys or ())


def default_checker(pts: np.ndarray, size: int) -> str | None:
    """`facelib.seg_polys.polygon_problem`, imported on first use (written alongside this editor)."""
    from facelib.seg_polys import polygon_problem
    return polygon_problem(pts, size)


@dataclass(frozen=True)
class Snapshot:
    """What undo restores: the polygons and which one is still being drawn."""

    polys: tuple[Polygon, ...]
    open: int | None


@dataclass
class LeaveResult:
    """What leaving a face decided: whether it may be left, the labels to write (None: nothing to
    write), and what to tell the user."""

    ok: bool
    labels: list[dict] | None
    messages: list[str] = field(default_factory=list)


def _seg_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


class LabelState:
    """One face's labels while they are edited (DFL's editor rules, mouse in face pixels).

    Left click on empty space adds a point to the polygon being drawn, or starts one of the current
    kind; a click on the first point (3 or more points) closes it; a click on any point drags it;
    Ctrl+click deletes a point or inserts one on an edge; a right click deletes a point or closes the
    polygon being drawn. Every change is undoable.
    """

    def __init__(self, size: int, polys: list[dict] | None = None, check: Checker | None = None) -> None:
        self.size = int(size)
        self.check = check or default_checker
        self.initial = polygons_from_meta(polys)
        self.polys: tuple[Polygon, ...] = self.initial
        self.open: int | None = None  # the polygon being drawn
        self.selected: int | None = None
        self.mode = INCLUDE
        self.message = ""
        self._undo: list[Snapshot] = []
        self._redo: list[Snapshot] = []
        self._drag: tuple[int, int] | None = None
        self._drag_from: Snapshot | None = None

    # -- history ------------------------------------------------------------------------------
    def _snap(self) -> Snapshot:
        return Snapshot(self.polys, self.open)

    def _restore(self, s: Snapshot) -> None:
        self.polys, self.open = s.polys, s.open
        if self.selected is not None and self.selected >= len(self.polys):
            self.selected = None

    def _change(self, polys: tuple[Polygon, ...], open_: int | None, before: Snapshot | None = None) -> None:
        self._undo.append(before or self._snap())
        self._redo.clear()
        self.polys, self.open = polys, open_

    def undo(self) -> bool:
        if not self._undo:
            self.message = "nothing to undo"
            return False
        self._redo.append(self._snap())
        self._restore(self._undo.pop())
        return True

    def redo(self) -> bool:
        if not self._redo:
            self.message = "nothing to redo"
            return False
        self._undo.append(self._snap())
        self._restore(self._redo.pop())
        return True

    @property
    def changed(self) -> bool:
        return self.polys != self.initial

    @property
    def n_points(self) -> int:
        return sum(len(p.pts) for p in self.polys)

    # -- hit-testing ----------------------------------------------------------------------------
    def clamp(self, x: float, y: float) -> Point:
        """Keep a point on the face (pixel centres 0..size-1)."""
        hi = float(self.size - 1)
        return (min(max(float(x), 0.0), hi), min(max(float(y), 0.0), hi))

    def hit_point(self, x: float, y: float, radius: float) -> tuple[int, int] | None:
        """(polygon, point) nearest to (x, y) within `radius` face pixels."""
        best, where = radius, None
        for pi, poly in enumerate(self.polys):
            for qi, (px, py) in enumerate(poly.pts):
                d = float(np.hypot(px - x, py - y))
                if d <= best:
                    best, where = d, (pi, qi)
        return where

    def hit_edge(self, x: float, y: float, radius: float) -> tuple[int, int] | None:
        """(polygon, index where a point inserted on the nearest edge goes) within `radius`."""
        best, where = radius, None
        p = np.array([x, y])
        for pi, poly in enumerate(self.polys):
            pts = np.asarray(poly.pts, np.float64)
            n = len(pts)
            edges = n if (pi != self.open and n >= 3) else n - 1  # an open polygon has no closing edge
            for qi in range(max(0, edges)):
                d = _seg_distance(p, pts[qi], pts[(qi + 1) % n])
                if d <= best:
                    best, where = d, (pi, qi + 1)
        return where

    # -- editing --------------------------------------------------------------------------------
    def set_mode(self, kind: int) -> None:
        """Q/W: the kind of new polygons, and of the one being drawn."""
        self.mode = kind
        if self.open is not None and self.polys[self.open].kind != kind:
            polys = list(self.polys)
            polys[self.open] = Polygon(kind, polys[self.open].pts)
            self._change(tuple(polys), self.open)

    def _with_points(self, pi: int, pts: tuple[Point, ...]) -> tuple[Polygon, ...]:
        polys = list(self.polys)
        polys[pi] = Polygon(polys[pi].kind, pts)
        return tuple(polys)

    def left_down(self, x: float, y: float, radius: float, ctrl: bool = False) -> None:
        self.message = ""
        if ctrl:
            hit = self.hit_point(x, y, radius)
            if hit is not None:
                self.delete_point(*hit)
                return
            edge = self.hit_edge(x, y, radius)
            if edge is not None:
                pi, at = edge
                pts = self.polys[pi].pts
                self._change(self._with_points(pi, pts[:at] + (self.clamp(x, y),) + pts[at:]), self.open)
                self.selected = pi
            return
        hit = self.hit_point(x, y, radius)
        if hit is not None and hit[0] == self.open and hit[1] == 0 and len(self.polys[hit[0]].pts) >= 3:
            self.close_open()
            return
        if hit is not None:
            self._drag, self._drag_from, self.selected = hit, self._snap(), hit[0]
            return
        point = self.clamp(x, y)
        if self.open is not None:
            self._change(self._with_points(self.open, self.polys[self.open].pts + (point,)), self.open)
        else:
            self._change(self.polys + (Polygon(self.mode, (point,)),), len(self.polys))
            self.selected = self.open

    def move(self, x: float, y: float) -> None:
        """Mouse moved: drags the grabbed point (one undo step for the whole drag)."""
        if self._drag is None:
            return
        pi, qi = self._drag
        pts = list(self.polys[pi].pts)
        if pts[qi] == self.clamp(x, y):
            return
        pts[qi] = self.clamp(x, y)
        polys = self._with_points(pi, tuple(pts))
        if self._drag_from is not None:  # the first move of this drag: one undo step
            self._change(polys, self.open, self._drag_from)
            self._drag_from = None
        else:
            self.polys = polys

    def left_up(self, x: float, y: float) -> None:
        """End of a drag: a closed polygon the move made cross itself is put back, with a message."""
        if self._drag is None:
            return
        before = self._drag_from
        self.move(x, y)
        pi = self._drag[0]
        moved = before is None or self.polys != before.polys
        self._drag = self._drag_from = None
        if moved and pi != self.open:
            problem = self._problem(self.polys[pi])
            if problem is not None:
                self._restore(self._undo.pop())
                self.message = f"move refused: the polygon {problem}"

    def right_click(self, x: float, y: float, radius: float) -> None:
        """On a point: delete it; elsewhere: close the polygon being drawn."""
        self.message = ""
        hit = self.hit_point(x, y, radius)
        if hit is not None:
            self.delete_point(*hit)
        elif self.open is not None:
            self.close_open()

    def delete_point(self, pi: int, qi: int) -> None:
        """Remove one point; a closed polygon left with fewer than 3 points goes (DFL)."""
        pts = self.polys[pi].pts[:qi] + self.polys[pi].pts[qi + 1:]
        if (pi == self.open and pts) or len(pts) >= 3:
            self._change(self._with_points(pi, pts), self.open)
            self.selected = pi
        else:
            self._remove(pi)

    def _remove(self, pi: int) -> None:
        polys = self.polys[:pi] + self.polys[pi + 1:]
        open_ = None if self.open in (None, pi) else self.open - (self.open > pi)
        self._change(polys, open_)
        self.selected = None

    def delete_selected(self) -> None:
        """Delete key: the selected polygon (or the one being drawn) goes."""
        target = self.open if self.open is not None else self.selected
        if target is None or target >= len(self.polys):
            self.message = "no polygon selected (click a point of one first)"
            return
        self._remove(target)

    def _problem(self, poly: Polygon) -> str | None:
        return self.check(np.asarray(poly.pts, np.float32).reshape(-1, 2), self.size)

    def close_open(self) -> bool:
        """Finish the polygon being drawn; refused (it stays open) when it has < 3 points or a problem."""
        if self.open is None:
            return True
        poly = self.polys[self.open]
        if len(poly.pts) < 3:
            self.message = f"a polygon needs 3 points, this one has {len(poly.pts)}"
            return False
        problem = self._problem(poly)
        if problem is not None:
            self.message = f"polygon refused: it {problem} (move or delete a point, or Z to undo)"
            return False
        self._change(self.polys, None)
        return True

    # -- leaving ----------------------------------------------------------------------------------
    def leave(self) -> LeaveResult:
        """What to write when the user leaves this face: None when nothing changed; polygons with
        fewer than 3 points are dropped (with a message); a polygon with a problem keeps the user
        here (ok=False) so nothing wrong is written and nothing drawn is lost."""
        if not self.changed:
            return LeaveResult(True, None)
        keep, messages = [], []
        for i, poly in enumerate(self.polys, 1):
            what = f"{KIND_NAMES.get(poly.kind, '?')} polygon {i}"
            if len(poly.pts) < 3:
                messages.append(f"{what} dropped: it has {len(poly.pts)} point{'s' * (len(poly.pts) != 1)} "
                                "(a polygon needs 3)")
                continue
            problem = self._problem(poly)
            if problem is not None:
                return LeaveResult(False, None, [f"{what} {problem}: fix it (drag, Del, Z to undo) before leaving"])
            keep.append(poly)
        if tuple(keep) == self.initial:
            return LeaveResult(True, None, messages)
        return LeaveResult(True, [p.as_dict() for p in keep], messages)


class View:
    """Face pixels <-> window pixels: window = scale * face + offset (cv2.warpAffine's convention,
    so drawing and clicking agree), zoomed around the cursor and panned, never past the face edges."""

    ZOOM_RANGE = (1.0, 20.0)  # DFL's wheel range

    def __init__(self, face_size: int, window: int) -> None:
        self.face_size, self.window = int(face_size), int(window)
        self.zoom = 1.0
        self.tx = self.ty = 0.0
        self._clamp()

    @property
    def scale(self) -> float:
        return self.window / self.face_size * self.zoom

    @property
    def matrix(self) -> np.ndarray:
        s = self.scale
        return np.array([[s, 0.0, self.tx], [0.0, s, self.ty]], np.float64)

    def to_face(self, u: float, v: float) -> Point:
        s = self.scale
        return ((u - self.tx) / s, (v - self.ty) / s)

    def to_window(self, x: float, y: float) -> Point:
        s = self.scale
        return (s * x + self.tx, s * y + self.ty)

    def _clamp(self) -> None:
        s = self.scale
        lo = self.window - 0.5 - s * (self.face_size - 0.5)  # the face's right/bottom edge at the window's
        hi = 0.5 * s - 0.5  # its left/top edge at the window's
        self.tx = min(max(self.tx, lo), hi)
        self.ty = min(max(self.ty, lo), hi)

    def zoom_at(self, u: float, v: float, factor: float) -> None:
        """Zoom keeping the face point under (u, v) where it is."""
        x, y = self.to_face(u, v)
        self.zoom = float(np.clip(self.zoom * factor, *self.ZOOM_RANGE))
        s = self.scale
        self.tx, self.ty = u - s * x, v - s * y
        self._clamp()

    def pan(self, du: float, dv: float) -> None:
        self.tx += du
        self.ty += dv
        self._clamp()

    @property
    def centre(self) -> Point:
        """The face point at the window's centre."""
        return self.to_face((self.window - 1) / 2.0, (self.window - 1) / 2.0)

    def centre_on(self, x: float, y: float) -> None:
        """Put face point (x, y) at the window's centre. Not clamped: a point near the face's edge can be
        centred (the window shows past the edge); the next pan or zoom brings the face back in."""
        s, c = self.scale, (self.window - 1) / 2.0
        self.tx, self.ty = c - s * x, c - s * y


class CentreLock:
    """DFL's "hold Shift to keep the view centred": while Shift is held, the face slides under a fixed
    window centre instead of the cursor sliding over the face, so a long outline can be drawn zoomed in
    without panning. DFL warps the cursor back to the centre after each move; HighGUI cannot move the
    cursor, so here the cursor's motion (window pixels, at the view's scale) moves the centred face
    point, and a click while Shift is held lands on that point (the window marks it with a cross).

    `point(view, u, v, shift)` takes every mouse event (cursor at window pixel (u, v), whether Shift is
    down) and returns the face point the event acts on, moving the view while the lock holds."""

    def __init__(self) -> None:
        self.at: Point | None = None  # the centred face point while Shift is held
        self._last: Point = (0.0, 0.0)

    @property
    def locked(self) -> bool:
        return self.at is not None

    def point(self, view: View, u: float, v: float, shift: bool) -> Point:
        if not shift:
            self.at = None  # released: the view stays where it is
            return view.to_face(u, v)
        if self.at is None:  # Shift just went down: centre the point under the cursor
            x, y = view.to_face(u, v)
        else:
            s = view.scale
            x, y = self.at[0] + (u - self._last[0]) / s, self.at[1] + (v - self._last[1]) / s
        hi = float(view.face_size - 1)
        self.at = (min(max(x, 0.0), hi), min(max(y, 0.0), hi))
        self._last = (float(u), float(v))
        view.centre_on(*self.at)
        return self.at

    def release(self) -> None:
        """Forget the lock (another face is shown, or the view was reset)."""
        self.at = None

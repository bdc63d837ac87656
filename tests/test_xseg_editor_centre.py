"""The XSeg editor's "hold Shift to keep the view centred" (DFL's view lock): window-free, through
`CentreLock` and `View` as the editor's mouse handler calls them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mainscripts.xseg_editor import draw_canvas
from mainscripts.xseg_editor_state import CentreLock, LabelState, View

FACE, WINDOW = 128, 768


def _centred_point(view: View) -> np.ndarray:
    return np.array(view.centre)


def test_shift_centres_the_point_under_the_cursor_and_the_face_then_moves_under_the_centre():
    view, lock = View(FACE, WINDOW), CentreLock()
    view.zoom_at(200, 200, 4.0)
    under = view.to_face(300, 500)
    at = lock.point(view, 300, 500, shift=True)  # Shift goes down with the cursor at (300, 500)
    assert at == pytest.approx(under)
    assert _centred_point(view) == pytest.approx(under)  # that face point is now at the window's centre
    assert view.to_window(*at) == pytest.approx(((WINDOW - 1) / 2, (WINDOW - 1) / 2))
    # the mouse moves 48 window pixels right and 24 up: the centred point moves by that at the view's scale
    at2 = lock.point(view, 348, 476, shift=True)
    assert at2 == pytest.approx((under[0] + 48 / view.scale, under[1] - 24 / view.scale))
    assert _centred_point(view) == pytest.approx(at2)
    # Shift released: the view stays, the cursor maps through it as usual again
    before = view.matrix.copy()
    assert lock.point(view, 100, 100, shift=False) == pytest.approx(view.to_face(100, 100))
    assert not lock.locked and np.array_equal(view.matrix, before)


def test_the_centred_point_stays_on_the_face_and_may_sit_at_its_edge():
    view, lock = View(FACE, WINDOW), CentreLock()
    under = view.to_face(10, 10)
    lock.point(view, 10, 10, shift=True)  # near the face's top-left corner, at zoom 1
    assert _centred_point(view) == pytest.approx(under)
    at = lock.point(view, -5000, -5000, shift=True)  # far past the corner
    assert at == (0.0, 0.0)
    assert _centred_point(view) == pytest.approx((0.0, 0.0))  # not clamped back: the corner is centred


def test_clicks_with_shift_draw_a_polygon_at_the_centred_points():
    """Drawing an outline zoomed in by moving the mouse with Shift held: each click adds the centred point."""
    view, lock, state = View(FACE, WINDOW), CentreLock(), LabelState(FACE, check=lambda pts, size: None)
    view.zoom_at(384, 384, 8.0)
    first = lock.point(view, 384, 384, shift=True)
    radius = 8.0 / view.scale
    state.left_down(*first, radius)
    for u, v in ((464, 384), (464, 464), (384, 464)):  # the cursor traces a square
        state.left_down(*lock.point(view, u, v, shift=True), radius)
    state.left_down(*lock.point(view, 384, 384, shift=True), radius)  # back on the first point: closes it
    assert state.open is None and len(state.polys) == 1
    pts = np.array(state.polys[0].pts)
    side = 80 / view.scale
    expect = np.array(first) + np.array([(0, 0), (side, 0), (side, side), (0, side)])
    assert np.allclose(pts, expect, atol=1e-6)


def test_the_canvas_marks_the_centre_while_shift_is_held():
    from types import SimpleNamespace

    from mainscripts.xseg_editor import CANVAS
    from mainscripts.xseg_editor_session import ViewFlags
    image = np.full((FACE, FACE, 3), 128, np.uint8)
    session = SimpleNamespace(state=LabelState(FACE), flags=ViewFlags(), image=image, trained_mask=lambda: None)
    view = View(FACE, CANVAS)
    plain, marked = draw_canvas(session, view), draw_canvas(session, view, centred=True)
    diff = np.abs(plain.astype(int) - marked.astype(int)).sum(-1) > 0
    ys, xs = np.nonzero(diff)
    assert diff.any() and abs(xs.mean() - CANVAS / 2) < 2 and abs(ys.mean() - CANVAS / 2) < 2
    assert cv2.countNonZero(diff.astype(np.uint8)) < 400  # a small cross, not a repaint

"""The XSeg label editor: its pure state (points, polygons, undo/redo, window <-> face pixels), saving a
face's labels when the user leaves it, the refusals before any window opens, and one real window on
a private X server driven with xdotool clicks and keys."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from faceset.face_file import read_face_meta
from faceset.pack import pack_path, write_packed
from mainscripts.xseg_editor_session import EditorSession, open_faces
from mainscripts.xseg_editor_state import EXCLUDE, INCLUDE, LabelState, View
from tests.facesets import extract_faces, make_frames
from tests.xserver import window_process

REPO = Path(__file__).resolve().parent.parent
R = 3.0  # hit radius in face pixels
SQUARE = [(20.0, 20.0), (100.0, 20.0), (100.0, 100.0), (20.0, 100.0)]


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """Three real aligned faces at 128 px, made by the extractor."""
    root = tmp_path_factory.mktemp("xseg_editor")
    files = extract_faces(make_frames("obama.jpg", root / "frames", count=3), root / "aligned", size=128)
    assert len(files) == 3
    return root / "aligned"


@pytest.fixture
def faces(faces_dir, tmp_path) -> Path:
    folder = tmp_path / "aligned"
    shutil.copytree(faces_dir, folder)
    return folder


def draw(state: LabelState, pts, close: bool = True) -> None:
    for x, y in pts:
        state.left_down(x, y, R)
        state.left_up(x, y)
    if close:
        state.left_down(*pts[0], R)  # a click on the first point closes the polygon (DFL)


# --- the pure state ----------------------------------------------------------------------------------

def test_clicks_draw_a_polygon_that_closes_on_its_first_point_and_undo_redo_step_back():
    s = LabelState(128)
    draw(s, SQUARE)
    assert s.open is None and len(s.polys) == 1
    assert s.polys[0].kind == INCLUDE and s.polys[0].pts == tuple(SQUARE)
    s.undo()  # reopens it
    assert s.open == 0 and s.polys[0].pts == tuple(SQUARE)
    s.undo()  # the last point goes
    assert s.polys[0].pts == tuple(SQUARE[:3])
    s.redo()
    s.redo()
    assert s.open is None and s.polys[0].pts == tuple(SQUARE)
    assert not s.redo() and s.message == "nothing to redo"
    # A new click after closing starts a second polygon, of the mode now chosen (W: exclude).
    s.set_mode(EXCLUDE)
    draw(s, [(40.0, 40.0), (60.0, 40.0), (50.0, 60.0)])
    assert [p.kind for p in s.polys] == [INCLUDE, EXCLUDE] and s.open is None


def test_drag_moves_a_point_in_one_undo_step_and_clicks_stay_on_the_face():
    s = LabelState(128)
    draw(s, SQUARE)
    s.left_down(100.5, 99.0, R)  # grabs the point at (100, 100)
    for x in (105.0, 110.0, 115.0):
        s.move(x, 90.0)
    s.left_up(118.0, 90.0)
    assert s.polys[0].pts[2] == (118.0, 90.0) and len(s.polys[0].pts) == 4
    s.undo()
    assert s.polys[0].pts == tuple(SQUARE)
    s.left_down(100.0, 100.0, R)
    s.left_up(500.0, -40.0)  # dragged off the face: kept on its edge
    assert s.polys[0].pts[2] == (127.0, 0.0)


def test_right_click_and_ctrl_click_delete_and_insert_points():
    s = LabelState(128)
    draw(s, SQUARE)
    s.left_down(60.0, 21.0, R, ctrl=True)  # on the top edge: a point is inserted there
    assert s.polys[0].pts == ((20.0, 20.0), (60.0, 21.0), (100.0, 20.0), (100.0, 100.0), (20.0, 100.0))
    s.right_click(60.0, 21.0, R)
    s.left_down(100.0, 100.0, R, ctrl=True)
    assert s.polys[0].pts == ((20.0, 20.0), (100.0, 20.0), (20.0, 100.0))
    s.right_click(20.0, 100.0, R)  # a closed polygon under 3 points is removed (DFL)
    assert s.polys == ()
    s.undo()
    assert len(s.polys[0].pts) == 3
    # Right click away from any point closes the polygon being drawn; Del removes the selected one.
    draw(s, [(50.0, 50.0), (70.0, 50.0), (60.0, 70.0)], close=False)
    assert s.open == 1
    s.right_click(5.0, 120.0, R)
    assert s.open is None and len(s.polys) == 2
    s.left_down(50.0, 50.0, R)  # selects the second polygon
    s.left_up(50.0, 50.0)
    s.delete_selected()
    assert len(s.polys) == 1 and len(s.polys[0].pts) == 3


def test_a_polygon_that_crosses_itself_is_refused():
    s = LabelState(128)
    bow = [(20.0, 20.0), (100.0, 100.0), (100.0, 20.0), (20.0, 100.0)]
    draw(s, bow)
    assert s.open == 0 and "crosses itself" in s.message  # refused: it stays open to be fixed
    assert not s.leave().ok  # and the face cannot be left with it
    s.undo()  # the last point goes; a triangle is fine
    assert s.close_open() and s.open is None
    draw(s, [(30.0, 30.0), (60.0, 30.0), (60.0, 60.0), (30.0, 60.0)])
    s.left_down(60.0, 60.0, R)
    s.left_up(10.0, 45.0)  # dragging a corner across the opposite edge
    assert s.polys[1].pts[2] == (60.0, 60.0) and "crosses itself" in s.message


def test_leaving_drops_polygons_under_three_points_and_writes_nothing_when_unchanged():
    stored = [{"type": 1, "pts": np.array(SQUARE, np.float32)}]
    s = LabelState(128, stored)
    assert s.leave().labels is None  # nothing changed: nothing to write
    draw(s, [(5.0, 5.0), (9.0, 9.0)], close=False)
    result = s.leave()
    assert result.ok and result.labels is None  # only the 2-point polygon changed, and it is dropped
    assert "has 2 points" in result.messages[0]
    s.set_mode(EXCLUDE)
    draw(s, [(40.0, 40.0), (60.0, 40.0), (50.0, 60.0)])
    result = s.leave()
    assert [p["type"] for p in result.labels] == [1, 0]
    np.testing.assert_array_equal(result.labels[0]["pts"], stored[0]["pts"])


def test_view_maps_window_pixels_to_the_face_pixels_drawn_under_them():
    face = np.zeros((128, 128), np.float32)
    face[70, 40] = 1.0  # one bright pixel at x=40, y=70
    view = View(128, 768)
    for zoom_at in (None, (300.0, 400.0)):
        if zoom_at:
            view.zoom_at(*zoom_at, 3.0)
            x, y = view.to_face(*zoom_at)
            assert view.to_window(x, y) == pytest.approx(zoom_at)  # the point under the cursor stays
        shown = cv2.warpAffine(face, view.matrix, (768, 768), flags=cv2.INTER_NEAREST)
        vs, us = np.nonzero(shown)
        centre = view.to_face(us.mean(), vs.mean())
        assert centre == pytest.approx((40.0, 70.0), abs=0.5 / view.scale + 1e-6)
    # Zoom and pan never show anything beyond the face's edges.
    view.pan(5000, 5000)
    assert view.to_face(0, 0) == pytest.approx((-0.5 + 0.5 / view.scale,) * 2)
    view.zoom_at(0, 0, 0.01)
    assert view.zoom == 1.0 and view.to_face(767.5, 767.5) == pytest.approx((127.5, 127.5))


# --- the session: saving on leave ----------------------------------------------------------------------

def test_leaving_a_face_saves_its_labels_and_keeps_its_other_metadata(faces):
    faceset, face_list, labelled = open_faces(faces)
    before = [read_face_meta(f.path) for f in face_list]
    untouched = face_list[2].path.read_bytes()
    session = EditorSession(faceset, face_list, labelled)
    draw(session.state, SQUARE)
    session.state.set_mode(EXCLUDE)
    draw(session.state, [(40.0, 40.0), (60.0, 40.0), (50.0, 60.0)])
    session.on_key("d")  # D: save and next
    assert session.index == 1 and session.labelled == [True, False, False]
    meta = read_face_meta(face_list[0].path)
    assert [p["type"] for p in meta.seg_ie_polys] == [INCLUDE, EXCLUDE]
    np.testing.assert_array_equal(meta.seg_ie_polys[0]["pts"], np.array(SQUARE, np.float32))
    np.testing.assert_array_equal(meta.landmarks, before[0].landmarks)
    assert meta.source_filename == before[0].source_filename
    session.on_key("D")  # Shift+D: 5 forward, stops at the last face; face 2 had no change: not written
    assert session.index == 2 and read_face_meta(face_list[1].path).seg_ie_polys is None
    session.on_key("[")  # back to the previous labelled face: the saved labels are loaded
    assert session.index == 0 and len(session.state.polys) == 2 and not session.state.changed
    session.on_key("delete")  # nothing selected: a message, nothing removed
    assert len(session.state.polys) == 2 and "no polygon selected" in session.state.message
    session.state.left_down(40.0, 40.0, R)
    session.state.left_up(40.0, 40.0)
    session.on_key("delete")
    session.on_key("esc")  # quit saves too
    assert session.quit
    assert len(read_face_meta(face_list[0].path).seg_ie_polys) == 1
    assert face_list[2].path.read_bytes() == untouched


def test_a_bad_polygon_keeps_the_user_on_the_face_and_a_second_esc_leaves_it_unsaved(faces):
    faceset, face_list, labelled = open_faces(faces)
    original = face_list[0].path.read_bytes()
    session = EditorSession(faceset, face_list, labelled)
    draw(session.state, [(20.0, 20.0), (100.0, 100.0), (100.0, 20.0), (20.0, 100.0)])  # crosses itself
    session.on_key("d")
    assert session.index == 0 and "crosses itself" in session.state.message
    session.on_key("esc")
    assert not session.quit and "Esc again" in session.state.message
    session.on_key("esc")
    assert session.quit and face_list[0].path.read_bytes() == original


def test_a_dfl_face_shows_its_labels_and_dfl_reads_the_edited_ones(faces, tmp_path):
    import pickle

    from tests.test_dfl_metadata_roundtrip import POLY, _app15, _dfl_dict_of, _dfl_file
    folder = tmp_path / "dfl"
    folder.mkdir()
    face = sorted(faces.glob("*.jpg"))[0]
    payload = pickle.dumps(_dfl_dict_of(face, polys=True, mask=False), protocol=3)
    (folder / face.name).write_bytes(_dfl_file(face, payload))
    faceset, face_list, labelled = open_faces(folder)
    session = EditorSession(faceset, face_list, labelled)
    assert labelled == [True] and session.state.polys[0].pts == tuple(map(tuple, POLY.tolist()))
    session.state.set_mode(EXCLUDE)
    draw(session.state, [(40.0, 40.0), (60.0, 40.0), (50.0, 60.0)])
    session.on_key("esc")
    dfl = pickle.loads(_app15(folder / face.name))  # what DFL itself reads back
    assert [p["type"] for p in dfl["seg_ie_polys"]["polys"]] == [1, 0]
    np.testing.assert_allclose(np.float32(dfl["seg_ie_polys"]["polys"][0]["pts"]), POLY)


def test_a_face_that_cannot_be_read_is_skipped_and_the_others_stay_editable(faces):
    faceset, face_list, labelled = open_faces(faces)
    broken = face_list[1].path
    broken.write_bytes(broken.read_bytes()[:300])  # damaged after the editor listed it
    session = EditorSession(faceset, face_list, labelled)
    draw(session.state, SQUARE)
    session.on_key("d")
    assert session.n == 2 and session.face.name == face_list[2].name
    assert len(read_face_meta(face_list[0].path).seg_ie_polys) == 1


def test_the_editor_refuses_a_pack_and_a_folder_without_faces(faces, tmp_path, monkeypatch):
    from mainscripts.xseg_editor import run_editor
    monkeypatch.setattr("core.display.display_problem", lambda: None)  # refused before any window opens
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no aligned faces"):
        run_editor(empty)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REPO / "tests" / "data" / "faces" / "obama.jpg", photos / "obama.jpg")  # not an aligned face
    with pytest.raises(UserError, match="no aligned faces"):
        run_editor(photos)
    packed = tmp_path / "packed"
    packed.mkdir()
    write_packed(pack_path(packed), [(p.name, p.read_bytes()) for p in sorted(faces.glob("*.jpg"))])
    with pytest.raises(UserError, match="unpack") as e:
        run_editor(packed)
    assert e.value.path == pack_path(packed)


@pytest.mark.slow  # imports Keras to look for the model (about 6 s)
def test_the_editor_refuses_a_model_folder_without_an_xseg_model(faces, tmp_path, monkeypatch):
    from mainscripts.xseg_editor import run_editor
    monkeypatch.setattr("core.display.display_problem", lambda: None)
    before = {p.name: p.read_bytes() for p in faces.glob("*.jpg")}
    no_model = tmp_path / "model"
    no_model.mkdir()
    with pytest.raises(UserError, match="XSeg") as e:
        run_editor(faces, no_model)
    assert e.value.path == no_model
    assert {p.name: p.read_bytes() for p in faces.glob("*.jpg")} == before


class HalfMasker:
    """A stand-in for a trained XSeg model: the left half of any face is 'face'."""

    resolution = 256

    def __init__(self) -> None:
        self.calls = 0

    def masks(self, faces: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = np.zeros(faces.shape[:3], np.float32)
        out[:, :, : faces.shape[2] // 2] = 1.0
        return out


def test_overlays_show_the_labels_mask_and_the_trained_mask(faces):
    from mainscripts.xseg_editor import CANVAS, _warp, draw_canvas
    faceset, face_list, labelled = open_faces(faces)
    session = EditorSession(faceset, face_list, labelled)
    view = View(128, CANVAS)
    plain = _warp(session.image, view)
    draw(session.state, SQUARE)
    shown = draw_canvas(session, view).astype(int)
    inside, outside = (slice(300, 400), slice(300, 400)), (slice(700, 760), slice(300, 400))
    assert np.abs(shown[inside] - plain[inside]).mean() > 20  # tinted where the labels include
    assert np.array_equal(shown[outside], plain[outside])
    session.on_key("4")  # the labels' mask alone
    mask_view = draw_canvas(session, view)
    assert mask_view[inside].min() == 255 and mask_view[outside].max() == 0
    session.on_key("4")
    session.on_key("`")  # no model and no baked mask: said, and nothing to overlay
    assert not session.flags.trained_overlay and "no trained mask" in session.state.message

    masker = HalfMasker()
    session = EditorSession(faceset, face_list, labelled, masker=masker)
    session.on_key("`")
    assert session.flags.trained_overlay
    shown = draw_canvas(session, view).astype(int)
    left, right = (slice(300, 400), slice(20, 300)), (slice(300, 400), slice(420, 740))
    assert np.abs(shown[left] - plain[left]).mean() > 20 and np.array_equal(shown[right], plain[right])
    draw_canvas(session, view)
    assert masker.calls == 1  # predicted once per face, not per redraw


def test_key_codes_become_dfl_key_names():
    from core.keys import KeyReader
    keys = KeyReader()
    # OpenCV's Qt backend: Shift arrives as its own press, then the lower-case letter.
    assert [keys.read(c) for c in (0xFFE1, ord("d"), ord("d"))] == [None, "D", "d"]
    assert [keys.read(c) for c in (0xFFFF, 8, 13, 9, 27, 26, -1)] == \
        ["delete", "backspace", "enter", "tab", "esc", "ctrl+z", None]
    assert [keys.read(c) for c in (0xFFE1, ord("z"), ord("`"))] == [None, "Z", "`"]  # Ctrl+Shift+Z: redo


# --- the window, for real ---------------------------------------------------------------------------

def test_window_clicks_draw_a_polygon_that_the_next_face_key_saves(xserver, faces, tmp_path):
    from mainscripts.xseg_editor import CANVAS
    clicks = [(200, 150), (560, 170), (600, 600), (180, 560)]  # window pixels on the 768 px face
    cmd = [sys.executable, str(REPO / "main.py"), "xseg", "editor", "--input-dir", str(faces)]
    with window_process(xserver, cmd, timeout=40.0, log=tmp_path / "editor.log", cwd=REPO) as win:
        wid = win.wait_title(r"^XSeg editor - 1/3 .* - include - polygons 0 points 0 - 0 labelled$")
        for n, (u, v) in enumerate(clicks, 1):
            xserver.xdotool("mousemove", "--window", wid, str(u), str(v))
            xserver.xdotool("click", "1")
            win.wait_title(rf" points {n} drawing {n} \*")
        xserver.xdotool("mousemove", "--window", wid, str(clicks[0][0] + 2), str(clicks[0][1] - 1))
        xserver.xdotool("click", "1")  # on the first point: closes it
        win.wait_title(r" polygons 1 points 4 \* ")
        win.key("d", r"^XSeg editor - 2/3 .* - 1 labelled$")
        win.press("Escape")
        win.wait_exit()
    meta = read_face_meta(sorted(faces.glob("*.jpg"))[0])
    scale = CANVAS / 128
    expected = np.array([((u + 0.5) / scale - 0.5, (v + 0.5) / scale - 0.5) for u, v in clicks], np.float32)
    assert len(meta.seg_ie_polys) == 1 and meta.seg_ie_polys[0]["type"] == INCLUDE
    np.testing.assert_allclose(meta.seg_ie_polys[0]["pts"], expected, atol=1.0 / scale)
    assert read_face_meta(sorted(faces.glob("*.jpg"))[1]).seg_ie_polys is None
    assert "Labels saved on 1 face" in (tmp_path / "editor.log").read_text()

"""The XSeg editor's remaining DFL features: X moves a face to `<dir>_trash` (undone by moving it back),
the strip of neighbouring faces with their label state, and the window's place kept between runs (from
a file that may be damaged or hostile); the window for real under Xvfb."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faceset.face_file import read_face_meta
from mainscripts.xseg_editor_session import EditorSession, open_faces
from tests.facesets import extract_faces, make_frames
from tests.xserver import window_process

REPO = Path(__file__).resolve().parent.parent
SQUARE = [(20.0, 20.0), (100.0, 20.0), (100.0, 100.0), (20.0, 100.0)]


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """Three real aligned faces at 128 px, made by the extractor."""
    root = tmp_path_factory.mktemp("xseg_editor_more")
    files = extract_faces(make_frames("obama.jpg", root / "frames", count=3), root / "aligned", size=128)
    assert len(files) == 3
    return root / "aligned"


@pytest.fixture
def faces(faces_dir, tmp_path) -> Path:
    folder = tmp_path / "ws" / "aligned"
    shutil.copytree(faces_dir, folder)
    return folder


def draw(session: EditorSession, pts) -> None:
    for x, y in [*pts, pts[0]]:  # the last click, on the first point, closes the polygon
        session.state.left_down(x, y, 3.0)
        session.state.left_up(x, y)


def test_x_moves_the_face_to_the_trash_folder_saving_its_labels_and_moving_it_back_restores_it(faces):
    faceset, face_list, labelled = open_faces(faces)
    names = [f.name for f in face_list]
    trash = faces.parent / "aligned_trash"
    session = EditorSession(faceset, face_list, labelled)
    session.on_key("d")
    draw(session, SQUARE)  # drawn on the second face, then X before leaving it
    session.on_key("x")
    assert session.n == 2 and session.face.name == names[2] and session.index == 1
    assert sorted(p.name for p in faces.iterdir()) == [names[0], names[2]]
    moved = trash / names[1]
    assert read_face_meta(moved).seg_ie_polys[0]["pts"].shape == (4, 2)  # the labels went with it
    assert not list(faces.glob(".rename*")) and not (faces / ".renaming").exists()  # the journal is done
    assert "moved to aligned_trash" in session.state.message

    session.on_key("x")  # the last face: the one before it comes up
    assert session.n == 1 and session.face.name == names[0]
    shutil.copy(moved, faces / names[1])  # a second face of the same name goes beside, not over it
    faceset, again, labelled = open_faces(faces)
    session = EditorSession(faceset, again, labelled)
    session.on_key("d")
    session.on_key("x")
    second = trash / f"{Path(names[1]).stem}_1.jpg"
    assert sorted(p.name for p in trash.iterdir()) == sorted([names[1], names[2], second.name])
    session.on_key("x")  # nothing left: the editor ends
    assert session.quit and session.n == 0 and not list(faces.glob("*.jpg"))

    second.unlink()
    for p in trash.iterdir():  # moving them back is the undo
        shutil.move(p, faces / p.name)
    _, restored, labelled = open_faces(faces)
    assert sorted(f.name for f in restored) == sorted(names) and sum(labelled) == 1


def test_x_keeps_a_face_with_a_bad_polygon_until_it_is_fixed(faces):
    faceset, face_list, labelled = open_faces(faces)
    before = face_list[0].path.read_bytes()
    session = EditorSession(faceset, face_list, labelled)
    draw(session, [(20.0, 20.0), (100.0, 100.0), (100.0, 20.0), (20.0, 100.0)])  # crosses itself
    session.on_key("x")
    assert session.n == 3 and face_list[0].path.read_bytes() == before
    assert "crosses itself" in session.state.message and not (faces.parent / "aligned_trash").exists()


def test_the_strip_shows_the_neighbours_with_their_label_state(faces):
    from mainscripts import xseg_editor as ed
    faceset, face_list, labelled = open_faces(faces)
    session = EditorSession(faceset, face_list, labelled)
    assert session.strip() == [None] * 4 + [0, 1, 2, None, None]
    draw(session, SQUARE)
    session.on_key("d")
    assert session.strip() == [None] * 3 + [0, 1, 2, None, None, None]
    thumbs = ed.Thumbnails()
    strip = ed.draw_strip(session, thumbs)
    THUMB = ed.THUMB
    assert strip.shape == (THUMB, 768, 3)

    def frame(slot: int) -> tuple[int, ...]:
        return tuple(int(c) for c in strip[THUMB // 2, slot * THUMB + 1])

    assert frame(3) == ed.LABELLED_COLOUR and frame(4) == ed.CURRENT_COLOUR and frame(5) == ed.UNLABELLED_COLOUR
    assert strip[:, : 3 * THUMB].max() == 16  # nothing before the first face
    inner = strip[3:THUMB - 3, 5 * THUMB + 3:6 * THUMB - 3].astype(float)
    face = thumbs.get(face_list[2]).astype(float)
    assert np.abs(inner - face).mean() < 1.0  # the real face, shrunk


def test_window_settings_are_read_back_and_a_bad_file_is_ignored(tmp_path):
    from mainscripts.xseg_editor import read_geometry, write_geometry
    path = tmp_path / ".xseg_editor_window.json"
    assert read_geometry(path) is None
    write_geometry(path, (120, 80, 700, 820))
    assert read_geometry(path) == (120, 80, 700, 820)
    for text in ("{", "[1, 2, 3, 4]", '{"x": 1, "y": 2, "width": "700", "height": 800}', '{"x": true, "y": 2, '
                 '"width": 700, "height": 800}', '{"x": 1, "y": 2, "width": 10, "height": 800}',
                 '{"x": 1e30, "y": 2, "width": 700, "height": 800}', '{"x": 1, "y": 2, "width": 99999999, "height": 9}',
                 " " * 5000 + "{}"):
        path.write_text(text)
        assert read_geometry(path) is None, text
    write_geometry(tmp_path / "missing" / "w.json", (0, 0, 700, 800))  # cannot be written: a warning only


def test_window_x_key_strip_click_and_the_window_place_kept_between_runs(xserver, faces, tmp_path):
    from mainscripts.xseg_editor import CANVAS, FRAME_H, GEOMETRY_NAME, THUMB
    names = sorted(p.name for p in faces.glob("*.jpg"))
    cmd = [sys.executable, str(REPO / "main.py"), "xseg", "editor", "--input-dir", str(faces)]
    with window_process(xserver, cmd, timeout=40.0, log=tmp_path / "editor1.log", cwd=REPO) as win:
        wid = win.wait_title(r"^XSeg editor - 1/3 ")
        geometry = xserver.xdotool("getwindowgeometry", wid)
        assert f"{CANVAS}x{FRAME_H}" in geometry  # the face at full size: window pixels are canvas pixels
        win.key("x", rf"^XSeg editor - 1/2 {names[1]} ")
        assert (faces.parent / "aligned_trash" / names[0]).is_file()
        xserver.xdotool("mousemove", "--window", wid, str(5 * THUMB + THUMB // 2), str(CANVAS + THUMB // 2))
        xserver.xdotool("click", "1")  # the thumbnail right of the face on screen
        win.wait_title(rf"^XSeg editor - 2/2 {names[2]} ")
        xserver.xdotool("windowsize", wid, str(CANVAS // 2), str(FRAME_H // 2))
        xserver.xdotool("windowmove", wid, "130", "90")
        win.wait_title(r"^XSeg editor - 2/2 ")
        time.sleep(1.0)  # the editor looks at its place about 3 times a second
        win.press("Escape")
        win.wait_exit()
    saved = json.loads((faces.parent / GEOMETRY_NAME).read_text())
    assert (saved["x"], saved["y"]) == (130, 90)
    assert abs(saved["width"] - CANVAS // 2) <= 2 and abs(saved["height"] - FRAME_H // 2) <= 2

    with window_process(xserver, cmd, timeout=40.0, log=tmp_path / "editor2.log", cwd=REPO) as win:
        wid = win.wait_title(r"^XSeg editor - 1/2 ")
        geometry = xserver.xdotool("getwindowgeometry", wid)
        win.press("Escape")
        win.wait_exit()
    assert "Position: 130,90" in geometry and f"Geometry: {saved['width']}x{saved['height']}" in geometry

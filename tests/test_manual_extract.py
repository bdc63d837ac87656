"""The manual extraction window: its rules without a display, then the real window under Xvfb.

The window test runs `run_manual_pass` in a subprocess on a private X server and drives it with
xdotool the way a user would: mouse onto the face, wheel to size the rect, click to lock, Enter,
Space, `,`/`.`, q. The window title names the frame and the lock, so the test waits on the title
after each step instead of guessing sleeps. Truth for the face: dlib-HOG's own box and landmarks on
the same frame (the manual rect uses HOG's box convention, so a rect placed on HOG's box must give
HOG's landmarks).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelib.detected_face import DetectedFace
from facelib.detectors import get_detector
from facelib.landmarks import BOX_FITS, inter_ocular, landmarks, landmarks_from_box
from mainscripts import manual_extract as me
from tests.xserver import window_process

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "faces"
FRAME_H, FRAME_W = 720, 960


def _eyes(points: np.ndarray) -> np.ndarray:
    return np.array([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])


def _state(n: int = 3, **kw) -> me.ManualState:
    return me.start_state(n, centre=(100.0, 100.0), half=50.0, **kw)


# --- pure logic -----------------------------------------------------------------------------


def test_rect_follows_mouse_until_locked_and_comes_back_on_unlock():
    s = me.on_mouse_move(_state(), 200, 150)
    assert s.centre == (200, 150) and s.rect == (150, 100, 250, 200)
    s = me.on_click(s)
    assert s.locked
    s = me.on_mouse_move(s, 300, 300)
    assert s.centre == (200, 150) and s.cursor == (300, 300)
    assert me.on_wheel(s, 120).half == s.half  # a locked rect keeps its size
    s = me.on_click(s)
    assert not s.locked and s.centre == (300, 300)


def test_wheel_steps_like_dfl():
    s = _state()  # half 50: step 5
    assert me.on_wheel(s, 120).half == 55 and me.on_wheel(s, -120).half == 45
    assert me.wheel_step(40) == 1 and me.wheel_step(41) == pytest.approx(4.1)
    assert me.wheel_step(500) == 10 and me.wheel_step(12) == 1
    small = me.start_state(1, centre=(0, 0), half=me.MIN_HALF)
    assert me.on_wheel(small, -120).half == me.MIN_HALF


def test_enter_accepts_space_skips_and_the_last_frame_finishes():
    s = me.on_key(_state(), 13)
    assert s.index == 1 and s.decisions == {0: (50, 50, 150, 150)} and not s.finished
    s = me.on_key(s, 32)
    assert s.index == 2 and s.decisions[1] is None
    s = me.on_key(s, 10)  # LF is Enter too
    assert s.finished and set(s.decisions) == {0, 1, 2}
    assert me.on_key(s, 32) is s  # nothing happens after the end


def test_navigation_keeps_locked_rects_and_leaves_unlocked_frames_undecided():
    s = me.on_key(_state(), ord("."))
    assert s.index == 1 and s.decisions == {}  # unlocked: frame 0 stays undecided
    s = me.on_click(me.on_mouse_move(s, 400, 300))
    s = me.on_key(s, ord(","))
    assert s.index == 0 and s.decisions == {1: (350, 250, 450, 350)}
    assert not s.locked and s.centre == (400, 300)  # frame 0 had nothing: the rect stays where it was
    s = me.on_key(s, ord("."))
    assert s.index == 1 and s.locked and s.rect == (350, 250, 450, 350)  # shown again, locked
    assert me.on_key(me.on_key(_state(), ord(",")), ord(",")).index == 0


def test_an_accepted_frame_is_shown_locked_when_revisited():
    s = me.on_key(me.on_mouse_move(_state(), 220, 180), 13)
    s = me.on_mouse_move(s, 10, 10)
    s = me.on_key(s, ord(","))
    assert s.index == 0 and s.locked and s.centre == (220, 180)


def test_quit_keeps_decisions_and_help_toggles():
    s = me.on_key(me.on_key(_state(), 32), ord("q"))
    assert s.finished and s.decisions == {0: None}
    assert me.on_key(_state(), ord("h")).show_help is False
    assert me.on_key(_state(), 0x270000).decisions == {}  # an unrelated key (Win32 arrow) does nothing


def test_initial_rects_start_locked():
    s = _state(kept={0: (10, 20, 110, 120), 2: (0, 0, 60, 60)})
    assert s.locked and s.centre == (60, 70) and s.half == 50
    s = me.on_key(s, 13)
    assert s.decisions[0] == (10, 20, 110, 120) and not s.locked
    s = me.on_key(s, 32)
    assert s.index == 2 and s.locked and s.half == 30


def test_mouse_events_map_to_transitions():
    s = me._on_mouse_event(_state(), cv2.EVENT_MOUSEMOVE, 30, 40, 0)
    assert s.centre == (30, 40)
    assert me._on_mouse_event(s, cv2.EVENT_MOUSEWHEEL, 30, 40, 7864322).half == 55  # +120 (Qt)
    assert me._on_mouse_event(s, cv2.EVENT_MOUSEWHEEL, 30, 40, -7864318).half == 45  # -120
    assert me._on_mouse_event(s, cv2.EVENT_MOUSEWHEEL, 30, 40, 0xFF880000).half == 45  # unsigned form
    s = me._on_mouse_event(s, cv2.EVENT_LBUTTONDOWN, 35, 45, 1)
    assert s.locked and s.centre == (35, 45)


def test_view_scale_fits_dfl_height_rule_and_width():
    assert me.view_scale((1080, 1920, 3), 1368) == pytest.approx(1368 / 1920)
    assert me.view_scale((720, 960, 3), 1368) == pytest.approx(1368 * 9 / 16 / 720)
    assert me.view_scale((500, 4000, 3), 1368) == pytest.approx(1368 / 4000)  # very wide frame


def test_initial_faces_are_placed_in_the_manual_convention():
    manual = DetectedFace(rect=(1, 2, 3, 4), detector="manual")
    assert me.manual_rect_from_face(manual) == (1, 2, 3, 4)
    cf = DetectedFace(rect=(0, 0, 100, 130), detector="centerface")
    assert me.manual_rect_from_face(cf) == pytest.approx(BOX_FITS["centerface"].apply(cf.rect))


def test_landmarks_on_a_crop_match_the_whole_frame():
    image = cv2.imread(str(FACES / "obama.jpg"))
    face = get_detector("dlib-hog").detect(image)[0]
    whole = landmarks_from_box(image, face.rect)
    assert np.abs(me.predict_landmarks(image, face.rect) - whole).max() < 1.0
    # a "manual" face gets the same points again from the landmark step (identity box fit)
    manual = DetectedFace(rect=face.rect, detector="manual")
    assert np.abs(landmarks(image, manual) - whole).max() < 1e-9


# --- the real window under Xvfb ---------------------------------------------------------------

DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from mainscripts.manual_extract import run_manual_pass
from facelib.detected_face import DetectedFace
initial = {{int(i): DetectedFace(rect=tuple(r), detector="manual")
           for i, r in json.loads({initial!r}).items()}}
result = run_manual_pass([Path(p) for p in sys.argv[2:]], initial=initial)
out = {{str(i): None if f is None else {{"rect": list(f.rect), "landmarks": f.landmarks.tolist(),
        "score": f.score, "detector": f.detector}} for i, f in result.items()}}
Path(sys.argv[1]).write_text(json.dumps(out))
"""


def _letterbox(photo: Path) -> np.ndarray:
    """A FRAME_W x FRAME_H frame with the photo centred at its largest size."""
    image = cv2.imread(str(photo))
    k = min(FRAME_W / image.shape[1], FRAME_H / image.shape[0])
    image = cv2.resize(image, (round(image.shape[1] * k), round(image.shape[0] * k)), interpolation=cv2.INTER_AREA)
    frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    y, x = (FRAME_H - image.shape[0]) // 2, (FRAME_W - image.shape[1]) // 2
    frame[y:y + image.shape[0], x:x + image.shape[1]] = image
    return frame


@pytest.mark.slow
def test_window_driven_with_mouse_and_keys(xserver, tmp_path):
    photos = ["obama.jpg", "grace_hopper.jpg", "astronaut.jpg"]
    paths = []
    for i, photo in enumerate(photos):
        paths.append(tmp_path / f"{i:05d}.png")
        cv2.imwrite(str(paths[-1]), _letterbox(FACES / photo))
    frame0 = cv2.imread(str(paths[0]))  # as the window reads it

    # truth and target: dlib-HOG's box is the manual convention, so aim the rect at it
    hog = get_detector("dlib-hog").detect(frame0)[0]
    true_eyes = _eyes(landmarks(frame0, hog))
    (cx, cy), target_half = me.rect_centre_half(hog.rect)
    start = me.default_half(frame0.shape)
    clicks, half = 0, start
    direction = 1 if target_half > start else -1
    while True:  # wheel clicks that bring the rect closest to the target size
        s = me.on_wheel(me.start_state(1, centre=(0, 0), half=half), 120 * direction)
        if abs(s.half - target_half) >= abs(half - target_half):
            break
        half, clicks = s.half, clicks + 1
    scale = me.view_scale(frame0.shape, 1368)
    view_w, view_h = round(FRAME_W * scale), round(FRAME_H * scale)

    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), initial="{}"))
    result_path = tmp_path / "result.json"
    with window_process(xserver, [sys.executable, str(script), str(result_path), *map(str, paths)]) as win:
        proc = win.proc
        wid = win.wait_title("^Manual pass - frame 1/3 ")
        win.wait_size(view_w, view_h)
        x, y = round(cx * scale), round(cy * scale)
        xserver.xdotool("mousemove", "--window", wid, str(x), str(y))
        time.sleep(0.3)
        if clicks:
            xserver.xdotool("click", "--repeat", str(clicks), "--delay", "40", "4" if direction > 0 else "5")
            time.sleep(0.3)
        xserver.xdotool("click", "1")  # lock: the title says so once every event before it is handled
        win.wait_title("^Manual pass - frame 1/3 .* locked$")
        win.key("Return", "^Manual pass - frame 2/3 [^ ]+$")
        win.key("space", "^Manual pass - frame 3/3 [^ ]+$")
        win.key("comma", "^Manual pass - frame 2/3 [^ ]+$")  # frame 1 had no face: unlocked
        win.key("comma", "^Manual pass - frame 1/3 .* locked$")  # the accepted rect, locked
        win.key("period", "^Manual pass - frame 2/3 [^ ]+$")
        win.key("period", "^Manual pass - frame 3/3 [^ ]+$")
        win.press("q")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(result_path.read_text())

    assert set(result) == {"0", "1"}  # frame 2 was never decided (q)
    assert result["1"] is None
    face = result["0"]
    assert face["detector"] == "manual" and face["score"] == 1.0
    (fx, fy), fhalf = me.rect_centre_half(tuple(face["rect"]))
    assert fhalf == pytest.approx(half)  # exactly the wheel clicks we planned
    assert abs(fx - cx) <= 1.0 / scale + 0.5 and abs(fy - cy) <= 1.0 / scale + 0.5
    points = np.array(face["landmarks"])
    assert points.shape == (68, 2)
    iod = inter_ocular(points)
    error = np.linalg.norm(_eyes(points) - true_eyes, axis=1).max()
    assert error < 0.08 * iod, f"eye centres {error:.1f} px from dlib-HOG's ({iod:.0f} px apart)"


def test_window_starts_locked_on_an_initial_face(xserver, tmp_path):
    """Re-extraction: a face given in `initial` is shown locked, so Enter alone keeps it."""
    paths = []
    for i, photo in enumerate(["grace_hopper.jpg", "obama.jpg"]):
        paths.append(tmp_path / f"{i:05d}.png")
        cv2.imwrite(str(paths[-1]), _letterbox(FACES / photo))
    rect = [350.0, 200.0, 550.0, 400.0]
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), initial=json.dumps({"0": rect})))
    result_path = tmp_path / "result.json"
    with window_process(xserver, [sys.executable, str(script), str(result_path), *map(str, paths)]) as win:
        proc = win.proc
        wid = win.wait_title("^Manual pass - frame 1/2 .* locked$")
        xserver.xdotool("mousemove", "--window", wid, "20", "20")  # a locked rect ignores the mouse
        time.sleep(0.3)
        win.key("Return", "^Manual pass - frame 2/2 [^ ]+$")
        win.press("q")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(result_path.read_text())
    assert list(result) == ["0"] and result["0"]["rect"] == rect

"""Faces placed by hand join the face tracks of a video's frames (issue 17).

`--manual-output-debug-fix` re-extracts frames by hand: a face placed where the track goes takes the
track's id, a face placed elsewhere a new one; the window shows the id live over the rect. The
window's rules are driven headless through its controller (as tests/test_reextract.py does), and the
real window is opened once under Xvfb to see the label drawn.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image
from faceset.face_file import read_face_meta
from mainscripts import manual_extract as me
from mainscripts.extractor import ExtractSettings, extract
from tests.facesets import make_frames
from tests.xserver import window_process

pytestmark = pytest.mark.usefixtures("no_terminal")

REPO = Path(__file__).resolve().parent.parent
SETTINGS = dict(detector="centerface", face_type="wf", image_size=64, workers=0)
ELSEWHERE = (40.0, 40.0, 25.0)  # centre x, y and half side of a rect placed away from the face


def _fake_window(seen: dict):
    """Frame 1: Enter on the pre-placed (old) face. Frame 2: the rect moved ELSEWHERE, locked, Enter.
    Records what `track_of` says for each rect, as the window would show it."""
    def run_manual_pass(frames, *, initial=None, window_size=0, track_of=None):
        kept = {i: me.manual_rect_from_face(f) for i, f in (initial or {}).items()}
        s = me.start_state(len(frames), centre=(0.0, 0.0), half=40.0, kept=kept)
        images = [read_image(f) for f in frames]
        faces = {}

        def face(i, rect):
            return me.DetectedFace(rect=rect, landmarks=me.predict_landmarks(images[i], rect), score=1.0,
                                   detector=me.MANUAL_DETECTOR)
        seen["labels"] = [track_of(0, face(0, s.rect), {})]
        s = me.on_key(s, 13)
        faces[0] = face(0, s.decisions[0])
        x, y, half = ELSEWHERE
        s = me.on_mouse_move(me.on_click(s), x, y)  # unlock, move
        while s.half > half:
            s = me.on_wheel(s, -120)
        s = me.on_click(s)  # lock
        seen["labels"].append(track_of(1, face(1, s.rect), dict(faces)))
        s = me.on_key(s, 13)
        assert s.finished
        return {i: face(i, rect) for i, rect in s.decisions.items()}
    return run_manual_pass


def test_a_face_placed_by_hand_joins_the_track_it_continues_or_starts_one(tmp_path, monkeypatch):
    make_frames("obama.jpg", tmp_path / "frames", count=5, seed=2)
    out = tmp_path / "aligned"
    extract(tmp_path / "frames", out, ExtractSettings(**SETTINGS, output_debug=True))
    assert {read_face_meta(p).track_id for p in out.glob("*.jpg")} == {0}
    debug = tmp_path / "aligned_debug"
    (debug / "00003.jpg").unlink()  # between tracked frames: the same face again
    (debug / "00005.jpg").unlink()  # here the user puts the face somewhere else

    seen: dict = {}
    monkeypatch.setattr(me, "run_manual_pass", _fake_window(seen))
    monkeypatch.setattr("core.display.display_problem", lambda: None)
    stats = extract(tmp_path / "frames", out, ExtractSettings(**SETTINGS, manual_output_debug_fix=True))

    assert stats["reextracted"] == 2
    assert seen["labels"] == [0, None]  # what the window shows: track 0, then a new track
    ids = {p.name: read_face_meta(p).track_id for p in sorted(out.glob("*.jpg"))}
    assert ids == {"00001_0.jpg": 0, "00002_0.jpg": 0, "00003_0.jpg": 0, "00004_0.jpg": 0, "00005_0.jpg": 1}
    rect = read_face_meta(out / "00005_0.jpg").source_rect
    assert abs((rect[0] + rect[2]) / 2 - ELSEWHERE[0]) <= 1  # the face really is the one placed elsewhere


DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import cv2
from mainscripts import manual_extract as me
from facelib.detected_face import DetectedFace
shown, asked = [], []
real_imshow = cv2.imshow
cv2.imshow = lambda name, image: (shown.append(image), real_imshow(name, image))[1]
def track_of(index, face, others):
    asked.append([index, list(face.rect), sorted(others)])
    return 7
rect = {rect!r}
result = me.run_manual_pass([Path(sys.argv[2])], initial={{0: DetectedFace(rect=tuple(rect), detector="manual")}},
                            track_of=track_of)
cv2.imwrite(sys.argv[1] + ".png", shown[-1])
Path(sys.argv[1]).write_text(json.dumps({{"asked": asked, "accepted": sorted(result)}}))
"""


def test_the_window_shows_the_track_id_over_the_rect(xserver, tmp_path):
    frame = tmp_path / "00001.png"
    cv2.imwrite(str(frame), np.full((480, 640, 3), 90, np.uint8))  # grey: nothing else on it is yellow
    rect = [250.0, 150.0, 410.0, 310.0]
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), rect=rect))
    result_path = tmp_path / "result.json"
    with window_process(xserver, [sys.executable, str(script), str(result_path), str(frame)]) as win:
        win.wait_title("^Manual pass - frame 1/1 .* locked$")
        win.press("q")
        _, err = win.proc.communicate(timeout=30)
    assert win.proc.returncode == 0, err
    result = json.loads(result_path.read_text())
    assert result["asked"][0] == [0, rect, []] and result["accepted"] == []
    shown = cv2.imread(str(result_path) + ".png")
    scale = me.view_scale((480, 640), 1368)
    x0, y0 = round(rect[0] * scale), round(rect[1] * scale)
    band = shown[max(0, y0 - 40):y0, x0:x0 + 160].astype(int)  # where "track 7" is written
    yellow = (band[..., 0] < 100) & (band[..., 1] > 180) & (band[..., 2] > 180)
    assert yellow.sum() > 30
    assert not ((shown[..., 0] < 100) & (shown[..., 1] > 180) & (shown[..., 2] > 180))[y0 + 5:].any()


def test_manual_fix_faces_join_the_track_around_them(tmp_path, monkeypatch):
    """`--manual-fix`: the detector misses the face in frame 3 and following it fails too, so the frame
    goes to the window; the face placed there by hand continues track 0."""
    from facelib import tracks
    from mainscripts import extract_stages as st

    make_frames("obama.jpg", tmp_path / "frames", count=5, seed=2)
    truth = {}
    real = st.FrameExtractor.find_faces

    def find_faces(self, image):
        found, rejected = real(self, image)
        if image is missed_frame or np.array_equal(image, missed_frame):
            truth["face"] = found[0].face
            return [], rejected
        return found, rejected
    missed_frame = read_image(tmp_path / "frames" / "00003.png")
    monkeypatch.setattr(st.FrameExtractor, "find_faces", find_faces)
    monkeypatch.setattr(tracks, "follow", lambda *a: None)

    def run_manual_pass(frames, *, initial=None, window_size=0, track_of=None):
        assert [Path(f).name for f in frames] == ["00003.png"]
        rect = me.manual_rect_from_face(truth["face"])
        face = me.DetectedFace(rect=rect, landmarks=me.predict_landmarks(read_image(frames[0]), rect), score=1.0,
                               detector=me.MANUAL_DETECTOR)
        assert track_of(0, face, {}) == 0  # shown as "track 0"
        return {0: face}
    monkeypatch.setattr(me, "run_manual_pass", run_manual_pass)
    monkeypatch.setattr("core.display.display_problem", lambda: None)
    stats = extract(tmp_path / "frames", tmp_path / "aligned", ExtractSettings(**SETTINGS, manual_fix=True))
    assert stats["faces"] == 5 and stats["tracks"] == 1
    ids = {p.name: read_face_meta(p).track_id for p in sorted((tmp_path / "aligned").glob("*.jpg"))}
    assert ids == {f"{n:05d}_0.jpg": 0 for n in range(1, 6)}

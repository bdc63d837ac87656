"""Face detection, rotation search and landmarks on real photos (tests/data, see ORIGIN.md).

Truth for the single-face photos: eye centres checked by hand. They were first read off dlib's
68-point landmarks (mean of points 36-41 and 42-47), then drawn as crosses on 8x enlarged eye crops
and looked at: each cross sits on the pupil (obama2 and biden are not used here). They are written
as whole pixels, so they are good to about 2 px.
Truth for the crowd photos: dlib's own XML landmarks shipped with its examples.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from facelib import model_files
from facelib.detected_face import DetectedFace
from facelib.detectors import detect, detector_names, get_detector
from facelib.landmarks import inter_ocular, landmarks
from facelib.rotation import rotate_image, rotate_points, rotate_rect, unrotate_points

DATA = Path(__file__).parent / "data"
NAMES = ["centerface", "dlib-hog"]

# (left-in-image eye, right-in-image eye), hand-checked as described above
EYES = {
    "obama.jpg": ((444, 216), (548, 215)),
    "grace_hopper.jpg": ((224, 192), (305, 189)),
    "astronaut.jpg": ((203, 102), (246, 104)),
}


def _image(name: str) -> np.ndarray:
    image = cv2.imread(str(DATA / "faces" / name))
    assert image is not None, name
    return image


def _eye_centres(points: np.ndarray) -> np.ndarray:
    return np.array([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])


def _contains(face: DetectedFace, xy) -> bool:
    l, t, r, b = face.rect
    return l <= xy[0] <= r and t <= xy[1] <= b


def test_both_detectors_are_registered():
    assert set(NAMES) <= set(detector_names())
    with pytest.raises(UserError):
        get_detector("no-such-detector")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("photo", sorted(EYES))
def test_single_face_found_where_the_eyes_are(name, photo):
    image = _image(photo)
    eyes = np.array(EYES[photo], dtype=float)
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    faces = get_detector(name).detect(image)
    if name == "centerface":
        assert len(faces) == 1
    # dlib-hog also fires at 0.16 on the astronaut's suit badge (a known false positive)
    hits = [f for f in faces if _contains(f, eyes[0]) and _contains(f, eyes[1])]
    assert len(hits) == 1
    face = hits[0]
    assert abs(face.centre[0] - eyes.mean(axis=0)[0]) < 0.5 * iod
    assert 1.5 * iod < face.width < 4.0 * iod
    assert face.rotation == 0 and face.detector == name
    # the whole chain: the predictor's eye centres from this box land on the hand-checked ones
    points = landmarks(image, face)
    assert points.shape == (68, 2)
    assert np.linalg.norm(_eye_centres(points) - eyes, axis=1).max() < 0.1 * iod


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("turn", [90, 180, 270])
def test_turned_frame_yields_the_face_mapped_back(name, turn):
    image = _image("obama.jpg")
    detector = get_detector(name)
    upright = detector.detect(image)[0]
    turned = rotate_image(image, turn)
    faces = detector.detect(turned)
    assert len(faces) == 1
    face = faces[0]
    assert face.rotation == (360 - turn) % 360  # the frame had to be turned back to be upright
    # the rect, taken back to the original orientation, is the upright detection's rect
    back = rotate_rect(face.rect, face.rotation, turned.shape)
    assert np.abs(np.subtract(back, upright.rect)).max() < 0.05 * upright.width
    # landmarks on the turned frame, turned back, hit the hand-checked eyes
    points = rotate_points(landmarks(turned, face), face.rotation, turned.shape)
    eyes = np.array(EYES["obama.jpg"], dtype=float)
    assert np.linalg.norm(_eye_centres(points) - eyes, axis=1).max() < 0.1 * np.linalg.norm(eyes[1] - eyes[0])


@pytest.mark.parametrize("name", NAMES)
def test_max_faces_keeps_the_largest(name):
    image = cv2.imread(str(DATA / "dlib_faces" / "2007_007763.jpg"))  # 7 faces, 37-45 px
    every = get_detector(name, min_face=20).detect(image)
    assert len(every) >= 5
    areas = [f.area for f in every]
    assert areas == sorted(areas, reverse=True)
    top3 = get_detector(name, min_face=20, max_faces=3).detect(image)
    assert [f.rect for f in top3] == [f.rect for f in every[:3]]
    assert get_detector(name, min_face=60).detect(image) == []  # minimum face size filter


def _xml_faces():
    for xml in sorted((DATA / "dlib_faces").glob("*_with_face_landmarks.xml")):
        for image in ET.parse(xml).getroot().iter("image"):
            for box in image.iter("box"):
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                yield image.get("file"), np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])


@pytest.mark.parametrize("name", NAMES)
def test_landmarks_agree_with_dlib_xml(name):
    """Detector box -> predictor reproduces dlib's published landmarks on the crowd photos."""
    detector = get_detector(name, min_face=20)
    by_file: dict[str, list[np.ndarray]] = {}
    for file, points in _xml_faces():
        by_file.setdefault(file, []).append(points)
    errors = []
    for file, truths in by_file.items():
        image = cv2.imread(str(DATA / "dlib_faces" / file))
        faces = detector.detect(image)
        for truth in truths:
            centre = truth.mean(axis=0)
            near = [f for f in faces if _contains(f, centre)]
            if not near:
                errors.append(np.inf)
                continue
            face = min(near, key=lambda f: np.hypot(*np.subtract(f.centre, centre)))
            points = landmarks(image, face)
            errors.append(np.linalg.norm(points - truth, axis=1).mean() / inter_ocular(truth))
    errors = np.array(errors)
    assert np.mean(np.isfinite(errors)) >= 0.95  # measured: 43/43 for both
    found = errors[np.isfinite(errors)]
    # measured: mean 2.6% (hog) / 3.2% (centerface) of the inter-ocular distance
    assert np.median(found) < 0.04
    assert np.mean(found) < 0.06


@pytest.mark.parametrize("name", NAMES)
def test_no_face_in_flat_or_noise_frames(name):
    flat = np.full((480, 640, 3), 128, np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    detector = get_detector(name)
    assert detector.detect(flat) == []
    assert detector.detect(noise) == []


def test_plain_detect_accepts_grey_frames():
    grey = cv2.cvtColor(_image("grace_hopper.jpg"), cv2.COLOR_BGR2GRAY)
    faces = detect(grey)
    assert len(faces) == 1 and faces[0].detector == "centerface"


def test_rotation_helpers_match_cv2_rotate():
    image = np.zeros((30, 50), np.uint8)
    image[7, 11] = 255  # pixel centre at (11.5, 7.5)
    for turn in (0, 90, 180, 270):
        turned = rotate_image(image, turn)
        y, x = np.argwhere(turned == 255)[0]
        moved = rotate_points(np.array([[11.5, 7.5]]), turn, image.shape)[0]
        assert np.allclose(moved, (x + 0.5, y + 0.5))
        assert np.allclose(unrotate_points(moved, turn, image.shape), [[11.5, 7.5]])


def test_model_files_found_without_importing_their_packages():
    for path in (model_files.shape_predictor_68(), model_files.face_recognition_resnet(),
                 model_files.mmod_face_detector(), model_files.centerface()):
        assert path.is_file() and path.stat().st_size > 1000
    assert "face_recognition_models" not in sys.modules
    with pytest.raises(ValueError):
        model_files.model_path("nope")


def test_missing_model_package_is_a_user_error(monkeypatch):
    monkeypatch.setitem(model_files._MODELS, "ghost", ("no_such_package_xyz", "ghost.dat"))
    with pytest.raises(UserError, match="install requirements.txt"):
        model_files.model_path("ghost")

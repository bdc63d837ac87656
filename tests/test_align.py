"""Crop geometry: matrices against closed-form expectations, padding order, rotation, real faces."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from facelib.align import MEAN_FACE_UNIT, align, compose_affine, invert_affine, transform_points
from facelib.crop import CropSpec, landmarks_to_rect
from facelib.face_type import FaceType

DATA = Path(__file__).parent / "data"
SQRT2 = math.sqrt(2.0)
# DFL's padding per face type, restated from DFL's LandmarksProcessor.get_transform_mat (not read from our code).
PAD = {
    FaceType.HALF: 0.0, FaceType.MID_FULL: 0.0675, FaceType.FULL: 0.2109375,
    FaceType.FULL_NO_ALIGN: 0.2109375, FaceType.WHOLE_FACE: 0.40, FaceType.HEAD: 0.70,
    FaceType.HEAD_NO_ALIGN: 0.70,
}
ALIGNED = [FaceType.HALF, FaceType.MID_FULL, FaceType.FULL, FaceType.WHOLE_FACE, FaceType.HEAD]
UPRIGHT = [FaceType.FULL_NO_ALIGN, FaceType.HEAD_NO_ALIGN]


def _rot(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _unit_face(jaw_shift: float = 0.0) -> np.ndarray:
    """68 points in the mean face's unit square: the DFL template where it is defined, a jaw
    mirror-symmetric about the nose line (x = 0.490127) elsewhere; `jaw_shift` moves the face's
    right jaw (points 0..2) outwards to fake a head turn."""
    pts = np.zeros((68, 2))
    pts[17:49] = MEAN_FACE_UNIT[:32]
    pts[54] = MEAN_FACE_UNIT[32]
    mid = 0.490127
    for i in range(17):
        t = i / 16 * math.pi
        dx = -0.5 * math.cos(t)
        pts[i] = (mid + dx, 0.3 + 0.6 * math.sin(t))
    pts[0:3, 0] -= jaw_shift
    for i in (49, 50, 51, 52, 53, *range(55, 68)):
        pts[i] = (mid + 0.1 * math.cos(i), 0.8 + 0.05 * math.sin(i))
    return pts


def _place(unit_pts: np.ndarray, k: float, deg: float, b) -> np.ndarray:
    """A known similarity: frame = k * R(deg) @ unit + b."""
    return unit_pts @ (k * _rot(deg)).T + np.asarray(b, float)


def _expected(size, face_type, k, deg, b, scale=1.0, yaw=0.0) -> np.ndarray:
    """The crop matrix in closed form, from DFL's rule: in the unit square the crop is a square of
    side (1 + 2*sqrt(2)*padding)/scale around a centre that whole_face moves up by 0.07 and head
    moves up by 0.5 and sideways by yaw*|tanh(2*yaw)|/2; the no_align types keep that square but
    upright in the frame."""
    side = (1 + 2 * SQRT2 * PAD[face_type]) / scale
    c = np.array([0.5, 0.5])
    if face_type == FaceType.WHOLE_FACE:
        c[1] -= 0.07
    if face_type == FaceType.HEAD:
        c += (yaw * abs(math.tanh(2 * yaw)) / 2, -0.5)
    s = size / side
    r = _rot(deg)
    if face_type in UPRIGHT:
        # crop = s/k * (x - centre_in_frame) + size/2
        centre = k * r @ c + b
        return np.hstack([np.eye(2) * s / k, (-s / k * centre + size / 2)[:, None]])
    # frame -> unit is u = R^T (x - b) / k; crop = s * (u - c) + size/2
    a = s * r.T / k
    return np.hstack([a, (-a @ np.asarray(b, float) - s * c + size / 2)[:, None]])


def _dlib_faces() -> list[tuple[str, np.ndarray]]:
    root = ET.parse(DATA / "dlib_faces" / "testing_with_face_landmarks.xml").getroot()
    faces = []
    for image in root.iter("image"):
        for box in image.iter("box"):
            parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
            if len(parts) == 68:
                faces.append((image.get("file"), np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])))
    assert len(faces) >= 20
    return faces


# ---- face types -------------------------------------------------------------------------------


def test_face_type_names_order_and_codes():
    assert FaceType.HALF < FaceType.MID_FULL < FaceType.FULL < FaceType.FULL_NO_ALIGN < FaceType.WHOLE_FACE
    assert FaceType.WHOLE_FACE < FaceType.HEAD < FaceType.HEAD_NO_ALIGN < FaceType.MARK_ONLY
    assert [int(t) for t in FaceType] == [0, 1, 2, 3, 4, 10, 20, 100]
    names = "half_face midfull_face full_face full_face_no_align whole_face head head_no_align mark_only"
    for t, name in zip(FaceType, names.split()):
        assert t.long_name == name == str(t)
        assert FaceType.from_string(name) is t
    for code, t in {"h": FaceType.HALF, "mf": FaceType.MID_FULL, "f": FaceType.FULL,
                    "wf": FaceType.WHOLE_FACE, "head": FaceType.HEAD}.items():
        assert FaceType.from_string(code) is t and t.short_name == code
    assert FaceType.from_string(" WF ") is FaceType.WHOLE_FACE
    with pytest.raises(UserError, match="unknown face type"):
        FaceType.from_string("wholeface")


# ---- closed-form matrices ---------------------------------------------------------------------


def test_template_is_dfls_mean_face():
    assert MEAN_FACE_UNIT.shape == (33, 2)
    np.testing.assert_allclose(MEAN_FACE_UNIT[0], [0.000213256, 0.106454])  # point 17
    np.testing.assert_allclose(MEAN_FACE_UNIT[19], [0.121737, 0.216423])  # point 36
    np.testing.assert_allclose(MEAN_FACE_UNIT[32], [0.726104, 0.780233])  # point 54


@pytest.mark.parametrize("face_type", ALIGNED + UPRIGHT)
@pytest.mark.parametrize("k, deg, b, size, scale", [
    (180.0, 17.0, (320.0, 240.0), 256, 1.0),
    (95.5, -40.0, (1000.0, 33.0), 128, 1.0),
    (300.0, 5.0, (12.0, 700.0), 512, 1.3),
])
def test_matrix_matches_closed_form(face_type, k, deg, b, size, scale):
    lm = _place(_unit_face(), k, deg, b)
    mat = align(lm, size, face_type, scale)
    assert mat.shape == (2, 3)
    np.testing.assert_allclose(mat, _expected(size, face_type, k, deg, b, scale), rtol=1e-9, atol=1e-7)


def test_half_face_is_the_unit_square():
    # The simplest case by hand: a face at scale 100, offset (50, 50), no rotation.
    mat = align(_place(_unit_face(), 100.0, 0.0, (50.0, 50.0)), 256, FaceType.HALF)
    np.testing.assert_allclose(mat, [[2.56, 0, -128], [0, 2.56, -128]], atol=1e-9)


def test_head_follows_yaw():
    shift = 0.3
    unit = _unit_face(jaw_shift=shift)
    # DFL's yaw: right minus left width from the nose bridge (27..29) to the jaw (0..2 / 16..14)
    left = np.mean([unit[27 + i, 0] - unit[i, 0] for i in range(3)])
    right = np.mean([unit[16 - i, 0] - unit[27 + i, 0] for i in range(3)])
    yaw = right - left
    assert yaw == pytest.approx(-shift)  # the right jaw moved out: left width grows
    k, deg, b = 150.0, 25.0, (400.0, 300.0)
    mat = align(_place(unit, k, deg, b), 256, FaceType.HEAD)
    np.testing.assert_allclose(mat, _expected(256, FaceType.HEAD, k, deg, b, yaw=yaw), rtol=1e-9, atol=1e-7)
    frontal = align(_place(_unit_face(), k, deg, b), 256, FaceType.HEAD)
    assert not np.allclose(mat, frontal)


def test_mark_only_has_no_crop():
    with pytest.raises(ValueError):
        align(_place(_unit_face(), 100.0, 0.0, (0.0, 0.0)), 256, FaceType.MARK_ONLY)


def test_transform_points_and_rect():
    lm = _place(_unit_face(), 120.0, 30.0, (300.0, 200.0))
    mat = align(lm, 256, FaceType.FULL)
    there = transform_points(lm, mat)
    np.testing.assert_allclose(transform_points(there, mat, invert=True), lm, atol=1e-9)
    assert transform_points(lm[0], mat).shape == (2,)
    # the rect is the upright full-face square around the unit square's centre
    l, t, r, b = landmarks_to_rect(lm)
    half = 120.0 * (1 + 2 * SQRT2 * PAD[FaceType.FULL]) / 2
    cx, cy = 120.0 * _rot(30.0) @ (0.5, 0.5) + (300.0, 200.0)
    np.testing.assert_allclose([l, t, r, b], [cx - half, cy - half, cx + half, cy + half], atol=1e-7)


def test_compose_affine_applies_inner_then_outer():
    lm = _place(_unit_face(), 120.0, 30.0, (300.0, 200.0))
    outer, inner = align(lm, 256, FaceType.FULL), align(lm, 128, FaceType.HEAD, 1.3)
    pts = np.random.default_rng(1).uniform(-100, 500, (20, 2))
    both = compose_affine(outer, inner)
    np.testing.assert_allclose(transform_points(pts, both), transform_points(transform_points(pts, inner), outer), atol=1e-9)
    np.testing.assert_allclose(compose_affine(inner, invert_affine(inner)), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def _frame_area(mat: np.ndarray, size: int) -> float:
    return size * size / abs(np.linalg.det(mat[:, :2]))


def test_padding_order():
    for _, lm in _dlib_faces():
        area = {t: _frame_area(align(lm, 256, t), 256) for t in PAD}
        ordered = [area[t] for t in ALIGNED]
        assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
        assert area[FaceType.FULL_NO_ALIGN] == pytest.approx(area[FaceType.FULL])
        assert area[FaceType.HEAD_NO_ALIGN] == pytest.approx(area[FaceType.HEAD])


@pytest.mark.parametrize("face_type", ALIGNED)
def test_rotation_invariance(face_type):
    r = _rot(30.0)
    pivot = np.array([250.0, 180.0])
    for _, lm in _dlib_faces()[:8]:
        rotated = (lm - pivot) @ r.T + pivot
        mat, mat_r = align(lm, 256, face_type), align(rotated, 256, face_type)
        # the crop sees the same face: same crop coordinates, matrix turned by the rotation
        np.testing.assert_allclose(transform_points(rotated, mat_r), transform_points(lm, mat), atol=1e-6)
        np.testing.assert_allclose(mat_r[:, :2], mat[:, :2] @ r.T, atol=1e-9)


@pytest.mark.parametrize("face_type", UPRIGHT)
def test_no_align_stays_upright_under_rotation(face_type):
    for _, lm in _dlib_faces()[:8]:
        rotated = (lm - lm.mean(0)) @ _rot(30.0).T + lm.mean(0)
        mat = align(rotated, 256, face_type)
        assert abs(mat[0, 1]) < 1e-12 and abs(mat[1, 0]) < 1e-12 and mat[0, 0] == pytest.approx(mat[1, 1])
        same_area = _frame_area(align(lm, 256, face_type), 256)
        assert _frame_area(mat, 256) == pytest.approx(same_area)


# ---- a real photo -----------------------------------------------------------------------------


def test_full_face_puts_eyes_where_the_mean_face_has_them():
    side = 1 + 2 * SQRT2 * PAD[FaceType.FULL]
    # eye centres of the mean face (points 36..41 and 42..47), mapped into the padded square
    want_r = (MEAN_FACE_UNIT[19:25].mean(0) - 0.5) * 256 / side + 128
    want_l = (MEAN_FACE_UNIT[25:31].mean(0) - 0.5) * 256 / side + 128
    assert want_r == pytest.approx([84.4, 82.1], abs=0.5) and want_l == pytest.approx([169.3, 82.1], abs=0.5)
    errors = []
    for _, lm in _dlib_faces():
        pts = transform_points(lm, align(lm, 256, FaceType.FULL))
        for got, want in ((pts[36:42].mean(0), want_r), (pts[42:48].mean(0), want_l)):
            errors.append(np.linalg.norm(got - want))
    assert max(errors) < 16 and np.mean(errors) < 5  # real faces differ from the mean face a little


def test_crop_of_rotated_photo_matches():
    name, lm = max(_dlib_faces(), key=lambda f: np.ptp(f[1][:, 0]))  # the biggest face
    image = cv2.imread(str(DATA / "dlib_faces" / name))
    assert image is not None
    face = CropSpec(128, FaceType.FULL).of(lm).warp(image)
    assert face.shape == (128, 128, 3) and face.dtype == np.uint8
    # rotate the whole photo by 30 degrees about the face; the aligned crop should barely change
    centre = tuple(float(v) for v in lm.mean(0))
    rot = cv2.getRotationMatrix2D(centre, 30.0, 1.0)
    h, w = image.shape[:2]
    rotated = cv2.warpAffine(image, rot, (w, h), flags=cv2.INTER_LANCZOS4)
    face_r = CropSpec(128, FaceType.FULL).of(transform_points(lm, rot)).warp(rotated)
    diff = np.abs(face.astype(float) - face_r.astype(float))[16:-16, 16:-16].mean()
    assert diff < 12, diff
    assert face[32:96, 32:96].std() > 10  # a real face in the middle, not a black border

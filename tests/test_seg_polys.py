"""XSeg label checks (facelib/seg_polys.py) on labels drawn from real faces' landmarks: a hull around
the face (include) and a box over the mouth (exclude), then the ways users' labels go wrong."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelib.masks import polygons_mask
from facelib.seg_polys import (
    MAX_POINTS,
    count_labels,
    has_labels,
    label_problems,
    polygon_problem,
    scale_polys,
    transform_polys,
)
from faceset.face_file import load_aligned_face
from tests.facesets import make_faceset

SIZE = 256


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """A real aligned face at 256 px and its 68 landmarks."""
    files = make_faceset(["obama.jpg"], tmp_path_factory.mktemp("segface"), per_photo=1, size=SIZE)
    image, meta = load_aligned_face(files[0])
    return image, meta.landmarks


def face_labels(landmarks: np.ndarray) -> list[dict]:
    hull = cv2.convexHull(landmarks.astype(np.float32)).reshape(-1, 2)
    (x0, y0), (x1, y1) = landmarks[48:60].min(axis=0) - 3, landmarks[48:60].max(axis=0) + 3
    mouth = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return [{"type": 1, "pts": hull}, {"type": 0, "pts": mouth}]


def naive_crosses(pts: np.ndarray) -> bool:
    """Reference: every pair of non-adjacent edges, one at a time."""
    def turn(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return int(v > 0) - int(v < 0)
    n = len(pts)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            p1, p2, p3, p4 = pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]
            if turn(p3, p4, p1) * turn(p3, p4, p2) < 0 and turn(p1, p2, p3) * turn(p1, p2, p4) < 0:
                return True
    return False


def test_labels_drawn_on_the_face_are_fine_and_counted(face):
    polys = face_labels(face[1])
    assert label_problems(polys, SIZE) == []
    assert count_labels(polys) == (1, 1) and has_labels(polys)
    assert not has_labels([]) and not has_labels(None) and not has_labels([{"type": 1, "pts": np.zeros((0, 2))}])
    mask = polygons_mask((SIZE, SIZE), polys)
    mouth = face[1][48:60].mean(axis=0).round().astype(int)
    nose = face[1][30].round().astype(int)
    assert mask[nose[1], nose[0]] == 1.0 and mask[mouth[1], mouth[0]] == 0.0


def test_too_few_points_is_named_with_its_polygon(face):
    polys = face_labels(face[1])
    polys.append({"type": 0, "pts": face[1][[48, 54]]})
    assert label_problems(polys, SIZE) == ["label polygon 3 (exclude) has 2 points (a polygon needs 3)"]
    assert polygon_problem(face[1][:1]) == "has 1 point (a polygon needs 3)"


def test_a_polygon_crossing_itself_is_found(face):
    polys = face_labels(face[1])
    box = polys[1]["pts"]
    polys[1]["pts"] = box[[0, 2, 1, 3]]  # two corners swapped: a bow tie over the mouth
    assert label_problems(polys, SIZE) == ["label polygon 2 (exclude) crosses itself"]
    hull = polys[0]["pts"]
    k = len(hull) // 2
    twisted = np.concatenate([hull[:k][::-1], hull[k:]])  # half the outline walked backwards
    assert polygon_problem(twisted, SIZE) == "crosses itself"


def test_touching_or_doubled_points_are_not_crossings():
    square = np.array([[10, 10], [60, 10], [60, 60], [10, 60]], np.float32)
    assert polygon_problem(np.insert(square, 1, square[0], axis=0), SIZE) is None  # a repeated point
    notch = np.array([[10, 10], [60, 10], [60, 60], [35, 10.0], [10, 60]], np.float32)  # touches an edge
    assert polygon_problem(notch, SIZE) is None


def test_zero_area_is_a_problem(face):
    line = np.stack([np.linspace(20, 200, 5), np.linspace(30, 120, 5)], axis=1)
    assert polygon_problem(line, SIZE) == "has zero area (its points lie on one line)"
    assert polygon_problem(np.repeat(face[1][30:31], 4, axis=0), SIZE) == "has zero area (its points lie on one line)"


def test_labels_of_a_face_of_another_size_are_caught(face):
    made_at_512 = scale_polys(face_labels(face[1]), 2.0)
    problems = label_problems(made_at_512, SIZE)
    assert problems and all("outside the 256 px face (labels made on a face of another size?)" in p for p in problems)
    assert label_problems(made_at_512, 2 * SIZE) == []
    # DFL's editor lets a point go past the border so that a mask reaches it: that is fine
    edge = np.array([[-20, -10], [SIZE + 15, -10], [SIZE + 15, 100], [-20, 100]], np.float32)
    assert polygon_problem(edge, SIZE) is None
    away = np.array([[SIZE + 5, 10], [SIZE + 60, 10], [SIZE + 60, 60]], np.float32)  # beside the face
    assert "outside" in polygon_problem(away, SIZE)


def test_crossing_test_agrees_with_a_pair_by_pair_check():
    rng = np.random.default_rng(7)
    crossing = 0
    for _ in range(300):
        pts = rng.uniform(0, SIZE, (int(rng.integers(4, 12)), 2)).round(0)
        found = polygon_problem(pts, SIZE) == "crosses itself"
        crossing += found
        assert found == naive_crosses(pts), pts.tolist()
    assert 50 < crossing < 300  # both kinds were tried


def test_long_outlines_are_checked_in_blocks():
    t = np.linspace(0, 2 * np.pi, 1500, endpoint=False)
    ring = np.stack([128 + 100 * np.cos(t), 128 + 90 * np.sin(t)], axis=1)
    assert polygon_problem(ring, SIZE) is None
    ring[[100, 1300]] = ring[[1300, 100]]  # two far-apart points swapped: edges cross
    assert polygon_problem(ring, SIZE) == "crosses itself"
    assert polygon_problem(np.zeros((MAX_POINTS + 1, 2)), SIZE) == f"has {MAX_POINTS + 1} points (at most {MAX_POINTS})"


def test_scaled_labels_cover_the_resized_face_as_before(face):
    image, landmarks = face
    polys = face_labels(landmarks)
    mask = polygons_mask((SIZE, SIZE), polys)
    half = polygons_mask((SIZE // 2, SIZE // 2), scale_polys(polys, 0.5))
    resized = cv2.resize(mask, (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_AREA) >= 0.5
    iou = np.logical_and(half >= 0.5, resized).sum() / np.logical_or(half >= 0.5, resized).sum()
    assert iou > 0.95  # the rest is pixels along the outline, rasterised at another size
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    moved = transform_polys(polys, shift)
    assert all(p["pts"].dtype == np.float32 for p in moved)
    np.testing.assert_allclose(moved[0]["pts"], polys[0]["pts"] + [5.0, -3.0], atol=1e-4)


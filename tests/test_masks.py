"""facelib/masks.py on a real extracted face: hull, eye and mouth regions, polygons, mask priority."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from facelib.masks import eyes_mask, eyes_mouth_mask, face_mask, hull_mask, polygons_mask
from faceset.face_file import load_aligned_face, read_face_meta, update_face_meta
from tests.facesets import make_faceset


@pytest.fixture(scope="module")
def real_face(tmp_path_factory):
    """(image, meta) of a real full_face crop at 128 px, made by the extractor."""
    path = make_faceset(["obama.jpg"], tmp_path_factory.mktemp("masks"), per_photo=1, size=128,
                        face_type="full_face")[0]
    return path, *load_aligned_face(path)


def _at(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.rint(np.asarray(pts)).astype(int)
    h, w = mask.shape
    return mask[np.clip(pts[:, 1], 0, h - 1), np.clip(pts[:, 0], 0, w - 1)]


def test_hull_covers_the_face_and_the_forehead_not_the_corners(real_face):
    _path, image, meta = real_face
    lm = meta.landmarks
    mask = hull_mask(image.shape[:2], lm)
    assert mask.dtype == np.float32 and mask.shape == (128, 128) and set(np.unique(mask)) == {0.0, 1.0}
    assert _at(mask, lm[17:68]).min() == 1.0  # brows, nose, eyes, mouth
    assert _at(mask, lm[0:17]).mean() > 0.9  # the jaw line is the outline
    corners = mask[:12, :12], mask[:12, -12:], mask[-12:, :12], mask[-12:, -12:]
    assert all(c.max() == 0.0 for c in corners)
    # the forehead just above each brow (a quarter of the brow-to-eye distance) is inside
    above = np.array([lm[19] + 0.25 * (lm[19] - lm[37]), lm[24] + 0.25 * (lm[24] - lm[44])])
    assert _at(mask, above).min() == 1.0
    assert 0.25 < mask.mean() < 0.75


def test_eyebrows_expand_mod_raises_the_top(real_face):
    _path, image, meta = real_face
    lm = meta.landmarks
    flat = hull_mask(image.shape[:2], lm, eyebrows_expand_mod=0.0)
    normal = hull_mask(image.shape[:2], lm, eyebrows_expand_mod=1.0)
    high = hull_mask(image.shape[:2], lm, eyebrows_expand_mod=2.0)
    assert flat.sum() < normal.sum() < high.sum()
    assert np.all(normal >= flat) and np.all(high >= normal)  # only grows, and only at the top
    below_eyes = int(lm[[0, 16], 1].max()) + 2
    assert np.array_equal(flat[below_eyes:], normal[below_eyes:])
    above = np.array([lm[19] + 0.35 * (lm[19] - lm[37])])
    assert _at(flat, above)[0] == 0.0 and _at(normal, above)[0] == 1.0


def test_eyes_mask_lies_around_the_eyes(real_face):
    _path, image, meta = real_face
    lm = meta.landmarks
    mask = eyes_mask(image.shape[:2], lm)
    assert mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
    centres = np.array([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])
    assert _at(mask, centres).min() > 0.95
    assert _at(mask, lm[36:48]).min() > 0.4  # eye outlines, inside the feathered edge
    assert _at(mask, lm[[30, 33, 51, 57, 8]]).max() == 0.0  # nose, mouth, chin
    ys, xs = np.nonzero(mask > 0.05)
    assert lm[36:48, 0].min() - 10 < xs.min() and xs.max() < lm[36:48, 0].max() + 10
    assert lm[36:48, 1].min() - 10 < ys.min() and ys.max() < lm[36:48, 1].max() + 10


def test_eyes_mouth_mask_adds_the_mouth(real_face):
    _path, image, meta = real_face
    lm = meta.landmarks
    em = eyes_mouth_mask(image.shape[:2], lm)
    assert _at(em, [lm[48:60].mean(axis=0), lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)]).min() > 0.95
    assert _at(em, lm[[30, 8, 0, 16]]).max() == 0.0
    assert np.all(em >= eyes_mask(image.shape[:2], lm) - 1e-6)


def test_polygons_include_then_exclude():
    polys = [
        {"type": 0, "pts": np.array([[40, 40], [60, 40], [60, 60], [40, 60]], np.float32)},  # listed first
        {"type": 1, "pts": np.array([[20, 20], [80, 20], [80, 80], [20, 80]], np.float32)},
        {"type": 1, "pts": np.array([[0, 0], [5, 0]], np.float32)},  # fewer than 3 points: ignored
    ]
    mask = polygons_mask((100, 100), polys)
    assert mask[30, 30] == 1.0 and mask[50, 50] == 0.0 and mask[10, 10] == 0.0 and mask[90, 90] == 0.0
    assert abs(mask.sum() - (61 * 61 - 21 * 21)) < 130


def test_face_mask_prefers_xseg_then_polygons_then_hull(real_face, tmp_path):
    path, image, meta = real_face
    shape = image.shape[:2]
    np.testing.assert_array_equal(face_mask(shape, meta), hull_mask(shape, meta.landmarks, meta.eyebrows_expand_mod))

    square = [{"type": 1, "pts": np.array([[30, 30], [90, 30], [90, 90], [30, 90]], np.float32)}]
    with_polys = replace(meta, seg_ie_polys=square, xseg_mask=None)
    np.testing.assert_array_equal(face_mask(shape, with_polys), polygons_mask(shape, square))
    only_exclude = replace(meta, seg_ie_polys=[{"type": 0, "pts": square[0]["pts"]}])
    np.testing.assert_array_equal(face_mask(shape, only_exclude), face_mask(shape, meta))  # nothing included: hull

    xseg = np.zeros((64, 64), np.float32)
    xseg[16:48, 8:24] = 1.0  # stored at another size than the face
    baked = replace(meta, seg_ie_polys=square, xseg_mask=xseg)
    m = face_mask(shape, baked)
    assert m.shape == shape and m[64, 32] == 1.0 and m[64, 100] == 0.0 and m[10, 32] == 0.0

    # the same through a face file: the baked mask survives the metadata round trip
    copy = tmp_path / "face.jpg"
    copy.write_bytes(path.read_bytes())
    update_face_meta(copy, baked)
    read_back = face_mask(shape, read_face_meta(copy))
    np.testing.assert_allclose(read_back, cv2.resize(xseg, (128, 128), interpolation=cv2.INTER_LINEAR), atol=1 / 255)

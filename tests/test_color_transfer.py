"""Colour transfer on real faces: each algorithm delivers the statistic it promises.

Faces are cropped from the real photos with the real detector, landmarks and `align`; the face
mask is the convex hull of the landmarks (drawn here, independently of the merger's masks).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core import color_transfer as ct
from facelib.align import transform_points
from facelib.crop import CropSpec
from facelib.detectors import detect
from facelib.face_type import FaceType
from facelib.landmarks import landmarks
from tests.conftest import FACES

SIZE = 128


def _face(photo: str) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(FACES / photo))
    face = max(detect(image), key=lambda f: f.area)
    lm = landmarks(image, face)
    c = CropSpec(SIZE, FaceType.WHOLE_FACE).of(lm)
    crop, mat = c.warp(image), c.mat
    hull = cv2.convexHull(np.round(transform_points(lm, mat)).astype(np.int32))
    mask = np.zeros((SIZE, SIZE), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    return crop.astype(np.float32) / 255.0, mask


@pytest.fixture(scope="module")
def faces():
    """(src, src_mask, ref, ref_mask): a lit face to recolour and a differently lit reference."""
    src, src_mask = _face("obama.jpg")
    ref, ref_mask = _face("grace_hopper.jpg")
    return src, src_mask, ref, ref_mask


def _px(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    flat = img.reshape(-1, img.shape[-1]).astype(np.float64)
    return flat if mask is None else flat[mask.reshape(-1) > 0.5]


def _lab_stats(img, mask):
    px = _px(cv2.cvtColor(img, cv2.COLOR_BGR2LAB), mask)
    return px.mean(0), px.std(0)


def _cov(px):
    return np.cov(px, rowvar=False, bias=True)


def _rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _w1(a: np.ndarray, b: np.ndarray, n: int = 200) -> float:
    """1-D Wasserstein-1 distance between two samples, from their quantile functions."""
    q = np.linspace(0.0, 1.0, n)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def _sliced_w1(a_px, b_px, directions=24, seed=123) -> float:
    """Mean 1-D Wasserstein distance over random projections (directions unrelated to the code's)."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(directions):
        d = rng.standard_normal(a_px.shape[1])
        d /= np.linalg.norm(d)
        total += _w1(a_px @ d, b_px @ d)
    return total / directions


def test_faces_start_far_apart(faces):
    src, src_mask, ref, ref_mask = faces
    (ms, ss), (mr, sr) = _lab_stats(src, src_mask), _lab_stats(ref, ref_mask)
    assert np.abs(ms - mr).max() > 5 or np.abs(ss - sr).max() > 3  # the tests below measure a real move


def test_rct_matches_lab_mean_and_std_inside_the_mask(faces):
    src, src_mask, ref, ref_mask = faces
    out = ct.rct(src, ref, src_mask, ref_mask)
    assert out.dtype == np.float32 and out.shape == src.shape and out.min() >= 0 and out.max() <= 1
    mean, std = _lab_stats(out, src_mask)
    ref_mean, ref_std = _lab_stats(ref, ref_mask)
    assert np.abs(mean - ref_mean).max() < 1.5  # L in 0..100, a/b in -127..127
    assert np.abs(std - ref_std).max() < 1.5


def test_rct_uses_only_masked_pixels(faces):
    """Changing the reference outside its mask (e.g. the background) changes nothing."""
    src, src_mask, ref, ref_mask = faces
    ref2 = ref.copy()
    ref2[ref_mask < 0.5] = (0.0, 1.0, 0.0)  # green background
    a = ct.color_transfer("rct", src, ref, ref_mask)
    np.testing.assert_allclose(ct.rct(src, ref2, ref_mask, ref_mask), ct.rct(src, ref, ref_mask, ref_mask), atol=1e-5)
    assert a.shape == src.shape


@pytest.mark.parametrize("fn", [ct.lct, ct.mkl])
def test_linear_transfers_match_mean_and_covariance(faces, fn):
    src, src_mask, ref, ref_mask = faces
    # On the faces (statistics and check both inside the masks): exact up to clipping into 0..1.
    out = fn(src, ref, src_mask, ref_mask)
    assert _rel_err(_cov(_px(src, src_mask)), _cov(_px(ref, ref_mask))) > 0.3
    assert _rel_err(_cov(_px(out, src_mask)), _cov(_px(ref, ref_mask))) < 0.06  # 1-2% of pixels clip
    assert np.abs(_px(out, src_mask).mean(0) - _px(ref, ref_mask).mean(0)).max() < 0.01
    # Whole crops: a few percent of the pixels clip, so the match is looser but still close.
    out = fn(src, ref)
    assert _rel_err(_cov(_px(src)), _cov(_px(ref))) > 0.3
    assert _rel_err(_cov(_px(out)), _cov(_px(ref))) < 0.2


def test_masked_mkl_matches_covariance_inside_the_mask(faces):
    src, src_mask, ref, ref_mask = faces
    # The merger gives one mask for both (the dst face crop and the prediction share the crop).
    mask = src_mask * ref_mask
    out = ct.color_transfer("mkl-m", src, ref, mask)
    assert _rel_err(_cov(_px(out, mask)), _cov(_px(ref, mask))) < 0.05
    assert np.abs(_px(out, mask).mean(0) - _px(ref, mask).mean(0)).max() < 0.01
    # ... and the background of the reference plays no part.
    ref2 = ref.copy()
    ref2[mask < 0.5] = (1.0, 0.0, 1.0)
    np.testing.assert_allclose(ct.color_transfer("mkl-m", src, ref2, mask), out, atol=1e-5)


def test_mkl_moves_colours_less_than_lct(faces):
    """Monge-Kantorovich is the covariance-matching map with the least displacement."""
    src, _, ref, _ = faces
    d_mkl = np.mean((ct.mkl(src, ref) - src) ** 2)
    d_lct = np.mean((ct.lct(src, ref) - src) ** 2)
    assert d_mkl <= d_lct * 1.001


def test_idt_matches_marginals_along_channels_and_random_axes(faces):
    src, _, ref, _ = faces
    out = ct.idt(src, ref)
    for c in range(3):
        before = _w1(_px(src)[:, c], _px(ref)[:, c])
        after = _w1(_px(out)[:, c], _px(ref)[:, c])
        assert after < 0.25 * before, (c, before, after)
    assert _sliced_w1(_px(out), _px(ref)) < 0.25 * _sliced_w1(_px(src), _px(ref))


def test_sot_brings_the_3d_distribution_close(faces):
    src, _, ref, _ = faces
    before = _sliced_w1(_px(src), _px(ref))
    raw = ct.sot(src, ref, reg_sigma_xy=0, reg_sigma_v=0)
    assert _sliced_w1(_px(raw), _px(ref)) < 0.25 * before
    # The regularised default moves the colours with a smooth field: much of the gain, no speckle
    # (the displacement's Laplacian is a small fraction of the unregularised one's).
    smooth = ct.sot(src, ref)
    assert _sliced_w1(_px(smooth), _px(ref)) < 0.75 * before
    lap = lambda im: float(np.abs(cv2.Laplacian(im.astype(np.float32), cv2.CV_32F)).mean())  # noqa: E731
    assert lap(smooth - src) < 0.1 * lap(raw - src)


def test_masked_sot_and_idt_work_inside_the_mask(faces):
    src, src_mask, ref, ref_mask = faces
    mask = src_mask * ref_mask
    for mode in ("sot-m", "idt-m"):
        out = ct.color_transfer(mode, src, ref, mask)
        before = _sliced_w1(_px(src, mask), _px(ref, mask))
        assert _sliced_w1(_px(out, mask), _px(ref, mask)) < 0.35 * before, mode


def test_mix_matches_lightness_and_moves_chroma(faces):
    src, src_mask, ref, ref_mask = faces
    mask = src_mask * ref_mask
    out = ct.color_transfer("mix-m", src, ref, mask)
    lab = lambda im: _px(cv2.cvtColor(im, cv2.COLOR_BGR2LAB), mask)  # noqa: E731
    o, r, s = lab(out), lab(ref), lab(src)
    assert abs(o[:, 0].mean() - r[:, 0].mean()) < 1.5 and abs(o[:, 0].std() - r[:, 0].std()) < 1.5
    assert _sliced_w1(o[:, 1:], r[:, 1:]) < 0.4 * _sliced_w1(s[:, 1:], r[:, 1:])


def test_random_algorithms_are_repeatable(faces):
    """Same face in, same colours out: no frame-to-frame flicker in merged videos."""
    src, _, ref, _ = faces
    np.testing.assert_array_equal(ct.idt(src, ref), ct.idt(src, ref))
    np.testing.assert_array_equal(ct.sot(src, ref), ct.sot(src, ref))


def test_dispatch_names_and_none(faces):
    src, mask, ref, _ = faces
    np.testing.assert_array_equal(ct.color_transfer(None, src, ref), src)
    np.testing.assert_array_equal(ct.color_transfer("none", src, ref), src)
    for mode in [m for m in ct.MERGER_MODES if m] + list(ct.TRAINING_MODES):
        out = ct.color_transfer(mode, src, ref, mask)
        assert out.dtype == np.float32 and out.shape == src.shape
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.abs(out - src).mean() > 0.005, mode  # every mode really changes the colours
    with pytest.raises(ValueError, match="unknown colour transfer mode 'foo'"):
        ct.color_transfer("foo", src, ref)


def test_tiny_or_empty_mask_falls_back_to_the_whole_image(faces):
    src, _, ref, _ = faces
    empty = np.zeros(src.shape[:2], np.float32)
    np.testing.assert_allclose(ct.color_transfer("mkl-m", src, ref, empty), ct.mkl(src, ref), atol=1e-6)

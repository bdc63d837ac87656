"""core/warp.py: the random affine, flip and grid warp that training applies to its inputs."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from core.warp import gen_warp_params, warp_image
from facelib.align import transform_points
from tests.conftest import FACES

NO_AFFINE = dict(rotation_range=(0, 0), scale_range=(0, 0), tx_range=(0, 0), ty_range=(0, 0))


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real face, square, float32 0..1."""
    img = cv2.imread(str(FACES / "grace_hopper.jpg"))
    h, w = img.shape[:2]
    side = min(h, w)
    img = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    return cv2.resize(img, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def test_nothing_on_returns_the_image(face):
    params = gen_warp_params(96, np.random.default_rng(1), flip=True)
    assert warp_image(face, params, warp=False, transform=False, border_replicate=True) is face


def test_identity_draw_keeps_every_pixel(face):
    params = gen_warp_params(96, np.random.default_rng(2), flip=False, **NO_AFFINE)
    out = warp_image(face, params, warp=False, transform=True, border_replicate=True)
    np.testing.assert_allclose(out, face, atol=1e-6)


def test_same_seed_same_draw():
    a = gen_warp_params(96, np.random.default_rng(7), flip=True)
    b = gen_warp_params(96, np.random.default_rng(7), flip=True)
    c = gen_warp_params(96, np.random.default_rng(8), flip=True)
    assert (a.rotation, a.scale, a.tx, a.ty, a.flip, a.cells) == (b.rotation, b.scale, b.tx, b.ty, b.flip, b.cells)
    np.testing.assert_array_equal(a.warp_dx, b.warp_dx)
    np.testing.assert_array_equal(a.matrix(), b.matrix())
    assert not np.array_equal(a.matrix(), c.matrix())


def test_ranges_and_flip_probability():
    rng = np.random.default_rng(3)
    draws = [gen_warp_params(64, rng, flip=True, scale_range=(-0.15, 0.15)) for _ in range(2000)]
    rot = np.array([d.rotation for d in draws])
    scale = np.array([d.scale for d in draws])
    tx = np.array([d.tx for d in draws])
    assert -10 <= rot.min() < -9 and 9 < rot.max() <= 10
    assert 1 / 1.15 <= scale.min() < 0.9 and 1.14 < scale.max() <= 1.15
    assert -0.05 <= tx.min() < -0.045 and 0.045 < tx.max() <= 0.05
    assert 0.36 < np.mean([d.flip for d in draws]) < 0.44
    assert {d.cells for d in draws} == {2, 4, 8}  # cell size w/2, w/4, w/8
    assert not any(gen_warp_params(64, rng, flip=False).flip for _ in range(200))


def test_rotation_is_counter_clockwise_about_the_centre(face):
    params = gen_warp_params(96, np.random.default_rng(4), flip=False, **{**NO_AFFINE, "rotation_range": (90, 90)})
    out = warp_image(face, params, warp=False, transform=True, border_replicate=True)
    np.testing.assert_allclose(out, np.rot90(face, 1), atol=1e-5)


def test_flip_mirrors_after_the_affine(face):
    params = replace(gen_warp_params(96, np.random.default_rng(5), flip=False, **NO_AFFINE), flip=True)
    out = warp_image(face, params, warp=False, transform=True, border_replicate=True)
    np.testing.assert_allclose(out, face[:, ::-1], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_landmarks_follow_the_matrix(face, seed):
    """A point moves where `matrix()` says, flip included: the trainer can move landmarks with it."""
    params = gen_warp_params(96, np.random.default_rng(seed), flip=True, scale_range=(-0.15, 0.15))
    if seed == 0:
        params = replace(params, flip=True)
    dot = np.zeros((96, 96), np.float32)
    cv2.circle(dot, (30, 60), 3, 1.0, -1)
    out = warp_image(dot, params, warp=False, transform=True, border_replicate=False, interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(out > 0.5)
    expected = transform_points(np.array([30.0, 60.0]), params.matrix(96))
    assert np.hypot(xs.mean() - expected[0], ys.mean() - expected[1]) < 0.5


def test_warp_bends_the_face_but_keeps_its_border(face):
    rng = np.random.default_rng(6)
    diffs = []
    for _ in range(8):
        params = gen_warp_params(96, rng, flip=False, **NO_AFFINE)
        out = warp_image(face, params, warp=True, transform=False, border_replicate=True)
        diffs.append(np.abs(out - face).mean())
        # the grid's border points stay put: the image corners hardly move
        assert np.abs(out[0, 0] - face[0, 0]).max() < 0.05 and np.abs(out[-1, -1] - face[-1, -1]).max() < 0.05
    assert min(diffs) > 0.003 and np.mean(diffs) > 0.01


def test_warp_moves_pixels_by_a_smooth_bounded_field():
    """On a coordinate ramp each output pixel shows where it was read from: p + d(p). The field is
    about 0.24 of a grid cell (N(0,1) draws), zero at the image border, and smooth."""
    ramp_x = np.tile(np.arange(128, dtype=np.float32), (128, 1))
    rng = np.random.default_rng(9)
    for _ in range(20):
        params = gen_warp_params(128, rng, flip=False, **NO_AFFINE)
        out = warp_image(ramp_x, params, warp=True, transform=False, border_replicate=True,
                         interpolation=cv2.INTER_LINEAR)
        dx, _dy = params.displacement(128)
        inside = (ramp_x + dx >= 0) & (ramp_x + dx <= 127)
        np.testing.assert_allclose(out[inside], (ramp_x + dx)[inside], atol=1e-3)
        sigma = 0.24 * 128 / params.cells
        assert np.abs(dx).max() < 5 * sigma
        assert np.abs(dx[:, 0]).max() < 0.1 * sigma and np.abs(dx[0, :]).max() < 0.1 * sigma
        assert np.abs(np.diff(dx, axis=1)).max() < 5 * 0.24 * np.sqrt(2)  # neighbours move together


def test_one_pass_equals_dfl_two_passes(face):
    """Warp and affine composed in one remap match DFL's remap-then-warpAffine, minus one resampling."""
    rng = np.random.default_rng(10)
    for _ in range(4):
        params = gen_warp_params(96, rng, flip=True, scale_range=(-0.15, 0.15))
        one = warp_image(face, params, warp=True, transform=True, border_replicate=True)
        two = warp_image(warp_image(face, params, warp=True, transform=False, border_replicate=True),
                         params, warp=False, transform=True, border_replicate=True)
        only_affine = warp_image(face, params, warp=False, transform=True, border_replicate=True)
        assert np.abs(one - two)[8:-8, 8:-8].mean() < 0.01
        assert np.abs(one - two)[8:-8, 8:-8].mean() < 0.5 * np.abs(one - only_affine)[8:-8, 8:-8].mean()


def test_small_faces_and_masks(face):
    small = cv2.resize(face, (32, 32), interpolation=cv2.INTER_AREA)
    params = gen_warp_params(32, np.random.default_rng(11), flip=False)
    assert params.warp_dx.shape == (64, 64)  # drawn at 64 px, DFL's minimum working size
    out = warp_image(small, params, warp=True, transform=True, border_replicate=True)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    mask = np.ones((32, 32, 1), np.float32)
    out_mask = warp_image(mask, params, warp=False, transform=True, border_replicate=False)
    assert out_mask.shape == (32, 32, 1)
    # the same draw applies at another size: a mask at 64 px gets the same (size-relative) affine
    big = warp_image(np.ones((64, 64), np.float32), params, warp=False, transform=True, border_replicate=False,
                     interpolation=cv2.INTER_LINEAR)
    small_again = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(small_again - out_mask[..., 0]).mean() < 0.03

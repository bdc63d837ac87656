"""Per-frame compositing on real frames: each merge mode, mask mode and effect does what a user
expects to see in the merged frame and its mask."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.image_io import read_image
from facelib.align import align, transform_points
from facelib.face_type import FaceType
from facelib.masks import hull_mask
from faceset.face_file import read_face_meta
from merger.compose import FacePrediction, Motion, compose_frame, crop_for_model, motion_between
from merger.config import COLOR_TRANSFER_MODES, MergeConfig
from tests.facesets import extract_faces, make_frames
from tests.merge_standin import TINT

R = 64
FT = FaceType.WHOLE_FACE


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two real 320x240 frames of a face and the frame landmarks the extractor found."""
    root = tmp_path_factory.mktemp("compose")
    frames = make_frames("obama.jpg", root, count=2)
    faces = extract_faces(frames, root / "aligned", size=128)
    lms = {read_face_meta(f).source_filename: np.asarray(read_face_meta(f).source_landmarks, np.float64) for f in faces}
    return [(read_image(p), lms[p.name]) for p in frames]


def _hull_in_crop(lm: np.ndarray) -> np.ndarray:
    return hull_mask((R, R), transform_points(lm, align(lm, R, FT)))


def _predict(frame, lm, src_mask=None, dst_mask=None) -> FacePrediction:
    """What a model would return: the dst crop mirrored and tinted, the hull as learned masks."""
    crop = crop_for_model(frame, lm, R, FT)
    hull = _hull_in_crop(lm)
    return FacePrediction(lm, np.clip(crop[:, ::-1] * TINT, 0, 1), hull if src_mask is None else src_mask,
                          hull if dst_mask is None else dst_mask)


def _merge(frame, fp, motion=None, **cfg):
    return compose_frame(frame, [fp] if fp is not None else [], MergeConfig(**cfg), R, FT, motion)


def _face_box(lm, shape):
    """A box well inside the face, and a frame region far from it."""
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    inner = (slice(int(y0 + 0.3 * (y1 - y0)), int(y1 - 0.2 * (y1 - y0))),
             slice(int(x0 + 0.25 * (x1 - x0)), int(x1 - 0.25 * (x1 - x0))))
    far = np.ones(shape[:2], bool)
    w = x1 - x0
    far[max(0, int(y0 - w)):int(y1 + w), max(0, int(x0 - w)):int(x1 + w)] = False
    return inner, far


def test_frame_without_faces_is_unchanged_with_an_empty_mask(clip):
    frame, _ = clip[0]
    out, mask = _merge(frame, None)
    np.testing.assert_array_equal(out, frame)
    assert mask.shape == frame.shape[:2] and mask.max() == 0


def test_overlay_puts_the_predicted_face_inside_the_mask_only(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    out, mask = _merge(frame, fp, color_transfer="none")
    inner, far = _face_box(lm, frame.shape)
    assert mask[inner].min() == 255  # the face is fully covered
    assert mask[far].max() == 0
    np.testing.assert_array_equal(out[far], frame[far])  # nothing changes away from the face
    # Inside the face the pixels are the prediction's: redder than the dst by about the tint.
    ratio = out[inner][..., 2].mean() / max(1.0, frame[inner][..., 2].mean())
    assert ratio > 1.15
    # The mask follows the face hull: it covers most of the hull and little outside it.
    hull_frame = cv2.warpAffine(_hull_in_crop(lm), align(lm, R, FT), frame.shape[1::-1], flags=cv2.WARP_INVERSE_MAP) > 0.5
    m = mask > 127
    assert (m & hull_frame).sum() > 0.9 * hull_frame.sum()
    assert (m & ~hull_frame).sum() < 0.1 * hull_frame.sum()


def test_original_mode_keeps_the_frame_but_writes_the_mask(clip):
    frame, lm = clip[0]
    out, mask = _merge(frame, _predict(frame, lm), mode="original")
    np.testing.assert_array_equal(out, frame)
    assert (mask > 127).sum() > 500


def test_rct_brings_the_face_colour_back_to_the_dst(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    inner, _ = _face_box(lm, frame.shape)
    lab = lambda img: cv2.cvtColor(img[inner], cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(float).mean(0)  # noqa: E731
    ref = lab(frame)
    off = np.abs(lab(_merge(frame, fp, color_transfer="none")[0]) - ref).max()
    on = np.abs(lab(_merge(frame, fp, color_transfer="rct")[0]) - ref).max()
    assert off > 8 and on < off / 3


@pytest.mark.parametrize("mode", [m for m in COLOR_TRANSFER_MODES if m not in ("none", "rct")])
def test_every_colour_mode_reduces_the_tint(clip, mode):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    inner, _ = _face_box(lm, frame.shape)
    red_gap = lambda img: abs(img[inner][..., 2].astype(float).mean() - frame[inner][..., 2].astype(float).mean())  # noqa: E731
    assert red_gap(_merge(frame, fp, color_transfer=mode)[0]) < 0.5 * red_gap(_merge(frame, fp, color_transfer="none")[0])


def test_hist_match_matches_the_dst_histogram_and_threshold_darkens(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    inner, _ = _face_box(lm, frame.shape)
    red = lambda img: img[inner][..., 2].astype(float).mean()  # noqa: E731
    plain = red(_merge(frame, fp, color_transfer="none")[0])
    matched = red(_merge(frame, fp, mode="hist-match", color_transfer="none", hist_match_threshold=255)[0])
    assert abs(matched - red(frame)) < 0.4 * abs(plain - red(frame))
    low = red(_merge(frame, fp, mode="hist-match", color_transfer="none", hist_match_threshold=180)[0])
    assert low < matched - 5  # a lower threshold never reaches the brightest reference levels


def test_blur_feathers_the_mask_edge(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    out0, m0 = _merge(frame, fp)
    out1, m1 = _merge(frame, fp, blur=60)
    soft = lambda m: int(((m > 0) & (m < 255)).sum())  # noqa: E731
    assert soft(m1) > 2 * soft(m0)
    edge = (cv2.dilate(m0, np.ones((5, 5))) > 0) & (cv2.erode(m0, np.ones((5, 5))) < 255)
    assert np.abs(out1.astype(int) - out0.astype(int))[edge].mean() > 2
    inner, far = _face_box(lm, frame.shape)
    np.testing.assert_array_equal(out1[far], frame[far])


def test_erode_shrinks_and_dilate_grows_the_mask(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    area = lambda **c: int((_merge(frame, fp, **c)[1] > 127).sum())  # noqa: E731
    base = area()
    assert area(erode=40) < 0.85 * base
    assert area(erode=-40) > 1.1 * base


def test_mask_modes(clip):
    frame, lm = clip[0]
    hull = _hull_in_crop(lm)
    top = np.zeros((R, R), np.float32)
    top[: R // 2] = 1.0  # a "learned" mask covering the top half of the crop
    fp = _predict(frame, lm, src_mask=hull, dst_mask=top)
    area = lambda mode: int((_merge(frame, fp, mask_mode=mode)[1] > 127).sum())  # noqa: E731
    prd, dst, full = area("learned-prd"), area("learned-dst"), area("full")
    both, either = area("learned-prd*learned-dst"), area("learned-prd+learned-dst")
    assert both < min(prd, dst) and either > max(prd, dst)
    assert full > either
    # "dst" is the landmark hull, here the same as the learned-prd mask.
    assert abs(area("dst") - prd) < 0.05 * prd


def test_output_face_scale_resizes_the_pasted_face(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    area = lambda s: int((_merge(frame, fp, output_face_scale=s)[1] > 127).sum())  # noqa: E731
    base = area(0)
    # Scale > 0 zooms the crop in, so the pasted face covers less of the frame (DFL's convention).
    assert area(20) < 0.8 * base and area(-20) > 1.25 * base


def test_seamless_blends_the_boundary_into_the_frame(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    out_o, mask = _merge(frame, fp, mask_mode="full", color_transfer="none")
    out_s, _ = _merge(frame, fp, mask_mode="full", mode="seamless", color_transfer="none")
    ring = (cv2.dilate(mask, np.ones((3, 3))) > 127) & (cv2.erode(mask, np.ones((9, 9))) <= 127)
    diff = lambda o: np.abs(o.astype(int) - frame.astype(int))[ring].mean()  # noqa: E731
    assert diff(out_s) < 0.5 * diff(out_o)
    inner, _ = _face_box(lm, frame.shape)
    assert np.abs(out_s.astype(int) - frame.astype(int))[inner].mean() > 5  # the face did change
    for mode in ("seamless", "seamless-hist-match"):  # and it is deterministic (no jitter)
        a = _merge(frame, fp, mode=mode)[0]
        np.testing.assert_array_equal(a, _merge(frame, fp, mode=mode)[0])


def test_raw_modes(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    out, _ = _merge(frame, fp, mode="raw-rgb")
    # The whole predicted square is pasted: a point near the crop's left edge, outside the face
    # hull, shows the prediction there, where overlay keeps the frame.
    x, y = transform_points(np.array([6.0, R / 2]), align(lm, R, FT), invert=True).round().astype(int)
    assert np.abs(out[y, x].astype(float) - fp.face[R // 2, 6] * 255).max() < 30
    assert np.abs(out[y, x].astype(int) - frame[y, x].astype(int)).max() > 30
    np.testing.assert_array_equal(_merge(frame, fp)[0][y, x], frame[y, x])
    pred, pmask = _merge(frame, fp, mode="raw-predict")
    assert pred.shape == (R, R, 3) and pmask.shape == (R, R)
    np.testing.assert_allclose(pred.astype(float), np.rint(fp.face * 255), atol=1)
    empty, emask = compose_frame(frame, [], MergeConfig(mode="raw-predict"), R, FT)
    assert empty.shape == (R, R, 3) and empty.max() == 0 and emask.max() == 0


def test_two_faces_in_one_frame_are_both_merged(clip):
    (a, lm_a), (b, lm_b) = clip
    frame = np.hstack([a, b])
    lm_b2 = lm_b + (a.shape[1], 0)
    faces = [_predict(frame, lm_a), _predict(frame, lm_b2)]
    out, mask = compose_frame(frame, faces, MergeConfig(color_transfer="none"), R, FT)
    inner_a, _ = _face_box(lm_a, frame.shape)
    inner_b, _ = _face_box(lm_b2, frame.shape)
    for inner in (inner_a, inner_b):
        assert mask[inner].min() == 255
        assert np.abs(out[inner].astype(int) - frame[inner].astype(int)).mean() > 5
    n, _ = cv2.connectedComponents((mask > 127).astype(np.uint8))
    assert n - 1 == 2


def test_motion_blur_follows_the_face_motion(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    inner, far = _face_box(lm, frame.shape)
    still = _merge(frame, fp, motion_blur=100, motion=Motion(0.0, 0.0))[0]
    base = _merge(frame, fp)[0]
    # No motion: nothing to blur (the re-crop costs at most rounding).
    assert np.abs(still.astype(int) - base.astype(int))[inner].mean() < 3
    moving = _merge(frame, fp, motion_blur=100, motion=Motion(12.0, 0.0))[0]
    # A horizontal blur removes horizontal detail: smaller x-gradients than before, y-gradients kept more.
    gx = lambda im: np.abs(np.diff(im[inner].astype(float), axis=1)).mean()  # noqa: E731
    assert gx(moving) < 0.7 * gx(base)
    np.testing.assert_array_equal(moving[far], frame[far])
    # The vector: a face moving right by 10 px per frame.
    m = motion_between(lm - (10, 0), lm, lm + (10, 0))
    assert abs(m.power - 10) < 1e-6 and abs(m.angle_deg) < 1e-6


def test_sharpen_and_blur_amounts(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    inner, _ = _face_box(lm, frame.shape)
    detail = lambda im: float(np.abs(cv2.Laplacian(im[inner].astype(np.float32), cv2.CV_32F)).mean())  # noqa: E731
    base = detail(_merge(frame, fp)[0])
    for mode in ("box", "gaussian"):
        assert detail(_merge(frame, fp, sharpen_mode=mode, sharpen_amount=1)[0]) > 1.3 * base
    assert detail(_merge(frame, fp, sharpen_amount=-30)[0]) < 0.7 * base


def test_denoise_and_bicubic_degrade_soften_the_background(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    _, far = _face_box(lm, frame.shape)
    detail = lambda im: float(np.abs(cv2.Laplacian(im.astype(np.float32), cv2.CV_32F))[far].mean())  # noqa: E731
    base = detail(frame)
    assert detail(_merge(frame, fp, image_denoise=200)[0]) < 0.8 * base
    assert detail(_merge(frame, fp, bicubic_degrade=60)[0]) < 0.8 * base


def test_colour_degrade_limits_the_palette(clip):
    frame, lm = clip[0]
    fp = _predict(frame, lm)
    out, _ = _merge(frame, fp, color_degrade=100)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 256 < len(np.unique(frame.reshape(-1, 3), axis=0))
    half, _ = _merge(frame, fp, color_degrade=50)
    full_gap = np.abs(out.astype(int) - _merge(frame, fp)[0].astype(int)).mean()
    half_gap = np.abs(half.astype(int) - _merge(frame, fp)[0].astype(int)).mean()
    assert 0.3 * full_gap < half_gap < 0.7 * full_gap

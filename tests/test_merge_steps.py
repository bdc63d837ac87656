"""The merger's steps one by one on real frames: each face's crops, mask, region and layer, how the
layers make the frame, and the batch pipeline's explicit model loop (one model call per batch)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.image_io import read_image
from facelib.align import align, transform_points
from facelib.face_type import FaceType
from facelib.masks import hull_mask
from faceset.face_file import read_face_meta
from merger import image_ops
from merger.compose import (
    FaceLayer,
    FacePrediction,
    Motion,
    compose_frame,
    crop_for_model,
    face_layers,
    face_mask,
    mask_in_region,
    raw_prediction,
)
from merger.config import MASK_MODES, MODES, MergeConfig
from merger.face_geometry import face_crops, face_region
from merger.frames import FrameInfo
from merger.pipeline import JobFeed, predict_batches, run_merge
from tests.facesets import extract_faces, make_frames
from tests.merge_standin import TINT, StandInPredictor

R = 64
FT = FaceType.WHOLE_FACE
BLEND_MODES = [m for m in MODES if m != "raw-predict"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two real 320x240 frames of a face (their files and the frame landmarks the extractor found)."""
    root = tmp_path_factory.mktemp("steps")
    frames = make_frames("obama.jpg", root, count=2)
    faces = extract_faces(frames, root / "aligned", size=128)
    lms = {read_face_meta(f).source_filename: np.asarray(read_face_meta(f).source_landmarks, np.float64) for f in faces}
    return [(p, read_image(p), lms[p.name]) for p in frames]


def _predict(frame, lm) -> FacePrediction:
    """What a model would return: the dst crop mirrored and tinted; the hull as src mask, the top
    half of the crop as dst mask (so the learned mask modes differ); for the XSeg modes, the hull without
    its lower third as XSeg-prd and the left half of the crop as XSeg-dst."""
    crop = crop_for_model(frame, lm, R, FT)
    hull = hull_mask((R, R), transform_points(lm, align(lm, R, FT)))
    top = np.zeros((R, R), np.float32)
    top[: R // 2] = 1.0
    cut = hull.astype(np.float32).copy()
    cut[2 * R // 3:] = 0.0
    left = np.zeros((R, R), np.float32)
    left[:, : R // 2] = 1.0
    return FacePrediction(lm, np.clip(crop[:, ::-1] * TINT, 0, 1), hull, top, cut, left)


def test_each_face_leaves_one_layer_inside_the_frame_and_none_when_off_it(clip):
    _, frame, lm = clip[0]
    fp = _predict(frame, lm)
    off = FacePrediction(lm + 5000, fp.face, fp.src_mask, fp.dst_mask, fp.xseg_prd, fp.xseg_dst)
    h, w = frame.shape[:2]
    for mode, mask_mode in itertools.product(BLEND_MODES, MASK_MODES):
        cfg = MergeConfig(mode=mode, mask_mode=mask_mode, blur=20)
        layers = face_layers(frame, None, [off, fp], cfg, R, FT, Motion())
        assert len(layers) == 1 and isinstance(layers[0], FaceLayer), (mode, mask_mode)
        layer = layers[0]
        x0, y0, x1, y1 = layer.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert layer.image.shape == (y1 - y0, x1 - x0, 3) and layer.mask.shape == (y1 - y0, x1 - x0, 1)
        assert layer.image.dtype == np.float32 and layer.mask.dtype == np.float32
        assert 0.0 <= layer.image.min() and layer.image.max() <= 1.0 and 0.0 <= layer.mask.min() and layer.mask.max() <= 1.0
        assert not layer.degrade_background
    crops = face_crops(off.landmarks, MergeConfig(), R, FT)
    assert face_region(frame, crops) is None
    out, mask = compose_frame(frame, [off], MergeConfig(), R, FT)
    np.testing.assert_array_equal(out, frame)
    assert mask.max() == 0


def test_the_output_mask_is_the_face_mask_warped_into_its_region(clip):
    _, frame, lm = clip[0]
    fp = _predict(frame, lm)
    for mode, mask_mode in itertools.product(BLEND_MODES, MASK_MODES):
        cfg = MergeConfig(mode=mode, mask_mode=mask_mode, erode=10, blur=30)
        crops = face_crops(lm, cfg, R, FT)
        region = face_region(frame, crops)
        expected = np.zeros(frame.shape[:2], np.uint8)
        x0, y0, x1, y1 = region.box
        expected[y0:y1, x0:x1] = image_ops.to_u8(mask_in_region(face_mask(fp, cfg, crops), crops, region)[..., 0])
        np.testing.assert_array_equal(compose_frame(frame, [fp], cfg, R, FT)[1], expected, err_msg=f"{mode} {mask_mode}")


@pytest.mark.parametrize("mode", [m for m in BLEND_MODES if m != "raw-rgb"])
def test_outside_the_mask_the_frame_is_untouched_unless_the_background_is_degraded(clip, mode):
    _, frame, lm = clip[0]
    fp = _predict(frame, lm)
    for mask_mode, ct, (erode, blur) in itertools.product(MASK_MODES, ("none", "rct"), ((0, 0), (-20, 40), (30, 10))):
        out, mask = compose_frame(frame, [fp], MergeConfig(mode=mode, mask_mode=mask_mode, color_transfer=ct,
                                                           erode=erode, blur=blur, sharpen_amount=20), R, FT)
        np.testing.assert_array_equal(out[mask == 0], frame[mask == 0], err_msg=f"{mask_mode} {ct} {erode} {blur}")
        if mode == "original":
            np.testing.assert_array_equal(out, frame)
    # With denoise, the background is degraded outside the mask too.
    out, mask = compose_frame(frame, [fp], MergeConfig(mode=mode, image_denoise=200), R, FT)
    changed = np.abs(out.astype(int) - frame.astype(int))[mask == 0].max()
    assert changed == 0 if mode == "original" else changed > 0


def test_mask_settings_apply_except_in_the_raw_modes(clip):
    _, frame, lm = clip[0]
    fp = _predict(frame, lm)
    for mode in MODES:
        crops = face_crops(lm, MergeConfig(mode=mode), R, FT)
        plain = face_mask(fp, MergeConfig(mode=mode), crops).at_subres
        eroded = face_mask(fp, MergeConfig(mode=mode, erode=40, blur=40), crops).at_subres
        assert plain.shape == (R * 4, R * 4)
        if mode in ("raw-rgb", "raw-predict"):
            np.testing.assert_array_equal(eroded, plain)
        else:
            assert (eroded > 0.5).sum() < 0.9 * (plain > 0.5).sum()


def test_raw_predict_returns_the_first_prediction_and_its_mask(clip):
    _, frame, lm = clip[0]
    fp = _predict(frame, lm)
    cfg = MergeConfig(mode="raw-predict", mask_mode="learned-prd")
    image, mask = compose_frame(frame, [fp, _predict(frame, lm + 3)], cfg, R, FT)
    expected = raw_prediction(fp, face_mask(fp, cfg, face_crops(lm, cfg, R, FT)))
    np.testing.assert_array_equal(image, expected[0])
    np.testing.assert_array_equal(mask, expected[1])
    np.testing.assert_array_equal(image, image_ops.to_u8(fp.face))
    assert image.shape == (R, R, 3) and mask.shape == (R, R) and mask.dtype == np.uint8


def _standin(lm) -> StandInPredictor:
    return StandInPredictor(lm, resolution=R, face_type=FT)


def test_the_model_loop_predicts_a_batch_of_frames_per_call(clip):
    path, frame, lm = clip[0]
    infos = [FrameInfo(path, [lm]) if k % 5 else FrameInfo(path, []) for k in range(19)]  # every 5th: no face
    model = _standin(lm)
    batches = list(predict_batches(infos, lambda k: MergeConfig(), model, path.parent / "m", path.parent / "mm", batch=8))
    assert [len(b) for b in batches] == [8, 8, 3]
    assert model.calls == [6, 6, 3]  # one call per batch, over the batch's faces only
    jobs = [job for b in batches for job in b]
    assert [job.index for job in jobs] == list(range(19))
    for job, info in zip(jobs, infos):
        assert len(job.faces) == len(info.landmarks) and (job.frame is not None) == bool(info.landmarks)


def test_batch_merge_writes_what_compose_frame_makes(clip, tmp_path):
    (path_a, frame_a, lm_a), (path_b, frame_b, lm_b) = clip
    infos = [FrameInfo(path_a, [lm_a]), FrameInfo(path_b, [lm_b]), FrameInfo(path_b, [])] * 4
    infos = [FrameInfo(tmp_path / f"{k:05d}.png", i.landmarks) for k, i in enumerate(infos)]
    for k, info in enumerate(infos):
        (info.path).write_bytes((path_a if k % 3 == 0 else path_b).read_bytes())
    model = _standin(lm_a)
    cfg = MergeConfig(mode="seamless", blur=20)
    done = []
    summary = run_merge(infos, cfg, model, tmp_path / "merged", tmp_path / "merged_mask", workers=0, batch=5,
                        progress=False, on_done=done.append)
    assert summary.merged == 12 and not summary.failed and done == list(range(12))
    assert model.calls == [4, 3, 1]  # 5 frames per call, frames without faces not sent
    for info in infos:
        frame = read_image(info.path)
        faces = [FacePrediction(lm, model.predict(crop_for_model(frame, lm, R, FT)[None]).face[0], model.mask, model.mask)
                 for lm in info.landmarks]
        image, mask = compose_frame(frame, faces, cfg, R, FT)
        np.testing.assert_array_equal(read_image(tmp_path / "merged" / info.path.name), image)
        np.testing.assert_array_equal(read_image(tmp_path / "merged_mask" / info.path.name)[..., 0], mask)


def test_a_model_failure_ends_the_merge_with_that_error(clip, tmp_path):
    path, _, lm = clip[0]
    model = _standin(lm)
    calls = []

    def broken(faces):
        calls.append(len(faces))
        if len(calls) == 2:
            raise ValueError("the model broke")
        return StandInPredictor.predict(model, faces)

    model.predict = broken
    infos = [FrameInfo(path, [lm])] * 20
    with pytest.raises(ValueError, match="the model broke"):
        run_merge(infos, MergeConfig(), model, tmp_path / "m", tmp_path / "mm", workers=0, progress=False)
    assert len(calls) == 2  # the loop stopped at the failure


def test_the_job_feed_waits_for_jobs_and_stays_a_bounded_distance_ahead():
    feed = JobFeed(20, ahead=8)
    assert feed.wait_for_room(0) and len(feed) == 20
    with pytest.raises(IndexError):
        feed[20]
    feed.fail(RuntimeError("stop"))
    with pytest.raises(RuntimeError, match="stop"):
        feed[0]
    feed.close()
    assert not feed.wait_for_room(100)  # a closed feed lets the model loop end

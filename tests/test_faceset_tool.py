"""`facesettool resize`: plain resize and re-crop to a narrower face type, checked against the
original frames the faces were extracted from."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image
from facelib.align import align, invert_affine, transform_points
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from faceset.face_file import load_aligned_face, read_face_meta, update_face_meta
from faceset.faceset import Faceset
from mainscripts.faceset_tool import resize_face
from tests.conftest import run_cli
from tests.facesets import copy_faceset, make_faceset

SQUARE = np.array([[40, 40], [88, 40], [88, 88], [40, 88]], np.float32)


@pytest.fixture(scope="session")
def faceset(tmp_path_factory) -> Path:
    """Four whole_face faces at 128 px (frames kept beside them); the first has a polygon and an XSeg mask."""
    root = tmp_path_factory.mktemp("resizeset")
    files = make_faceset(["obama.jpg", "grace_hopper.jpg"], root, per_photo=2, size=128, face_type="whole_face")
    assert len(files) == 4
    meta = read_face_meta(files[0])
    meta.seg_ie_polys = [{"type": 1, "pts": SQUARE}]
    mask = np.zeros((128, 128), np.float32)
    cv2.fillPoly(mask, [SQUARE.astype(np.int32)], 1.0)
    meta.xseg_mask = mask
    update_face_meta(files[0], meta)
    return root / "aligned"


def frame_of(faceset: Path, meta) -> np.ndarray:
    return read_image(faceset.parent / meta.source_filename)


def test_plain_resize_scales_everything_and_leaves_originals_without_merge(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.glob("*.jpg")}
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "64", "--no-merge")
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in folder.glob("*.jpg")} == before
    out = tmp_path / "aligned_resized"
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    for name in before:
        old_img, old = load_aligned_face(folder / name)
        img, new = load_aligned_face(out / name)
        assert img.shape == (64, 64, 3) and new.face_type.long_name == "whole_face"
        assert np.abs(new.landmarks - old.landmarks * 0.5).max() < 0.5
        assert np.abs(transform_points(new.source_landmarks, new.image_to_face_mat) - new.landmarks).max() < 1.0
        assert np.abs(img.astype(int) - cv2.resize(old_img, (64, 64), interpolation=cv2.INTER_AREA)).mean() < 3


def test_recrop_to_full_face_lands_on_the_frame_and_merges_back(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    old_metas = {p.name: read_face_meta(p) for p in folder.glob("*.jpg")}
    # no terminal: merging back is the default
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "96", "--face-type", "f")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "aligned_resized").exists()
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(old_metas)
    for name, old in old_metas.items():
        img, new = load_aligned_face(folder / name)
        assert img.shape == (96, 96, 3) and new.face_type.long_name == "full_face"
        assert new.source_filename == old.source_filename and new.source_rect == old.source_rect
        # the new crop matrix takes the frame's landmarks onto the new landmarks ...
        mapped = transform_points(new.source_landmarks, new.image_to_face_mat)
        assert np.abs(mapped - new.landmarks).max() < 1.0
        # ... is the crop extraction would make of a full_face directly ...
        direct = transform_points(new.source_landmarks, align(new.source_landmarks, 96, FaceType.FULL))
        assert np.abs(mapped - direct).max() < 1.0
        # ... and cropping the original frame with it reproduces the face
        frame = frame_of(faceset, new)
        recrop = cv2.warpAffine(frame, new.image_to_face_mat, (96, 96), flags=cv2.INTER_LANCZOS4)
        assert np.abs(recrop.astype(int) - img.astype(int))[8:-8, 8:-8].mean() < 6
        # a full_face crop is tighter: the face fills more of the image
        assert np.ptp(new.landmarks[:, 0]) / 96 > np.ptp(old.landmarks[:, 0]) / 128 * 1.1


def test_recrop_moves_polygons_and_xseg_mask_with_the_pixels(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    first = sorted(folder.glob("*.jpg"))[0]
    old = read_face_meta(first)
    assert run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "96",
                   "--face-type", "full_face", "--merge").returncode == 0
    new = read_face_meta(first)
    # through the frame: old face -> frame -> new face
    old_to_new = (np.vstack([new.image_to_face_mat, [0, 0, 1]])
                  @ np.vstack([invert_affine(old.image_to_face_mat), [0, 0, 1]]))[:2]
    expected = transform_points(SQUARE, old_to_new)
    assert np.abs(new.seg_ie_polys[0]["pts"] - expected).max() < 1.0
    assert new.xseg_mask.shape == (96, 96)
    inside = np.round(expected.mean(axis=0)).astype(int)
    assert new.xseg_mask[inside[1], inside[0]] > 0.9
    outside = np.round(transform_points([[30, 64], [64, 30]], old_to_new)).astype(int)  # left of and above the square
    assert all(new.xseg_mask[y, x] < 0.1 for x, y in outside)
    ys, xs = np.nonzero(new.xseg_mask > 0.5)
    lo, hi = expected.min(axis=0), expected.max(axis=0)
    assert xs.min() >= lo[0] - 2 and xs.max() <= hi[0] + 2 and ys.min() >= lo[1] - 2 and ys.max() <= hi[1] + 2


def test_widening_the_face_type_is_refused_and_changes_nothing(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.glob("*.jpg")}
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "96", "--face-type", "head", "--merge")
    assert result.returncode == 1 and "cannot widen" in result.stderr
    assert len(result.error_lines) == 1
    assert {p.name: p.read_bytes() for p in folder.glob("*.jpg")} == before


def test_bad_input_is_one_error_line(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    (tmp_path / "aligned_resized").mkdir()
    (tmp_path / "aligned_resized" / "left_over.jpg").write_bytes(b"x")
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "64")
    assert result.returncode == 1 and "not empty" in result.error_lines[0]
    result = run_cli("facesettool", "resize", "--input-dir", str(tmp_path / "missing"), "--image-size", "64")
    assert result.returncode == 1 and len(result.error_lines) == 1
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "64", "--face-type", "sideways")
    assert result.returncode == 1 and "unknown face type" in result.error_lines[0]
    assert "FaceEnhancer" in run_cli("facesettool", "--help").stdout


def test_recrop_matrix_is_a_fresh_crop_spec_at_the_new_size(faceset):
    """Re-cropping from the face's pixels gives the crop extraction would make from the frame; a plain
    resize keeps that crop, shifted only by cv2.resize's pixel-centre convention."""
    for face in Faceset.open(faceset):
        image, meta = face.load()
        _, recropped = resize_face(image, meta, 96, FaceType.FULL)
        fresh = CropSpec(96, FaceType.FULL).of(meta.source_landmarks)
        np.testing.assert_allclose(recropped.image_to_face_mat, fresh.mat, atol=1e-4)
        np.testing.assert_allclose(recropped.landmarks, fresh.to_face(meta.source_landmarks), atol=1e-3)
        _, resized = resize_face(image, meta, 64)
        s = 64 / 128
        same = CropSpec(64, FaceType.WHOLE_FACE).matrix(meta.source_landmarks)
        np.testing.assert_allclose(resized.image_to_face_mat, same + [[0, 0, (s - 1) / 2], [0, 0, (s - 1) / 2]], atol=1e-4)
        np.testing.assert_allclose(transform_points(meta.source_landmarks, resized.image_to_face_mat), resized.landmarks,
                                   atol=1e-3)

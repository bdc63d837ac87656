"""The crop value types: a CropSpec's matrix is align()'s, a Crop's warp and point maps agree, and the
extractor writes exactly the one Crop it computed per face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import facelib.crop
from facelib.align import align
from facelib.crop import CropSpec
from facelib.detectors import detect
from facelib.face_type import FaceType
from facelib.landmarks import landmarks
from faceset.face_file import load_aligned_face
from mainscripts.extract_stages import FrameExtractor, FrameJob, FrameSettings
from tests.conftest import FACES

CROP_TYPES = [FaceType.HALF, FaceType.MID_FULL, FaceType.FULL, FaceType.FULL_NO_ALIGN, FaceType.WHOLE_FACE,
              FaceType.HEAD, FaceType.HEAD_NO_ALIGN]


@pytest.fixture(scope="module")
def photo():
    """A real face photo and the landmarker's 68 points on its biggest face."""
    image = cv2.imread(str(FACES / "obama.jpg"))
    face = max(detect(image), key=lambda f: f.area)
    return image, landmarks(image, face)


@pytest.mark.parametrize("face_type", CROP_TYPES)
@pytest.mark.parametrize("size,scale", [(128, 1.0), (256, 1.2), (96, 0.8)])
def test_spec_matrix_is_align(photo, face_type, size, scale):
    _, lm = photo
    spec = CropSpec(size, face_type, scale)
    np.testing.assert_array_equal(spec.matrix(lm), align(lm, size, face_type, scale))
    crop = spec.of(lm)
    assert crop.size == size and crop.face_type == face_type and crop.spec == spec
    np.testing.assert_array_equal(crop.mat, align(lm, size, face_type, scale))


@pytest.mark.parametrize("face_type", [FaceType.FULL, FaceType.WHOLE_FACE, FaceType.HEAD_NO_ALIGN])
def test_warp_puts_the_landmarks_where_to_face_says(photo, face_type):
    image, lm = photo
    spec = CropSpec(192, face_type)
    crop = spec.of(lm)
    face = crop.warp(image)
    assert face.shape == (192, 192, 3) and face.dtype == np.uint8
    assert face[64:128, 64:128].std() > 10  # a real face in the middle
    # Warp a map of frame coordinates the same way: at each face-space landmark it must read back
    # the frame landmark, within a pixel.
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = crop.warp(np.dstack([xx, yy, np.zeros_like(xx)]), cv2.INTER_LINEAR)
    in_face = spec.to_face(lm)
    np.testing.assert_allclose(in_face, crop.to_face(lm))
    inside = np.all((in_face >= 0) & (in_face <= 191), axis=1)
    assert inside.sum() >= 60
    for (fx, fy), want in zip(in_face[inside], lm[inside]):
        got = cv2.getRectSubPix(coords, (1, 1), (float(fx), float(fy)))[0, 0, :2]
        assert np.linalg.norm(got - want) < 1.0, (got, want)


def test_to_frame_inverts_to_face(photo):
    _, lm = photo
    crop = CropSpec(256, FaceType.WHOLE_FACE, 1.1).of(lm)
    pts = np.random.default_rng(0).uniform(-50, 600, (40, 2))
    np.testing.assert_allclose(crop.to_frame(crop.to_face(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(crop.to_face(crop.to_frame(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(crop.inverse @ np.append(crop.mat @ [10.0, 20.0, 1.0], 1.0), [10.0, 20.0], atol=1e-9)
    assert crop.pixel_scale == pytest.approx(float(np.sqrt(abs(np.linalg.det(crop.mat[:, :2])))))


@pytest.mark.parametrize("face_type", ["f", "wf"])  # "f" also runs the crop-size sanity check
def test_extractor_computes_one_crop_per_face_and_writes_it(tmp_path, monkeypatch, face_type):
    frame = tmp_path / "00001.png"
    cv2.imwrite(str(frame), cv2.imread(str(FACES / "obama.jpg")))
    out, debug = tmp_path / "aligned", tmp_path / "debug"
    out.mkdir()
    debug.mkdir()
    extractor = FrameExtractor(FrameSettings(output_dir=out, face_type=face_type, image_size=128, debug_dir=debug))
    computed = []
    real_align = facelib.crop.align

    def counting_align(*args, **kwargs):
        computed.append(real_align(*args, **kwargs))
        return computed[-1]

    monkeypatch.setattr(facelib.crop, "align", counting_align)
    outcome = extractor(FrameJob(frame))
    assert outcome.write_error is None and outcome.faces_written >= 1
    assert len(computed) == outcome.faces_written  # once per face: sanity check, face, metadata and debug share it
    written = sorted(out.glob("*.jpg"))
    assert len(written) == outcome.faces_written and (debug / "00001.jpg").exists()
    for path, mat in zip(written, computed):
        _, meta = load_aligned_face(path)
        np.testing.assert_array_equal(meta.image_to_face_mat, mat)
        np.testing.assert_allclose(meta.landmarks, CropSpec(128, FaceType.from_string(face_type)).to_face(meta.source_landmarks))


def test_merge_face_crops_are_the_crop_specs_placed_on_the_face(photo):
    """The merger's three crops of a real face: the model's crop, and the output and subres mask
    crops zoomed by output_face_scale; the face's frame region covers both R x R squares."""
    from merger.config import MergeConfig
    from merger.face_geometry import face_crops, face_region
    image, lm = photo
    crops = face_crops(lm, MergeConfig(output_face_scale=-20), 64, FaceType.WHOLE_FACE)
    assert crops.resolution == 64
    for crop, (size, scale) in zip((crops.face, crops.out, crops.mask), [(64, 1.0), (64, 0.8), (256, 0.8)]):
        assert crop.size == size and crop.face_type == FaceType.WHOLE_FACE
        np.testing.assert_allclose(crop.mat, CropSpec(size, FaceType.WHOLE_FACE, scale).of(lm).mat, atol=1e-9)
    region = face_region(image, crops)
    x0, y0, x1, y1 = region.box
    h, w = image.shape[:2]
    for crop in (crops.face, crops.out):
        corners = crop.to_frame(np.array([(0, 0), (64, 0), (64, 64), (0, 64)], np.float64))
        assert np.all(np.clip(corners[:, 0], 0, w) >= x0) and np.all(np.clip(corners[:, 0], 0, w) <= x1)
        assert np.all(np.clip(corners[:, 1], 0, h) >= y0) and np.all(np.clip(corners[:, 1], 0, h) <= y1)


def test_only_facelib_crop_calls_align():
    """One crop geometry, asked for in one way: outside facelib/crop.py the toolkit takes crops from a
    CropSpec, never from align() with loose (size, face type) values."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    callers = []
    for package in ("core", "facelib", "faceset", "merger", "mainscripts", "models"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name == "align":
                        callers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert callers and all(c.startswith("facelib/crop.py:") for c in callers), callers

"""No false faces: detections whose landmark fit does not look like a face are dropped (facelib.plausibility).

The false face: scikit-image's `stereo_motorcycle` photo (a motorbike, no people) at twice its size,
where CenterFace finds a "face" in the bodywork. The real faces: tests/data photos, which must all survive the check.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image, write_image
from facelib import plausibility
from facelib.detectors import get_detector
from facelib.landmarks import landmarks
from mainscripts.extract_stages import FrameExtractor, FrameSettings

pytestmark = pytest.mark.usefixtures("no_terminal")

DATA = Path(__file__).resolve().parent / "data"
skimage_data = pytest.importorskip("skimage.data")


def _motorcycle() -> np.ndarray:
    """The photo at twice its size, so the false face is above extract's 32 px minimum face size."""
    image = np.ascontiguousarray(skimage_data.stereo_motorcycle()[0][:, :, ::-1])
    return cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)


@functools.cache
def _real_faces() -> list[tuple[np.ndarray, np.ndarray]]:
    det = get_detector("centerface")
    out = []
    photos = sorted((DATA / "faces").glob("*.jpg")) + sorted((DATA / "johns").glob("*/*.jpg"))[::6]
    for p in photos:
        image = read_image(p)
        for face in det.detect(image):
            out.append((image, landmarks(image, face)))
    return out


def test_the_motorcycle_face_is_dropped_and_real_faces_are_kept(tmp_path):
    image = _motorcycle()
    loose = FrameExtractor(FrameSettings(tmp_path, plausibility_threshold=plausibility.OFF))
    strict = FrameExtractor(FrameSettings(tmp_path))
    found, dropped = loose.find_faces(image)
    assert len(found) == 1 and dropped == 0  # what extract kept before this check
    found, dropped = strict.find_faces(image)
    assert found == [] and dropped == 1
    real = _real_faces()
    assert len(real) >= 10
    scores = [plausibility.score(img, pts) for img, pts in real]
    assert min(scores) >= plausibility.DEFAULT_THRESHOLD


def test_shape_distance_grows_as_the_fit_leaves_a_face_shape():
    image, points = _real_faces()[0]
    assert plausibility.shape_distance(points) < 0.09
    rng = np.random.default_rng(0)
    size = np.ptp(points, axis=0).mean()
    bent = points + rng.normal(0, 0.15 * size, points.shape)
    assert plausibility.shape_distance(bent) > 2 * plausibility.shape_distance(points)
    assert plausibility.score(image, bent) < plausibility.score(image, points)


def test_extract_counts_and_drops_the_false_face_with_the_threshold_option(tmp_path):
    from mainscripts.extractor import ExtractSettings, extract
    frames = tmp_path / "photos"
    frames.mkdir()
    write_image(frames / "bike.png", _motorcycle())
    cv2.imwrite(str(frames / "obama.jpg"), read_image(DATA / "faces" / "obama.jpg"))
    settings = dict(detector="centerface", face_type="wf", image_size=64, workers=0)
    stats = extract(frames, tmp_path / "aligned", ExtractSettings(**settings))
    assert stats["faces"] == 1 and stats["implausible"] == 1
    assert [p.name for p in (tmp_path / "aligned").glob("*.jpg")] == ["obama_0.jpg"]
    off = extract(frames, tmp_path / "loose", ExtractSettings(**settings, plausibility_threshold=-3.0))
    assert off["faces"] == 2 and off["implausible"] == 0

"""A generic XSeg model's mask is cut to the landmark hull (its targets never reach past it), in the
masker, in `xseg apply` and in the merger's XSeg masks; models trained on labels or imported from DFL
are not cut. Stand-in networks (all ones) make the cut itself visible; the faces are real."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facelib.face_type import FaceType
from facelib.masks import hull_mask
from faceset.face_file import load_aligned_face
from faceset.faceset import Faceset
from mainscripts.xseg_util import apply_masks
from merger.xseg_masks import masks_of
from models.xseg import XSegMasker
from tests.facesets import extract_faces

JOHNS = Path(__file__).resolve().parent / "data" / "johns"


@pytest.fixture(scope="module")
def aligned(tmp_path_factory) -> Path:
    """Two real whole faces at 128 px, made by the extractor."""
    root = tmp_path_factory.mktemp("xseg_gate")
    photos = sorted((JOHNS / "John_Simm").glob("*.jpg"))[:2]
    files = extract_faces(photos, root / "aligned", size=128)
    assert len(files) == 2
    return root / "aligned"


def _masker(**options) -> XSegMasker:
    """An XSegMasker over a stand-in network that calls every pixel face."""
    def ones(x: np.ndarray) -> np.ndarray:
        return np.ones(x.shape[:3], np.float32)
    model = SimpleNamespace(resolution=64, face_type=FaceType.WHOLE_FACE, files=SimpleNamespace(name="new"),
                            iteration=1, options=options, mask_batch=ones)
    return XSegMasker(model)  # type: ignore[arg-type]


def _faces(folder: Path) -> tuple[np.ndarray, np.ndarray, list]:
    loaded = [f.load() for f in Faceset.open(folder)]
    return np.stack([img for img, _ in loaded]), np.stack([m.landmarks for _, m in loaded]), [m for _, m in loaded]


def test_a_generic_models_mask_stops_at_the_landmark_hull_and_others_do_not(aligned):
    faces, marks, metas = _faces(aligned)
    generic = _masker(generic=True)
    assert generic.uses_landmarks
    cut = generic.masks(faces, marks)
    for mask, meta in zip(cut, metas):
        hull = hull_mask(mask.shape, meta.landmarks) > 0.5
        assert np.array_equal(mask > 0.5, hull)  # face everywhere inside the hull, nothing outside
        assert 0.15 < hull.mean() < 0.8
    assert (generic.masks(faces) == 1.0).all()  # no landmarks given: the network's mask as it is
    for options in ({"generic": False}, {"generic": True, "dfl_layout": True}):  # labels only; imported from DFL
        masker = _masker(**options)
        assert not masker.uses_landmarks and (masker.masks(faces, marks) == 1.0).all()
    with pytest.raises(ValueError, match="landmarks"):
        generic.masks(faces, marks[:1])


def test_masks_of_gives_landmarks_only_to_maskers_that_use_them(aligned):
    faces, marks, _ = _faces(aligned)

    class Plain:  # a masker of the older contract: masks(faces) only
        resolution, face_type = 64, None

        def masks(self, x):
            return np.ones(x.shape[:3], np.float32)
    assert (masks_of(Plain(), faces, list(marks)) == 1.0).all()
    assert (masks_of(_masker(generic=True), faces, list(marks)).mean(axis=(1, 2)) < 0.8).all()


def test_xseg_apply_bakes_a_generic_mask_inside_the_hull(aligned, tmp_path):
    folder = tmp_path / "aligned"
    shutil.copytree(aligned, folder)
    assert apply_masks(folder, None, masker=_masker(generic=True)) == 2
    for path in sorted(folder.glob("*.jpg")):
        image, meta = load_aligned_face(path)
        hull = hull_mask(image.shape[:2], meta.landmarks) > 0.5
        baked = np.asarray(meta.xseg_mask) > 0.5
        assert baked.shape == hull.shape and np.array_equal(baked, hull)

"""XSeg training targets on real faces: synthetic occluders change only the pixels they draw on and
take exactly those out of the target, are reproducible from a seed, hide a sizeable but not
overwhelming part of the face; background pasting keeps the face; labels give the training mask."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from facelib.masks import hull_mask, polygons_mask
from faceset.faceset import Faceset
from models.xseg_targets import (
    OCCLUDER_KINDS,
    composite,
    label_face_size,
    labelled_target,
    occlude,
    occluder_layers,
    paste_background,
)
from tests.facesets import make_faceset


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """(image, meta, hull) of real aligned 128 px whole faces of four people."""
    root = tmp_path_factory.mktemp("xseg_targets")
    make_faceset(["obama.jpg", "biden.jpg", "grace_hopper.jpg", "astronaut.jpg"], root, per_photo=2, size=128)
    out = []
    for face in Faceset.open(root / "aligned"):
        image, meta = face.load()
        out.append((image, meta, hull_mask(image.shape[:2], meta.landmarks)))
    assert len(out) == 8
    return out


def _sample(faces, i: int, kind: str, seed: int, count=(1, 1), with_landmarks: bool = True):
    image, meta, hull = faces[i % len(faces)]
    donor = faces[(i + 3) % len(faces)][0]
    rng = np.random.default_rng(seed)
    lm = meta.landmarks if with_landmarks else None
    return image, hull, occluder_layers(image, hull, rng, [donor], (kind,), count, lm)


@pytest.mark.parametrize("kind", OCCLUDER_KINDS)
def test_occluder_changes_pixels_only_under_its_alpha_and_target_drops_exactly_where_it_covers(faces, kind):
    for seed in range(6):
        image, hull, layers = _sample(faces, seed, kind, seed, with_landmarks=seed % 2 == 0)
        assert len(layers) == 1
        alpha, cover = layers[0].alpha, layers[0].cover
        out, target = composite(image, hull, layers)
        changed = np.any(out != image, axis=2)
        assert changed.any(), f"{kind} (seed {seed}) drew nothing"
        assert not changed[alpha == 0].any()
        assert not (cover[alpha == 0] > 0).any()
        assert np.array_equal(target < hull, (cover > 0) & (hull > 0))
        assert np.array_equal(target[cover == 0], hull[cover == 0])
        # occlude() is the same draw
        again = occlude(image, hull, np.random.default_rng(seed), [faces[(seed + 3) % len(faces)][0]], (kind,),
                        (1, 1), faces[seed % len(faces)][1].landmarks if seed % 2 == 0 else None)
        assert np.array_equal(again[0], out) and np.array_equal(again[1], target)


def test_same_seed_same_occlusion_and_other_seeds_differ(faces):
    image, _, hull = faces[0]
    donors = [faces[4][0]]
    a = occlude(image, hull, np.random.default_rng(7), donors, count=(2, 3))
    b = occlude(image, hull, np.random.default_rng(7), donors, count=(2, 3))
    c = occlude(image, hull, np.random.default_rng(8), donors, count=(2, 3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_count_zero_leaves_face_and_region_untouched(faces):
    image, _, hull = faces[1]
    out, target = occlude(image, hull, np.random.default_rng(0), count=(0, 0))
    assert np.array_equal(out, image) and np.array_equal(target, hull)
    assert out is not image  # a copy: the caller may write into it


def test_target_stays_within_the_region(faces):
    for seed in range(10):
        image, _, hull = faces[seed % len(faces)]
        out, target = occlude(image, hull, np.random.default_rng(seed), [faces[0][0]])
        assert target.dtype == np.float32 and out.dtype == np.uint8 and out.shape == image.shape
        assert (target >= 0).all() and (target <= hull).all()


@pytest.mark.parametrize("kind", OCCLUDER_KINDS)
def test_each_kind_hides_a_sizeable_part_of_the_face_on_average(faces, kind):
    hidden = []
    for seed in range(16):
        image, hull, layers = _sample(faces, seed, kind, 100 + seed, with_landmarks=seed % 2 == 0)
        _, target = composite(image, hull, layers)
        hidden.append(1.0 - (target > 0.5).sum() / (hull > 0.5).sum())
    assert 0.05 <= float(np.mean(hidden)) <= 0.6, (kind, np.round(hidden, 2))


def test_glasses_sit_on_the_eyes_given_landmarks(faces):
    for seed in range(6):
        image, hull, layers = _sample(faces, seed, "glasses", seed)
        lm = faces[seed % len(faces)][1].landmarks
        for eye in (lm[36:42].mean(0), lm[42:48].mean(0)):
            x, y = np.rint(eye).astype(int)
            assert layers[0].alpha[y, x] > 0, f"seed {seed}: no lens over the eye at {x},{y}"


def test_a_shape_takes_the_faces_own_colour(faces):
    """"shape" occluders are the face's colour (shifted a little), unlike objects: the network must find them
    by their outline, not by a colour skin never has."""
    for seed in range(8):
        image, hull, layers = _sample(faces, seed, "shape", 200 + seed)
        solid = layers[0].alpha > 0.5
        assert solid.sum() > 5, seed
        painted = np.median(layers[0].colour[solid], axis=0)
        skin = np.median(image[hull > 0.5].astype(np.float32), axis=0)
        assert np.linalg.norm(painted - skin) < 0.35 * np.linalg.norm(skin), (seed, painted, skin)


def test_unknown_kind_is_refused(faces):
    image, _, hull = faces[0]
    with pytest.raises(ValueError, match="kinds"):
        occlude(image, hull, np.random.default_rng(0), kinds=("tongue",), count=(1, 1))


def test_paste_background_keeps_the_face_inside_the_target_and_replaces_the_rest(faces):
    image, _, hull = faces[2]
    donor = cv2.resize(faces[5][0], (96, 96))  # a donor of another size
    for seed in range(4):
        _, target = occlude(image, hull, np.random.default_rng(seed), count=(1, 2))
        out = paste_background(image, target, donor, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8
        inside = target > 0
        assert np.array_equal(out[inside], image[inside])
        far = cv2.dilate(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
        assert np.mean(np.any(out[far] != image[far], axis=1)) > 0.5
        assert np.array_equal(out, paste_background(image, target, donor, np.random.default_rng(seed)))


def test_labelled_target_rasterises_the_labels_in_face_pixels_and_resizes(faces):
    image, meta, hull = faces[3]
    contours, _ = cv2.findContours((hull > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    include = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float32)
    lm = meta.landmarks
    eye = np.array([lm[36:42].min(0) - 3, [lm[36:42].max(0)[0] + 3, lm[36:42].min(0)[1] - 3],
                    lm[36:42].max(0) + 3, [lm[36:42].min(0)[0] - 3, lm[36:42].max(0)[1] + 3]], np.float32)
    polys = [{"type": 1, "pts": include}, {"type": 0, "pts": eye}]
    labelled = replace(meta, seg_ie_polys=polys)
    assert label_face_size(labelled) == image.shape[0]
    at_face = labelled_target(labelled, 128)
    assert at_face.dtype == np.float32 and np.array_equal(at_face, polygons_mask((128, 128), polys))
    at_256 = labelled_target(labelled, 256)
    truth = polygons_mask((256, 256), [{"type": p["type"], "pts": p["pts"] * 2} for p in polys])
    a, b = at_256 > 0.5, truth > 0.5
    assert at_256.shape == (256, 256) and (a & b).sum() / (a | b).sum() > 0.97
    assert labelled_target(labelled, 256, face_size=128).shape == (256, 256)
    assert labelled_target(replace(meta, seg_ie_polys=[{"type": 0, "pts": eye}]), 128) is None
    assert labelled_target(replace(meta, seg_ie_polys=None), 128) is None


def test_label_face_size_reads_the_face_size_from_landmarks(tmp_path):
    make_faceset(["biden.jpg"], tmp_path, per_photo=1, size=96)
    (face,) = list(Faceset.open(tmp_path / "aligned"))
    image, meta = face.load()
    assert image.shape[0] == 96 and label_face_size(meta) == 96

"""XSeg: the segmentation network, its training samples, `train --model XSeg` and `load_xseg`, on real faces."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from facelib.face_type import FaceType
from tests.conftest import run_cli
from tests.facesets import make_faceset

TINY = dict(face_type="wf", resolution=64, dims=4, batch_size=2, generic=False, autobackup_hour=0)
TINY_FLAGS = ["--face-type", "wf", "--resolution", "64", "--dims", "4", "--batch-size", "2"]


@pytest.fixture(scope="module")
def facesets(tmp_path_factory) -> tuple[Path, Path]:
    """src: obama with hand labels on two faces (the face region minus a bar over the eyes); dst: biden,
    unlabelled."""
    root = tmp_path_factory.mktemp("xseg_facesets")
    make_faceset(["obama.jpg"], root / "src", per_photo=4, size=96)
    make_faceset(["biden.jpg"], root / "dst", per_photo=3, size=96)
    src = root / "src" / "aligned"
    from faceset.faceset import Faceset
    fs = Faceset.open(src)
    for face in list(fs)[:2]:
        _, meta = face.load()
        fs.write_meta(face, _with_labels(meta))
    return src, root / "dst" / "aligned"


def _with_labels(meta):
    import dataclasses

    from facelib.masks import JAW, raise_eyebrows
    lm = raise_eyebrows(meta.landmarks)
    include = np.concatenate([lm[JAW], lm[26:16:-1]]).astype(np.float32)  # jaw, then brows right to left
    eyes = lm[36:48]
    x0, y0 = eyes.min(axis=0) - 3
    x1, y1 = eyes.max(axis=0) + 3
    exclude = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)  # "sunglasses"
    return dataclasses.replace(meta, seg_ie_polys=[{"type": 1, "pts": include}, {"type": 0, "pts": exclude}])


def _model(tmp_path: Path, training: bool = True, **overrides):
    from core import keras_backend as kb
    kb.prepare("float32")
    from models.model_files import ModelFiles
    from models.xseg import XSeg
    return XSeg(ModelFiles(tmp_path, "new", "XSeg"), {**TINY, **overrides}, training=training)


def _faces(folder: Path) -> np.ndarray:
    from faceset.faceset import Faceset
    return np.stack([face.load()[0] for face in Faceset.open(folder)])


def test_network_masks_any_face_size_in_0_1_without_transposed_convolutions(facesets, tmp_path):
    model = _model(tmp_path, training=False)
    layer_kinds = {type(layer).__name__ for layer in model.nets["xseg"].layers}
    assert "Conv2DTranspose" not in layer_kinds and "UpSampling2D" in layer_kinds  # ONNX runtimes run it on GPU
    from models.xseg import XSegMasker
    masker = XSegMasker(model)
    faces = _faces(facesets[0])  # 96 px
    for batch in (faces[:1], faces, np.stack([np.ascontiguousarray(f[:80, :80]) for f in faces[:3]])):
        masks = masker.masks(batch)
        assert masks.shape == batch.shape[:3] and masks.dtype == np.float32
        assert 0.0 <= masks.min() and masks.max() <= 1.0
    with pytest.raises(ValueError):
        masker.masks(faces[0])


def test_samples_use_hand_labels_and_fall_back_to_generic_targets(facesets, capsys):
    from models.augment import SampleSpec, _Producer
    from models.sample_set import load_faceset
    from models.xseg_samples import select_faces
    spec = SampleSpec(resolution=64, face_type=FaceType.WHOLE_FACE, random_flip=True, eyes_mouth=False, target="xseg")
    src, dst = load_faceset(facesets[0]), load_faceset(facesets[1])
    labelled, src_spec = select_faces(src, spec, "src")
    unlabelled, dst_spec = select_faces(dst, spec, "dst")
    assert len(labelled) == 2 and not src_spec.generic  # DFL: the labelled faces only
    assert len(unlabelled) == len(dst) and dst_spec.generic  # not "No segmented faces found"
    assert "dst: no labelled faces: training on generic" in capsys.readouterr().err
    everything, generic_spec = select_faces(src, SampleSpec(**{**spec.__dict__, "generic": True}), "src")
    assert len(everything) == len(src) and generic_spec.generic
    borrowed, borrowed_spec = select_faces(dst, spec, "dst", pool=src)  # DFL pools src and dst labels
    assert [r.where for r in borrowed] == [r.where for r in labelled] and not borrowed_spec.generic

    for records, side_spec in ((labelled, src_spec), (unlabelled, dst_spec)):
        batch = _Producer(records, side_spec, 6, seed=3, ct_source=None, cache_bytes=1 << 26).next_batch()
        assert batch.warped.shape == (6, 64, 64, 3) and batch.mask.shape == (6, 64, 64, 1)
        assert set(np.unique(batch.mask)) <= {0.0, 1.0}  # binary targets, as DFL's
        covered = batch.mask.mean(axis=(1, 2, 3))
        assert (covered > 0.1).all() and (covered < 0.9).all()  # a face, not the whole square or nothing
    # the labelled face's exclude polygon (the eye bar) is cut out of its target: the preview shows it
    from models.augment import preview_batch
    view = preview_batch(labelled, src_spec, 2)
    from facelib.masks import hull_mask
    hull = hull_mask((64, 64), labelled[0].landmarks * (64 / 96))
    assert view.mask[0, ..., 0].sum() < 0.9 * hull.sum()


def _generic(spec):
    from models.augment import SampleSpec
    return SampleSpec(**{**spec.__dict__, "generic": True})


def _drawn_labelled_share(records, spec, draws: int = 600) -> float:
    """How often the training sampler draws a labelled face (DFL-style shuffled epochs over the list)."""
    from models.augment import _Producer
    producer = _Producer(records, spec, 2, seed=5, ct_source=None, cache_bytes=0)
    return float(np.mean([records[producer.order.next()].usable_labels for _ in range(draws)]))


def test_generic_training_draws_hand_labelled_faces_half_the_time_however_few(facesets):
    """`--generic` with some labels: the labels "are mixed in and take precedence", so one labelled face
    among 40 is drawn for half the samples, not 1 in 41; without unlabelled faces nothing is repeated."""
    import dataclasses

    from models.augment import SampleSpec
    from models.sample_set import load_faceset
    from models.xseg_samples import select_faces
    spec = _generic(SampleSpec(resolution=64, face_type=FaceType.WHOLE_FACE, eyes_mouth=False, target="xseg"))
    src, dst = load_faceset(facesets[0]), load_faceset(facesets[1])
    assert [r.labelled for r in src] == [True, True, False, False] and not any(r.labelled for r in dst)
    many = [dataclasses.replace(dst[k % len(dst)]) for k in range(40)]  # 40 unlabelled faces (same files)
    for records in ([src[0], *many], src + many, src):
        chosen, side_spec = select_faces(records, spec, "src")
        assert side_spec.generic and {id(r) for r in chosen} == {id(r) for r in records}  # every face trains
        natural = sum(r.labelled for r in records) / len(records)
        share = _drawn_labelled_share(chosen, side_spec)
        assert abs(share - max(0.5, natural)) < 0.05, (share, natural)


def test_labels_that_cannot_make_a_mask_are_skipped_with_one_warning_per_face(facesets, tmp_path, capsys):
    from faceset.faceset import Faceset
    from models.augment import SampleSpec, _load_face
    from models.sample_set import load_faceset
    from models.xseg_samples import select_faces, xseg_masks
    from tests.facesets import copy_faceset
    folder = copy_faceset(facesets[0], tmp_path)
    fs = Faceset.open(folder)
    faces = list(fs)
    _, meta = faces[1].load()
    bow_tie = meta.seg_ie_polys[1]["pts"][[0, 2, 1, 3]]  # the eye bar's corners out of order: it crosses itself
    fs.write_meta(faces[1], _replace_poly(meta, 1, bow_tie))
    _, meta = faces[2].load()
    fs.write_meta(faces[2], _replace_poly(_with_labels(meta), 0, _with_labels(meta).seg_ie_polys[0]["pts"][:2]))
    records = load_faceset(folder)
    assert [bool(r.label_problems) for r in records] == [False, True, True, False]
    spec = SampleSpec(resolution=64, face_type=FaceType.WHOLE_FACE, eyes_mouth=False, target="xseg")
    capsys.readouterr()

    chosen, side_spec = select_faces(records, spec, "src")  # labels alone: the bad faces are left out
    assert chosen == [records[0]] and not side_spec.generic
    warnings = [line for line in capsys.readouterr().err.splitlines() if "labels are skipped" in line]
    assert len(warnings) == 2 and "left out of training" in warnings[0]
    assert f"{records[1].where}: label polygon 2 (exclude) crosses itself" in warnings[0]
    assert f"{records[2].where}: label polygon 1 (include) has 2 points" in warnings[1]

    chosen, side_spec = select_faces(records, _generic(spec), "src")  # generic: they train on generic targets
    assert set(map(id, chosen)) == set(map(id, records))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "labels are skipped" in line]
    assert len(warnings) == 2 and all("trains on a generic target" in w for w in warnings)
    broken = records[1:3]  # a side whose only labels are broken trains on the other side's: they are left out
    chosen, side_spec = select_faces(broken, spec, "dst", pool=records)
    assert chosen == [records[0]] and not side_spec.generic
    warnings = [line for line in capsys.readouterr().err.splitlines() if "labels are skipped" in line]
    assert len(warnings) == 2 and all("left out of training" in w for w in warnings)
    warned: set[str] = set()  # the trainer's: one faceset as src and dst names each face once
    select_faces(records, spec, "src", warned), select_faces(records, spec, "dst", warned)
    assert sum("labels are skipped" in line for line in capsys.readouterr().err.splitlines()) == 2
    face = _load_face(records[1], side_spec.face_type, 64, True, False, xseg_masks)
    assert not face.labelled and face.masks[..., 0].max() == 0  # no target from the broken labels


def _replace_poly(meta, index: int, pts: np.ndarray):
    import dataclasses
    polys = [dict(p) for p in meta.seg_ie_polys]
    polys[index]["pts"] = np.asarray(pts, np.float32)
    return dataclasses.replace(meta, seg_ie_polys=polys)


def test_generic_occluders_are_placed_by_the_faces_landmarks(facesets, monkeypatch):
    """Glasses sit on the eyes: the synthetic occluders get the face's 68 landmarks at the sample's size."""
    import models.xseg_targets as targets
    from facelib.crop import CropSpec
    from models.augment import SampleSpec, _Producer
    from models.sample_set import load_faceset
    seen: list = []
    real = targets.occlude

    def spy(face, region, rng, donors=(), kinds=targets.OCCLUDER_KINDS, count=(0, 3), landmarks=None):
        seen.append((face.shape, landmarks))
        return real(face, region, rng, donors, kinds, count, landmarks)

    monkeypatch.setattr(targets, "occlude", spy)
    rec = load_faceset(facesets[1])[0]  # whole_face at 96 px, unlabelled
    for face_type in ("wf", "f"):  # resized, and re-cropped to a narrower face type
        seen.clear()
        spec = SampleSpec(resolution=64, face_type=FaceType.from_string(face_type), eyes_mouth=False, target="xseg", generic=True)
        _Producer([rec], spec, 3, seed=1, ct_source=None, cache_bytes=1 << 26).next_batch()
        expected = CropSpec(64, FaceType.from_string(face_type)).to_face(rec.landmarks) if face_type == "f" \
            else (rec.landmarks + 0.5) * (64 / 96) - 0.5
        assert len(seen) == 3
        for shape, landmarks in seen:
            assert shape == (64, 64, 3) and landmarks is not None and landmarks.shape == (68, 2)
            assert np.abs(landmarks - expected).max() < 1.0


def _losses(stdout: str) -> list[tuple[int, float, float]]:
    return [(int(i), float(a), float(b)) for i, a, b in
            re.findall(r"^\[\d\d:\d\d:\d\d\]\[#(\d{6})\]\[[\d.]+m?s\]\[(\d+\.\d{4})\]\[(\d+\.\d{4})\]$", stdout, flags=re.M)]


@pytest.mark.slow
def test_train_xseg_through_main_saves_resumes_and_loads_for_masking(facesets, tmp_path):
    src, dst = facesets
    model_dir = tmp_path / "model"
    args = ["train", "--model", "XSeg", "--training-data-src-dir", str(src), "--training-data-dst-dir", str(dst),
            "--model-dir", str(model_dir), "--no-preview", "--silent-start", *TINY_FLAGS]
    r = run_cli(*args, "--target-iteration", "200")
    assert r.returncode == 0, r.stderr + r.stdout
    # DFL pools the labels of src and dst: the unlabelled dst trains on src's labelled faces, and the model
    # stays a labels model (its mask is not cut to the hull)
    assert "dst: no labelled faces: training on the other side's 2 labelled faces" in r.stdout + r.stderr
    assert "training as --generic" not in r.stdout + r.stderr
    losses = _losses(r.stdout)
    assert losses and losses[-1][0] == 200
    state = model_dir / "new_XSeg_state.npz"
    with np.load(state, allow_pickle=False) as data:
        history = data["loss_history"]
        assert json.loads(str(data["meta"]))["iteration"] == 200
    first, last = history[:20].sum(axis=1).mean(), history[-20:].sum(axis=1).mean()
    assert last < first, (first, last)  # falling (measured 1.42 -> 0.99 and -> 1.25): the steady fall is
    # asserted on a fixed batch in test_xseg_learns_a_fixed_batch, where nothing random remains

    r = run_cli(*args, "--target-iteration", "204")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "at iteration 200" in r.stdout + r.stderr
    assert [i for i, _, _ in _losses(r.stdout)][-1] == 204

    from models.xseg import load_xseg
    masker = load_xseg(model_dir, precision="float32")
    assert masker.resolution == 64 and masker.iteration == 204 and not masker.uses_landmarks
    faces = _faces(src)
    masks = masker.masks(faces)
    assert masks.shape == faces.shape[:3] and 0.0 <= masks.min() and masks.max() <= 1.0


def test_load_xseg_names_a_folder_without_an_xseg_model(tmp_path):
    from core.errors import UserError
    from models.xseg import load_xseg
    with pytest.raises(UserError) as e:
        load_xseg(tmp_path)
    assert "no trained XSeg model" in e.value.problem and Path(e.value.path) == tmp_path
    with pytest.raises(UserError, match="not found"):
        load_xseg(tmp_path / "missing")


@pytest.mark.slow
def test_xseg_starts_beside_a_face_model_in_the_same_folder(tmp_path, facesets):
    """DFL keeps the XSeg model in workspace/model with the face model: an unattended XSeg run there
    starts its own model (named as usual), it does not stop on 'holds SAEHD model'."""
    from models.model_files import ModelFiles, SavedState
    saehd = ModelFiles(tmp_path, "mine", "SAEHD")
    saehd.write_state(SavedState({"class": "SAEHD", "format": 1, "iteration": 3, "options": {}}))
    before = saehd.state.read_bytes()
    r = run_cli("train", "--model", "XSeg", "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir",
                str(facesets[1]), "--model-dir", str(tmp_path), "--no-preview", "--silent-start", "--sample-workers",
                "0", *TINY_FLAGS, "--target-iteration", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "new_XSeg_state.npz").is_file() and saehd.state.read_bytes() == before


@pytest.mark.slow
def test_xseg_refuses_face_model_flags(tmp_path, facesets):
    r = run_cli("train", "--model", "XSeg", "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir",
                str(facesets[1]), "--model-dir", str(tmp_path), "--no-preview", "--silent-start", "--archi", "df")
    assert r.returncode != 0 and "--archi is not an option of XSeg" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_xseg_learns_a_fixed_batch(facesets, tmp_path):
    """With the seed fixed and the same batch each step, the loss falls step after step (the network and
    its optimizer learn; DFL's RMSprop at 1e-4 with lr-dropout is slow: measured 1.37 -> 1.29 in 60 steps);
    real faces with their hull as the target."""
    import cv2
    import keras

    from facelib.masks import hull_mask
    from faceset.faceset import Faceset
    from models.augment import Batch
    keras.utils.set_random_seed(7)
    model = _model(tmp_path)
    model.build_training()
    faces, masks = [], []
    for face in list(Faceset.open(facesets[1]))[:2]:
        image, meta = face.load()
        h, w = image.shape[:2]
        faces.append(cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
        masks.append(cv2.resize(hull_mask((h, w), meta.landmarks), (64, 64), interpolation=cv2.INTER_LINEAR)[..., None])
    x, m = np.stack(faces), (np.stack(masks) > 0.5).astype(np.float32)
    batch = Batch(warped=x, target=x, mask=m, em_mask=np.ones_like(m))  # em_mask: the loss weight
    losses = [sum(model.train_iteration(batch, batch)) for _ in range(60)]
    assert np.mean(losses[-5:]) < 0.97 * np.mean(losses[:3]), losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) > 0.8 * (len(losses) - 1), losses


def test_a_generic_target_is_scored_inside_the_hull_only_and_a_label_everywhere(facesets):
    """--generic: the loss weight (em_mask) of a program-made target is the face's hull, warped with the face,
    so the network learns what covers a face and not where the hull's edge runs; a hand label (which may
    reach past the hull, a forehead) and a model trained without the hull gate are scored everywhere."""
    from facelib.masks import hull_mask
    from models.augment import SampleSpec, _Producer
    from models.sample_set import load_faceset
    from models.xseg_samples import select_faces
    base = SampleSpec(resolution=64, face_type=FaceType.WHOLE_FACE, eyes_mouth=False, target="xseg", generic=True,
                      random_warp=False, scale_range=(0.0, 0.0))
    dst = load_faceset(facesets[1])  # unlabelled: generic targets
    gated = _Producer(dst, SampleSpec(**{**base.__dict__, "hull_loss": True}), 6, seed=2, ct_source=None,
                      cache_bytes=1 << 26).next_batch()
    weight, target = gated.em_mask[..., 0], gated.mask[..., 0]
    assert set(np.unique(weight)) <= {0.0, 1.0}
    assert (weight[target > 0] == 1.0).all()  # the face left to see lies inside what is scored
    share = weight.mean(axis=(1, 2))
    assert (share > 0.15).all() and (share < 0.8).all(), share  # the hull, not the square or nothing
    # without warp or scale the weight is the hull in the face's pixels (flipped or not, turned a little)
    hulls = [hull_mask((64, 64), r.landmarks * (64 / 96)) > 0.5 for r in dst]
    scored = weight[0] > 0.5
    best = max(float((scored & h).sum() / (scored | h).sum()) for h in hulls)
    assert best > 0.6, best
    ungated = _Producer(dst, base, 4, seed=2, ct_source=None, cache_bytes=1 << 26).next_batch()
    assert (ungated.em_mask == 1.0).all()
    src = load_faceset(facesets[0])
    labelled, spec = select_faces(src, SampleSpec(**{**base.__dict__, "generic": False, "hull_loss": True}), "src")
    assert not spec.generic
    assert (_Producer(labelled, spec, 4, seed=2, ct_source=None, cache_bytes=1 << 26).next_batch().em_mask == 1.0).all()


def test_the_xseg_loss_ignores_the_target_where_its_weight_is_zero(facesets, tmp_path):
    """What a program-made target says outside the hull does not move the loss; inside it, it does."""
    import keras

    from models.augment import Batch
    keras.utils.set_random_seed(3)
    model = _model(tmp_path)
    model.build_training()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    weight = np.zeros((2, 64, 64, 1), np.float32)
    weight[:, 16:48, 16:48] = 1.0
    target = np.zeros_like(weight)
    target[:, 20:44, 20:44] = 1.0

    def loss(mask: np.ndarray) -> float:
        b = Batch(warped=x, target=x, mask=mask, em_mask=weight)
        return sum(model.step.evaluate({"src_in": b.warped, "src_mask": b.mask, "src_weight": b.em_mask,
                                        "dst_in": b.warped, "dst_mask": b.mask, "dst_weight": b.em_mask}).values())

    outside, inside = target.copy(), target.copy()
    outside[:, :8] = 1.0  # rows the weight leaves out
    inside[:, 24:30, 24:30] = 0.0
    assert abs(loss(outside) - loss(target)) < 1e-6
    assert abs(loss(inside) - loss(target)) > 1e-3


def test_the_training_preview_shows_the_mask_cut_to_the_hull_for_a_generic_model_only(facesets, tmp_path):
    """The trainer's XSeg preview (face | target | predicted mask over the face) shows a generic model's
    mask as it is applied, cut to the face's hull, and a labelled model's mask whole; the hulls are kept
    with the preview faces in the model's state."""
    import keras

    from mainscripts.trainer import _preview_faces
    from models.sample_set import load_faceset
    from models.xseg import overlay
    keras.utils.set_random_seed(1)
    src, dst = load_faceset(facesets[0]), load_faceset(facesets[1])
    for generic in (True, False):
        model = _model(tmp_path / str(generic), generic=generic)
        specs = model.sample_specs()
        s_batch, d_batch = _preview_faces(model, src, dst, specs)
        assert {"src_hull", "dst_hull"} <= set(model.preview_samples)
        share = d_batch.em_mask.mean(axis=(1, 2, 3))
        assert (share > 0.15).all() and (share < 0.8).all(), share  # the hull, not nothing or the square
        raw = model.mask_batch(d_batch.target)
        shown = model.preview_images(s_batch, d_batch)["XSeg dst faces"]
        res = model.resolution
        for k in range(len(d_batch)):
            expected = raw[k] * d_batch.em_mask[k, ..., 0] if generic else raw[k]
            panel = shown[k * res:(k + 1) * res, 2 * res:].astype(np.float32)
            want = np.clip(overlay(d_batch.target[k], expected) * 255, 0, 255)
            assert np.abs(panel - want).max() <= 2.0
        outside = d_batch.em_mask[..., 0] < 0.5
        assert raw[outside].max() > 0.0  # the untrained net's mask reaches past the hull: the cut shows
    # a model file whose stored preview arrays have another shape gets its preview faces made again
    model.preview_samples["dst_hull"] = np.zeros((len(d_batch), 8, 8, 1), np.uint8)
    model.preview_samples["src_mask"] = np.zeros((len(s_batch), 64, 64), np.uint8)
    s_again, d_again = _preview_faces(model, src, dst, specs)
    assert d_again.em_mask.shape == d_batch.em_mask.shape and s_again.mask.shape == s_batch.mask.shape
    assert model.preview_samples["dst_hull"].shape[1:] == (64, 64, 1)


def test_facesets_without_any_labels_train_a_generic_model_and_no_generic_refuses_them(facesets, tmp_path, capsys):
    """No labels on either side: the targets are program-made, so the model trains as --generic (its recipe,
    its mask cut to the hull), saved with it and said in one line; labels on one side keep a labels model;
    --no-generic with no labels at all stops naming the folder (DFL: "No segmented faces found")."""
    from core.errors import UserError
    from models.sample_set import load_faceset
    from models.xseg_samples import settle_generic
    src, dst = load_faceset(facesets[0]), load_faceset(facesets[1])
    options = dict(TINY)
    settle_generic(options, {}, ((facesets[0], src), (facesets[1], dst)))
    assert options["generic"] is False
    settle_generic(options, {}, ((facesets[1], dst), (facesets[1], dst)))
    assert options["generic"] is True
    assert f"no labelled faces in {facesets[1]}: training as --generic" in capsys.readouterr().err
    with pytest.raises(UserError, match="--no-generic") as refused:
        settle_generic(dict(TINY), {"generic": False}, ((facesets[1], dst), (facesets[1], dst)))
    assert refused.value.path == facesets[1]

    r = run_cli("train", "--model", "XSeg", "--training-data-src-dir", str(facesets[1]), "--training-data-dst-dir",
                str(facesets[1]), "--model-dir", str(tmp_path / "m"), "--no-preview", "--silent-start", "--no-generic",
                *TINY_FLAGS, "--target-iteration", "1")
    assert r.returncode != 0 and str(facesets[1]) in r.error_lines[0] and "--no-generic" in r.error_lines[0]
    assert not (tmp_path / "m").exists()  # nothing was created
    r = run_cli("train", "--model", "XSeg", "--training-data-src-dir", str(facesets[1]), "--training-data-dst-dir",
                str(facesets[1]), "--model-dir", str(tmp_path / "m"), "--no-preview", "--silent-start",
                *TINY_FLAGS, "--target-iteration", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "training as --generic" in r.stdout + r.stderr
    from models.xseg import load_xseg
    assert load_xseg(tmp_path / "m", precision="float32").uses_landmarks  # saved as generic: cut to the hull

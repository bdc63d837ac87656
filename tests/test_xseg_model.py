"""XSeg: the segmentation network, its training samples, `train --model XSeg` and `load_xseg`, on real faces."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

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
    spec = SampleSpec(resolution=64, face_type="wf", random_flip=True, eyes_mouth=False, target="xseg")
    src, dst = load_faceset(facesets[0]), load_faceset(facesets[1])
    labelled, src_spec = select_faces(src, spec, "src")
    unlabelled, dst_spec = select_faces(dst, spec, "dst")
    assert len(labelled) == 2 and not src_spec.generic  # DFL: the labelled faces only
    assert len(unlabelled) == len(dst) and dst_spec.generic  # not "No segmented faces found"
    assert "dst: no labelled faces: training on generic" in capsys.readouterr().err
    everything, generic_spec = select_faces(src, SampleSpec(**{**spec.__dict__, "generic": True}), "src")
    assert len(everything) == len(src) and generic_spec.generic

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
    assert "dst: no labelled faces: training on generic" in r.stdout + r.stderr
    losses = _losses(r.stdout)
    assert losses and losses[-1][0] == 200
    state = model_dir / "new_XSeg_state.npz"
    with np.load(state, allow_pickle=False) as data:
        history = data["loss_history"]
        assert json.loads(str(data["meta"]))["iteration"] == 200
    first, last = history[:20].sum(axis=1).mean(), history[-20:].sum(axis=1).mean()
    assert last < 0.85 * first, (first, last)  # measured: 1.42 -> 0.99

    r = run_cli(*args, "--target-iteration", "204")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "at iteration 200" in r.stdout + r.stderr
    assert [i for i, _, _ in _losses(r.stdout)][-1] == 204

    from models.xseg import load_xseg
    masker = load_xseg(model_dir, precision="float32")
    assert masker.resolution == 64 and masker.iteration == 204
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


def test_xseg_refuses_face_model_flags(tmp_path, facesets):
    r = run_cli("train", "--model", "XSeg", "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir",
                str(facesets[1]), "--model-dir", str(tmp_path), "--no-preview", "--silent-start", "--archi", "df")
    assert r.returncode != 0 and "--archi is not an option of XSeg" in r.stderr
    assert not any(tmp_path.iterdir())

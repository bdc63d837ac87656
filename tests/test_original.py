"""Original, the classic 64 px autoencoder: options and flags, a tiny model trained on real faces (falling
loss, save, resume), its stand-in masks (the average training mask, no mask network) and a merge."""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from tests.facesets import make_faceset
from tests.merge_standin import make_dst

pytestmark = pytest.mark.usefixtures("no_terminal")

TINY = dict(resolution=32, face_type="f", ae_dims=64, e_dims=8, d_dims=8, batch_size=4)


def test_options_have_flags_and_the_classic_defaults():
    from core.settings import add_flags, flags_given, parse_flags
    from models.loader import train_flag_options
    from models.original_options import ORIGINAL_OPTIONS
    defaults = {o.key: o.default for o in ORIGINAL_OPTIONS}
    assert (defaults["resolution"], defaults["face_type"], defaults["batch_size"]) == (64, "f", 8)
    parser = argparse.ArgumentParser()
    add_flags(parser, train_flag_options())
    given = flags_given(parser.parse_args(["--resolution", "48", "--ae-dims", "128", "--masked-training", "n"]))
    assert parse_flags(ORIGINAL_OPTIONS, given) == {"resolution": 48, "ae_dims": 128, "masked_training": False}
    with pytest.raises(Exception, match="multiple of 16"):
        parse_flags(ORIGINAL_OPTIONS, {"resolution": "40"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Original trained 30 iterations on real faces and saved: (model, folder, losses, src and dst batch)."""
    from core import keras_backend as kb
    kb.prepare("float32")
    from core.settings import resolve
    from models.batch_stream import BatchStream
    from models.model_files import ModelFiles
    from models.original import Original
    from models.sample_set import load_faceset
    root = tmp_path_factory.mktemp("original")
    make_faceset(["obama.jpg", "obama2.jpg"], root / "src", per_photo=5, size=64)
    make_faceset(["biden.jpg"], root / "dst", per_photo=6, size=64)
    options = resolve(Original.OPTIONS, None, TINY, ask_overrides=False)
    model = Original(ModelFiles(root / "model", "new", "Original"), options, training=True)
    s_spec, d_spec = model.sample_specs()
    src = BatchStream(load_faceset(root / "src" / "aligned"), s_spec, 4, workers=0, seed=1)
    dst = BatchStream(load_faceset(root / "dst" / "aligned"), d_spec, 4, workers=0, seed=2)
    losses = [model.train_step(src.next(), dst.next()) for _ in range(30)]
    model.save()
    return model, root / "model", np.array(losses), src.next(), dst.next()


@pytest.mark.slow
def test_original_trains_with_falling_loss_saves_and_resumes(trained):
    from models.loader import load_predictor, saved_options
    from models.original import Original
    model, folder, losses, src, dst = trained
    first, last = losses[:5].mean(axis=0), losses[-5:].mean(axis=0)
    assert (last < 0.9 * first).all(), (first, last)
    loaded = load_predictor(folder, "Original", precision="float32")
    assert loaded.iteration == 30 and not getattr(loaded, "has_morph", False)
    a, b = model.predict(dst.target), loaded.predict(dst.target)
    np.testing.assert_array_equal(a.face, b.face)
    assert a.face.shape == (4, 32, 32, 3) and 0 <= a.face.min() and a.face.max() <= 1
    state = model.files.read_state()
    again = Original(model.files, saved_options(model.files, Original, state.meta), training=True)
    again.load(state)
    assert again.iteration == 30
    again.train_step(src, dst)
    assert again.iteration == 31
    # the swap is the src decoder on the dst code: not the dst reconstruction
    views = model.preview_outputs(src.target, dst.target)
    assert np.abs(views["SD"] - views["DD"]).mean() > 0.005


@pytest.mark.slow
def test_without_a_mask_network_the_masks_are_the_average_training_mask(trained):
    model, _, _, src, dst = trained
    pred = model.predict(dst.target)
    # the same stand-in for every face: the running mean of the training masks, near the dst masks' mean
    np.testing.assert_array_equal(pred.dst_mask[0], pred.dst_mask[-1])
    mean_dst = dst.mask[..., 0].mean(axis=0)
    assert np.corrcoef(pred.dst_mask[0].ravel(), mean_dst.ravel())[0, 1] > 0.8
    assert model.default_mask_mode == "dst"  # the merge suggests the landmark hull instead
    from merger.config import default_config
    assert default_config(model.default_mode, model.default_mask_mode).mask_mode == "dst"


@pytest.mark.slow
def test_original_merges_onto_real_frames(trained, tmp_path):
    from mainscripts import merger_cli
    model = trained[0]
    dst = make_dst(tmp_path / "data_dst", count=2, photo="biden.jpg")
    for mask_mode in ("dst", "learned-prd*learned-dst"):
        out = tmp_path / mask_mode.replace("*", "_")
        merger_cli.merge(str(dst), str(out / "m"), str(out / "mm"), str(dst / "aligned"), str(tmp_path / "model"),
                         "Original", workers=0, predictor=model, settings={"mask_mode": mask_mode})
        for name in ("00001.png", "00002.png"):
            frame = cv2.imread(str(dst / name)).astype(np.int16)
            merged = cv2.imread(str(out / "m" / name)).astype(np.int16)
            mask = cv2.imread(str(out / "mm" / name), cv2.IMREAD_UNCHANGED)
            assert (mask > 0).sum() > 500 and np.abs(merged - frame)[mask == 255].mean() > 2
            np.testing.assert_array_equal(merged[mask == 0], frame[mask == 0])

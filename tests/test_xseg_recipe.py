"""XSeg training recipes: DFL's RMSprop for hand labels and DFL-imported models, the measured recipe for
--generic, the dice term, and a model that changes recipe between runs (its new optimizer starts afresh,
its weights go on)."""
from __future__ import annotations

import numpy as np
import pytest

import models.xseg as xseg
from models.xseg import RECIPES, recipe_for


def test_labels_and_dfl_imports_keep_dfls_recipe_and_generic_takes_the_generic_one(monkeypatch):
    monkeypatch.setattr(xseg, "GENERIC_RECIPE", "adam_dice")
    assert recipe_for({"generic": False}) == RECIPES["dfl"] == xseg.Recipe("rmsprop", 1e-4, lr_dropout=0.3)
    assert recipe_for({"generic": True}) == RECIPES["adam_dice"]
    assert recipe_for({"generic": True, "dfl_layout": True}) == RECIPES["dfl"]  # DFL's RMSprop state goes on


def test_soft_dice_is_zero_on_a_perfect_mask_and_weighs_a_thin_miss_by_the_mask_it_is():
    from keras import ops

    from models.losses import soft_dice
    target = np.zeros((2, 32, 32, 1), np.float32)
    target[:, 8:24, 8:24] = 1.0
    pred = target.copy()
    pred[1, 8:24, 8:10] = 0.0  # a 2 px strip of a 16 px square missed: 1/8 of the mask
    loss = np.asarray(ops.convert_to_numpy(soft_dice(ops.convert_to_tensor(target), ops.convert_to_tensor(pred))))
    assert loss.shape == (2,) and loss[0] == pytest.approx(0.0, abs=1e-3)
    assert loss[1] == pytest.approx(1 - 2 * 224 / (256 + 224), abs=2e-3)  # ~0.067, vs 0.03 of the image's pixels
    disjoint = np.roll(target, 16, axis=1)
    far = ops.convert_to_numpy(soft_dice(ops.convert_to_tensor(target), ops.convert_to_tensor(disjoint)))
    assert np.all(np.asarray(far) > 0.99)


@pytest.mark.slow  # builds and trains two tiny XSeg models (Keras)
def test_a_generic_model_trains_with_adam_and_dice_and_going_back_to_labels_restarts_only_the_optimizer(
        tmp_path, monkeypatch):
    from types import SimpleNamespace

    import keras

    from tests.test_xseg_model import _model
    monkeypatch.setattr(xseg, "GENERIC_RECIPE", "adam_dice")
    keras.utils.set_random_seed(0)  # the same start whatever ran before
    model = _model(tmp_path, generic=True)
    assert list(model.optimizers) == ["xseg_adam"] and model.recipe.dice == 1.0
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    masks = np.zeros((2, 64, 64, 1), np.float32)
    masks[:, 16:48, 16:48] = 1.0
    faces[:, 16:48, 16:48] *= 0.3  # the "face" is the dark square
    batch = SimpleNamespace(warped=faces, mask=masks, target=faces, em_mask=np.ones_like(masks))  # em_mask: loss weight
    losses = [sum(model.train_step(batch, batch)) for _ in range(25)]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses  # measured 0.85
    model.save()
    weights = model.nets["xseg"].get_weights()

    labelled = _model(tmp_path, generic=False)  # the same model, trained on hand labels now
    labelled.load(labelled.files.read_state())
    assert list(labelled.optimizers) == ["xseg"] and labelled.recipe == RECIPES["dfl"]
    assert all(np.array_equal(a, b) for a, b in zip(weights, labelled.nets["xseg"].get_weights()))

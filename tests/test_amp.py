"""AMP (DFL's morphable model) and the morph factor's path through the merger: options and flags, the
merge setting and its keys, the pipeline's hand-over of morph and crop landmarks to the predictors that
take them, and a tiny AMP trained on real faces (falling loss, save, resume, monotonic morph, export,
merge)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from core.image_io import read_image
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from merger.config import MERGE_OPTIONS, MergeConfig, apply_key, default_config
from merger.frames import collect_frames
from merger.pipeline import predict_faces, run_merge
from models.predictor import Prediction
from tests.conftest import REPO
from tests.facesets import make_faceset
from tests.merge_standin import make_dst

pytestmark = pytest.mark.usefixtures("no_terminal")

TINY_AMP = dict(resolution=64, face_type="wf", ae_dims=32, inter_dims=32, e_dims=8, d_dims=8, d_mask_dims=8,
                batch_size=4)


@pytest.fixture(scope="module")
def dst(tmp_path_factory) -> Path:
    """data_dst: 3 real frames of a face and their aligned faces."""
    return make_dst(tmp_path_factory.mktemp("amp_dst"), count=3, photo="biden.jpg")


class RecordingPredictor:
    """Takes morph= and landmarks=, records them, and paints the face grey at the morph level (so merged
    pixels show which morph each frame got)."""

    has_morph = True
    needs_landmarks = True

    def __init__(self, resolution: int = 64, face_type: FaceType = FaceType.WHOLE_FACE):
        self.resolution, self.face_type, self.iteration, self.default_mode = resolution, face_type, 1, "overlay"
        self.calls: list[dict] = []

    def predict(self, faces: np.ndarray, morph: float, landmarks: np.ndarray) -> Prediction:
        n, r = len(faces), self.resolution
        self.calls.append({"n": n, "morph": morph, "landmarks": landmarks})
        mask = np.zeros((n, r, r), np.float32)
        mask[:, r // 4: 3 * r // 4, r // 4: 3 * r // 4] = 1.0
        return Prediction(np.full((n, r, r, 3), morph, np.float32), mask, mask.copy())


# --- options, the merge setting, keys ------------------------------------------------------------------

def test_every_dfl_amp_option_has_a_flag_and_inters_train_by_default():
    from core.settings import add_flags, flags_given, parse_flags
    from models.amp_options import AMP_OPTIONS
    from models.loader import train_flag_options
    dfl = {"resolution", "face_type", "ae_dims", "inter_dims", "e_dims", "d_dims", "d_mask_dims", "morph_factor",
           "uniform_yaw", "blur_out_mask", "lr_dropout", "random_warp", "gan_power", "gan_patch_size", "gan_dims",
           "ct_mode", "clipgrad", "autobackup_hour", "write_preview_history", "random_src_flip", "random_dst_flip",
           "batch_size"}
    keys = {o.key for o in AMP_OPTIONS}
    assert dfl <= keys and "train_inters" in keys
    defaults = {o.key: o.default for o in AMP_OPTIONS}
    assert (defaults["resolution"], defaults["face_type"], defaults["inter_dims"], defaults["morph_factor"],
            defaults["batch_size"], defaults["train_inters"]) == (224, "wf", 1024, 0.5, 8, True)
    parser = argparse.ArgumentParser()
    add_flags(parser, train_flag_options())  # the flags `main.py train` declares
    given = flags_given(parser.parse_args(["--no-train-inters", "--inter-dims", "64", "--morph-factor", "0.3",
                                           "--blur-out-mask", "y"]))
    parsed = parse_flags(AMP_OPTIONS, given)
    assert parsed["train_inters"] is False and parsed["inter_dims"] == 64 and parsed["morph_factor"] == 0.3
    with pytest.raises(Exception, match="morph-factor"):  # DFL's training range: 0.1..0.5
        parse_flags(AMP_OPTIONS, {"morph_factor": "0.9"})
    with pytest.raises(Exception, match="multiple of 32"):
        parse_flags(AMP_OPTIONS, {"resolution": "80"})


def test_morph_factor_is_a_merge_setting_with_keys_a_flag_and_a_clamped_range():
    from core.settings import parse_flags
    cfg = MergeConfig()
    assert cfg.morph_factor == 0.75  # DeepFaceLive's default for AMP models
    assert apply_key(cfg, "]").morph_factor == 0.8 and apply_key(cfg, "[").morph_factor == 0.7
    assert apply_key(cfg, "}").morph_factor == 1.0 and apply_key(cfg, "{").morph_factor == 0.5
    assert apply_key(apply_key(cfg, "}"), "]").morph_factor == 1.0  # kept within 0..1
    assert apply_key(apply_key(cfg, "]"), "[") == cfg  # steps meet again (no float drift)
    assert MergeConfig.from_dict({"morph_factor": -3}).morph_factor == 0.0
    assert parse_flags(MERGE_OPTIONS, {"morph_factor": "0.3"}) == {"morph_factor": 0.3}
    assert "Morph factor: 0.75" in cfg.describe(morph=True) and "Morph" not in cfg.describe()
    assert default_config("overlay", "dst").mask_mode == "dst" and default_config().mask_mode == cfg.mask_mode


def test_window_morph_keys_act_only_for_models_with_a_morph_factor(tmp_path):
    from merger.session import new_session
    from merger.window import MergerController
    for has_morph in (True, False):
        session = new_session(tmp_path / f"s{has_morph}.json", ["00001.png", "00002.png"], 1, MergeConfig())
        ctl = MergerController(session, has_morph=has_morph)
        ctl.on_key("]")
        assert ctl.cfg.morph_factor == (0.8 if has_morph else 0.75)
        assert ("morph=0.80" in ctl.title()) == has_morph


# --- the pipeline's hand-over ------------------------------------------------------------------------------

def test_predict_faces_hands_each_frames_morph_and_crop_landmarks_to_the_model(dst):
    infos = collect_frames(dst, dst / "aligned")
    frames = [read_image(i.path) for i in infos]
    model = RecordingPredictor()
    preds = predict_faces(model, frames, [i.landmarks for i in infos], morph=[0.2, 0.9, 0.2])
    assert sorted((c["n"], c["morph"]) for c in model.calls) == [(1, 0.9), (2, 0.2)]  # one call per morph value
    assert [float(p[0].face.mean()) for p in preds] == pytest.approx([0.2, 0.9, 0.2])  # each frame its own
    spec = CropSpec(64, FaceType.WHOLE_FACE)
    for call in model.calls:
        lms = call["landmarks"]
        assert lms.shape == (call["n"], 68, 2) and lms.dtype == np.float32
    first = next(c for c in model.calls if c["morph"] == 0.2)["landmarks"][0]
    np.testing.assert_allclose(first, spec.to_face(infos[0].landmarks[0]), atol=1e-3)
    assert (first > 0).all() and (first < 64).all()  # a whole-face crop holds every landmark

    plain = predict_faces(model, frames[0], infos[0].landmarks)  # one frame, no morph given: the default
    assert model.calls[-1]["morph"] == MergeConfig().morph_factor and len(plain[0]) == 1


def test_batch_merge_uses_each_frames_morph_factor(dst, tmp_path):
    infos = collect_frames(dst, dst / "aligned")
    cfgs = [MergeConfig(morph_factor=m, color_transfer="none", mask_mode="learned-prd") for m in (0.0, 1.0, 0.0)]
    model = RecordingPredictor()
    run_merge(infos, cfgs, model, tmp_path / "m", tmp_path / "mm", workers=0, progress=False)
    import cv2
    inside = [cv2.imread(str(tmp_path / "m" / i.path.name)).astype(np.float32)[
        cv2.imread(str(tmp_path / "mm" / i.path.name), cv2.IMREAD_UNCHANGED) == 255].mean() for i in infos]
    assert inside[0] < 5 and inside[1] > 250 and inside[2] < 5  # black at morph 0, white at morph 1


def test_window_merger_predicts_again_when_the_morph_factor_changes(dst, tmp_path):
    from merger.window import FrameMerger
    infos = collect_frames(dst, dst / "aligned")
    model = RecordingPredictor()
    (tmp_path / "m").mkdir()
    (tmp_path / "mm").mkdir()
    merger = FrameMerger(infos, model, tmp_path / "m", tmp_path / "mm")
    cfg = MergeConfig(morph_factor=0.2, color_transfer="none", mask_mode="learned-prd")
    first, mask = merger.merge(0, cfg)
    merger.merge(0, cfg.replace(blur=10))  # another setting: composited again from the cached prediction
    second, _ = merger.merge(0, cfg.replace(morph_factor=0.9))
    assert [c["morph"] for c in model.calls] == [0.2, 0.9]
    inside = mask == 255
    assert first[inside].mean() < 0.3 * 255 < 0.8 * 255 < second[inside].mean()


# --- a tiny AMP on real faces --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny AMP trained 30 iterations on real faces and saved: (model, model folder, losses, a dst batch)."""
    from core import keras_backend as kb
    kb.prepare("float32")
    from core.settings import resolve
    from models.amp import AMP
    from models.batch_stream import BatchStream
    from models.model_files import ModelFiles
    from models.sample_set import load_faceset
    root = tmp_path_factory.mktemp("amp")
    make_faceset(["obama.jpg", "obama2.jpg"], root / "src", per_photo=5, size=64)
    make_faceset(["biden.jpg"], root / "dst", per_photo=6, size=64)
    options = resolve(AMP.OPTIONS, None, TINY_AMP, ask_overrides=False)
    import keras
    keras.utils.set_random_seed(0)  # 30 steps of a tiny model: the same start and mixes every run
    model = AMP(ModelFiles(root / "model", "new", "AMP"), options, training=True)
    model._rng = np.random.default_rng(0)
    s_spec, d_spec = model.sample_specs()
    src = BatchStream(load_faceset(root / "src" / "aligned"), s_spec, 4, workers=0, seed=1)
    dst = BatchStream(load_faceset(root / "dst" / "aligned"), d_spec, 4, workers=0, seed=2)
    losses = [model.train_step(src.next(), dst.next()) for _ in range(30)]
    model.save()
    return model, root / "model", np.array(losses), dst.next()


@pytest.mark.slow
def test_amp_trains_with_falling_loss_saves_and_resumes(trained):
    from models.amp import AMP
    from models.loader import load_predictor, saved_options
    model, folder, losses, batch = trained
    first, last = losses[:5].mean(axis=0), losses[-5:].mean(axis=0)
    assert (last < 0.9 * first).all(), (first, last)
    loaded = load_predictor(folder, "AMP", precision="float32")
    assert loaded.iteration == 30 and loaded.has_morph
    a, b = model.predict(batch.target, morph=0.6), loaded.predict(batch.target, morph=0.6)
    np.testing.assert_array_equal(a.face, b.face)
    np.testing.assert_array_equal(a.dst_mask, b.dst_mask)
    # resuming: a training instance continues at the saved iteration with the saved optimizer state
    state = model.files.read_state()
    again = AMP(model.files, saved_options(model.files, AMP, state.meta), training=True)
    again.load(state)
    assert again.iteration == 30
    np.testing.assert_array_equal(again.predict(batch.target, morph=0.6).face, a.face)


@pytest.mark.slow
def test_morph_factor_moves_the_output_monotonically_from_dst_to_src(trained):
    model, _, _, batch = trained
    faces = {m: model.predict(batch.target, morph=m).face for m in (0.0, 0.25, 0.5, 0.75, 1.0)}
    dist = [float(np.abs(faces[m] - faces[0.0]).mean()) for m in (0.25, 0.5, 0.75, 1.0)]
    assert all(b > a for a, b in zip(dist, dist[1:])), dist
    # morph 0 is the dst reconstruction (dst code alone), as in DFL
    views = model.preview_outputs(batch.target, batch.target)
    np.testing.assert_allclose(faces[0.0], views["DD"], atol=1e-5)
    # DFL's previews, the morph list among them, come from the same model
    images = model.preview_images(batch, batch)
    assert set(images) == {"AMP morph 1.0", "AMP morph 1.0 masked", "AMP morph list"}
    assert images["AMP morph list"].shape == (4 * 64, 6 * 64, 3)


@pytest.mark.slow
def test_export_model_equals_predict(trained):
    model, _, _, batch = trained
    exported = model.export_model()
    assert [tuple(t.shape) for t in exported.inputs] == [(None, 64, 64, 3), (None, 1)]
    dst_mask, face, src_mask = exported([batch.target, np.array([[0.4]], np.float32)])
    want = model.predict(batch.target, morph=0.4)
    np.testing.assert_allclose(np.asarray(face), want.face, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dst_mask)[..., 0], want.dst_mask, atol=1e-5)
    np.testing.assert_allclose(np.asarray(src_mask)[..., 0], want.src_mask, atol=1e-5)


@pytest.mark.slow
def test_merge_morph_flag_changes_the_merged_pixels(trained, dst, tmp_path):
    import cv2

    from mainscripts import merger_cli
    model, _, _, _ = trained
    out = {}
    for m in ("0.0", "1.0"):
        merger_cli.merge(str(dst), str(tmp_path / m), str(tmp_path / f"mask{m}"), str(dst / "aligned"),
                         str(tmp_path / "model"), "AMP", workers=0, predictor=model,
                         settings={"morph_factor": m, "mask_mode": "full"})
        out[m] = cv2.imread(str(tmp_path / m / "00001.png")).astype(np.int16)
    mask = cv2.imread(str(tmp_path / "mask1.0" / "00001.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(out["0.0"] - out["1.0"])[mask == 255].mean() > 1.0
    np.testing.assert_array_equal(out["0.0"][mask == 0], out["1.0"][mask == 0])


def test_dfl_behaviour_leaves_the_inter_heads_out_of_the_update(tmp_path):
    from core import keras_backend as kb
    kb.prepare("float32")
    from core.settings import resolve
    from models.amp import AMP
    from models.model_files import ModelFiles
    for train_inters in (True, False):
        options = resolve(AMP.OPTIONS, None, {**TINY_AMP, "train_inters": train_inters}, ask_overrides=False)
        model = AMP(ModelFiles(tmp_path, f"m{train_inters}", "AMP"), options, training=True)
        step = model.steps[0]
        trained_ids, read_ids = {id(v) for v in step.train_vars}, {id(v) for v in step.read_vars}
        inters = [v for n in ("inter_src", "inter_dst") for v in model.nets[n].weights]
        assert all((id(v) in trained_ids) == train_inters for v in inters)
        assert all((id(v) in read_ids) != train_inters for v in inters)
        assert all(id(v) in trained_ids for n in ("encoder", "decoder") for v in model.nets[n].trainable_variables)
        mix = model.random_mix(3)  # each src sample takes exactly morph_factor of its channels from inter_src
        assert mix.shape == (3, 32) and (mix.sum(axis=1) == 16).all() and len({tuple(r) for r in mix}) == 3


# --- scripts and demo ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["AMP", "Original"])
def test_numbered_scripts_train_and_merge_the_model(model):
    from tests.test_scripts import bat_actions, sh_actions
    scripts = REPO / "scripts"
    for bat, sh, command in ((f"6) train {model}", f"6_train_{model}", "train"),
                             (f"7) merge {model}", f"7_merge_{model}", "merge")):
        actions = sh_actions(scripts / f"{sh}.sh")
        assert actions == bat_actions(scripts / f"{bat}.bat")
        assert len(actions) == 1 and actions[0][3] == command and "--model" in actions[0]
        assert actions[0][actions[0].index("--model") + 1] == model and actions[0][-1] == "{ARGS}"


def test_demo_trains_any_face_model():
    from core.errors import UserError
    from mainscripts.demo import DEMO_MODELS, run_demo
    from models.loader import MODEL_NAMES
    assert set(DEMO_MODELS) == set(MODEL_NAMES) - {"XSeg"}
    assert len({m.name for m in DEMO_MODELS.values()}) == len(DEMO_MODELS)  # several demos share a workspace
    assert DEMO_MODELS["SAEHD"].name == "demo"
    with pytest.raises(UserError, match="XSeg"):
        run_demo("unused", model="XSeg")

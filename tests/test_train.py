"""Training: tiny models on real faces, through the Python API and through `main.py train`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli
from tests.facesets import make_faceset

TINY = ["--resolution", "32", "--archi", "df-ud", "--ae-dims", "32", "--e-dims", "16", "--d-dims", "16",
        "--d-mask-dims", "8", "--batch-size", "4", "--face-type", "f"]
TINY_OPTIONS = dict(resolution=32, face_type="f", archi="df-ud", ae_dims=32, e_dims=16, d_dims=16, d_mask_dims=8,
                    masked_training=True, eyes_mouth_prio=False, uniform_yaw=False, adabelief=True, lr_dropout=False,
                    random_warp=True, random_hsv_power=0.0, gan_power=0.0, gan_patch_size=4, gan_dims=16,
                    true_face_power=0.0, face_style_power=0.0, bg_style_power=0.0, ct_mode="none", clipgrad=False,
                    pretrain=False, autobackup_hour=0, write_preview_history=False, random_src_flip=False,
                    random_dst_flip=True, batch_size=4)


@pytest.fixture(scope="module")
def facesets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train_facesets")
    src = make_faceset(["obama.jpg", "obama2.jpg"], root / "src", per_photo=5, size=64)
    dst = make_faceset(["biden.jpg"], root / "dst", per_photo=6, size=64)
    assert len(src) >= 8 and len(dst) >= 5
    return root / "src" / "aligned", root / "dst" / "aligned"


def _train_cli(src: Path, dst: Path, model_dir: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "main.py"), "train", "--training-data-src-dir", str(src),
           "--training-data-dst-dir", str(dst), "--model-dir", str(model_dir), "--model", "SAEHD",
           "--silent-start", "--no-preview", *TINY, *extra]
    return subprocess.run(cmd, cwd=REPO, env=env or dict(os.environ, PYTHONUNBUFFERED="1"), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def _console_iterations(stdout: str) -> list[int]:
    import re
    return [int(m) for m in re.findall(r"^\[\d\d:\d\d:\d\d\]\[#(\d{6})\]\[[\d.]+m?s\]\[\d+\.\d{4}\]\[\d+\.\d{4}\]$",
                                       stdout, flags=re.M)]


def _state_meta(model_dir: Path, name: str = "new", cls: str = "SAEHD") -> dict:
    with np.load(model_dir / f"{name}_{cls}_state.npz", allow_pickle=False) as data:
        return json.loads(str(data["meta"]))


# --- in-process: the model API --------------------------------------------------------------------

def _model(tmp_path: Path, **overrides):
    from core import keras_backend as kb
    kb.prepare()
    from models.model_files import ModelFiles
    from models.saehd import SAEHD
    return SAEHD(ModelFiles(tmp_path, "new", "SAEHD"), {**TINY_OPTIONS, **overrides}, training=True)


def _streams(model, src: Path, dst: Path):
    from models.batch_stream import BatchStream
    from models.sample_set import load_faceset
    s_spec, d_spec = model.sample_specs()
    return (BatchStream(load_faceset(src), s_spec, model.batch_size, workers=0, seed=1),
            BatchStream(load_faceset(dst), d_spec, model.batch_size, workers=0, seed=2))


@pytest.mark.slow
def test_loss_decreases_and_save_load_gives_identical_predictions(facesets, tmp_path):
    model = _model(tmp_path)
    src, dst = _streams(model, *facesets)
    losses = [model.train_step(src.next(), dst.next()) for _ in range(40)]
    first, last = np.mean(losses[:5], axis=0), np.mean(losses[-5:], axis=0)
    assert (last < 0.8 * first).all(), (first, last)
    assert model.iteration == 40 and model.loss_history.shape == (40, 2)
    model.save()

    from models.loader import load_predictor
    loaded = load_predictor(tmp_path, "SAEHD", precision="float32")
    faces = src.next().target
    a, b = model.predict(faces), loaded.predict(faces)
    assert loaded.iteration == 40
    np.testing.assert_array_equal(a.face, b.face)
    np.testing.assert_array_equal(a.dst_mask, b.dst_mask)
    assert a.face.shape == (4, 32, 32, 3) and a.src_mask.shape == (4, 32, 32)
    assert 0 <= a.face.min() and a.face.max() <= 1
    # bfloat16 inference (what `auto` picks on CPUs with native bf16) gives the same faces to within
    # a couple of 8-bit levels on average
    try:
        half = load_predictor(tmp_path, "SAEHD", precision="mixed_bfloat16").predict(faces)
    finally:
        from core import keras_backend as kb
        kb.prepare("float32")
    assert float(np.abs(half.face - a.face).mean()) < 2.5 / 255


@pytest.mark.slow
def test_nan_rolls_back_to_the_last_good_weights_and_lowers_the_learning_rate(facesets, tmp_path):
    model = _model(tmp_path)
    src, dst = _streams(model, *facesets)
    for _ in range(5):
        model.train_step(src.next(), dst.next())
    model.snapshot()  # the rollback point: iteration 5
    faces = src.next().target
    good = model.predict(faces).face
    kernel = model.nets["encoder"].get_layer("down1").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))  # a collapse: the weights blow up
    assert model.train_step(src.next(), dst.next()) is None
    assert model.iteration == 5 and model.lr_scale == 0.5
    np.testing.assert_array_equal(model.predict(faces).face, good)
    assert abs(float(model.optimizers["src_dst"].learning_rate) - 2.5e-5) < 1e-9
    assert model.train_step(src.next(), dst.next()) is not None and model.iteration == 6


def test_collapse_guard_ignores_one_hard_batch_but_stops_a_sustained_explosion():
    from models.collapse_guard import CollapseGuard
    guard = CollapseGuard(patience=5)
    for v in np.linspace(2.0, 1.0, 50):
        assert guard.check([v, v]) is None
    assert guard.check([40.0, 40.0]) is None  # one outlier
    assert guard.check([1.0, 1.0]) is None
    verdicts = [guard.check([40.0, 40.0]) for _ in range(5)]
    assert verdicts[:4] == [None] * 4 and "exploded" in verdicts[4]
    assert "NaN" in guard.check([float("nan"), 1.0])


@pytest.mark.slow
def test_lr_dropout_updates_about_thirty_percent_of_weights_per_step():
    from core import keras_backend as kb
    keras = kb.prepare()
    from models.optimizers import make_optimizer
    var = keras.Variable(np.zeros((200, 100), np.float32))
    opt = make_optimizer("rmsprop", 0.1, lr_dropout=0.3)
    opt.build([var])
    changed, ever = [], np.zeros((200, 100), bool)
    for _ in range(4):
        before = kb.to_numpy(var.value).copy()
        opt.apply([np.ones((200, 100), np.float32)], [var])
        moved = kb.to_numpy(var.value) != before
        changed.append(float(moved.mean()))
        ever |= moved
    assert all(0.25 < c < 0.35 for c in changed), changed
    assert ever.mean() > 0.6  # a different subset each step, not the same 30% of the weights


def test_options_round_trip_and_flags_override_only_what_may_change():
    from core.settings import resolve
    from models.saehd_options import COMMON_OPTIONS, SAEHD_OPTIONS
    opts = SAEHD_OPTIONS + COMMON_OPTIONS
    fresh = resolve(opts, None, {"resolution": "64", "archi": "df-ud"}, ask_overrides=False)
    assert fresh["resolution"] == 64 and fresh["gan_patch_size"] == 8 and fresh["d_mask_dims"] == 22
    again = resolve(opts, json.loads(json.dumps(fresh)), {}, ask_overrides=False)
    assert again == fresh
    changed = resolve(opts, fresh, {"resolution": "128", "batch_size": "2", "random_warp": "n"}, ask_overrides=False)
    assert changed["resolution"] == 64  # fixed at creation
    assert changed["batch_size"] == 2 and changed["random_warp"] is False


@pytest.mark.slow
def test_quick96_has_dfl_shapes_and_steps(facesets, tmp_path):
    from core import keras_backend as kb
    kb.prepare()
    from models.model_files import ModelFiles
    from models.quick96 import Quick96
    model = Quick96(ModelFiles(tmp_path, "q", "Quick96"), {}, training=True)
    assert model.resolution == 96 and model.batch_size == 4 and model.spec.archi == "df-ud"
    assert model.nets["encoder"].output_shape == (None, 6 * 6 * 512)
    assert model.nets["decoder_src"].output_shape[0] == (None, 96, 96, 3)
    src, dst = _streams(model, *facesets)
    losses = [model.train_step(src.next(), dst.next()) for _ in range(2)]
    assert all(np.isfinite(v).all() for v in losses)


# --- the command line -----------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_trains_non_interactively_and_resumes_at_the_saved_iteration(facesets, tmp_path):
    model_dir = tmp_path / "model"
    first = _train_cli(*facesets, model_dir, "--target-iteration", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    its = _console_iterations(first.stdout)
    assert its and its[-1] == 6, first.stdout[-2000:]
    assert "Saved (target iteration reached)" in first.stdout
    assert _state_meta(model_dir)["iteration"] == 6
    options = json.loads((model_dir / "new_SAEHD_options.json").read_text())
    assert options["resolution"] == 32 and options["archi"] == "df-ud"

    second = _train_cli(*facesets, model_dir, "--target-iteration", "9")
    assert second.returncode == 0, second.stderr[-3000:]
    its = _console_iterations(second.stdout)
    assert its[0] == 7 and its[-1] == 9, second.stdout[-2000:]
    meta = _state_meta(model_dir)
    assert meta["iteration"] == 9 and meta["options"] == options


@pytest.mark.slow
def test_ctrl_c_without_preview_saves_and_exits(facesets, tmp_path):
    model_dir = tmp_path / "model"
    cmd = [sys.executable, str(REPO / "main.py"), "train", "--training-data-src-dir", str(facesets[0]),
           "--training-data-dst-dir", str(facesets[1]), "--model-dir", str(model_dir), "--model", "SAEHD",
           "--silent-start", "--no-preview", *TINY]
    # Started with SIGINT ignored, as a background job of a script or a CI runner starts it: Ctrl+C (SIGINT)
    # must still stop and save.
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        while not (model_dir / "new_SAEHD_state.npz").exists():  # saved after iteration 1
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "saving the model" in out
    assert _state_meta(model_dir)["iteration"] > 1


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.slow
def test_other_backends_train_and_resume_the_same_model_files(facesets, tmp_path, backend):
    model_dir = tmp_path / "model"
    env = dict(os.environ, PYTHONUNBUFFERED="1", KERAS_BACKEND=backend)
    run = _train_cli(*facesets, model_dir, "--target-iteration", "3", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _console_iterations(run.stdout)[-1] == 3
    meta = _state_meta(model_dir)
    assert meta["backend"] == backend and meta["iteration"] == 3
    # the TensorFlow default continues the model written by the other backend
    run = _train_cli(*facesets, model_dir, "--target-iteration", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    assert _state_meta(model_dir)["iteration"] == 4


@pytest.mark.slow
def test_bad_inputs_fail_with_one_line_and_leave_the_model_untouched(facesets, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("train", "--training-data-src-dir", str(empty), "--training-data-dst-dir", str(facesets[1]),
                  "--model-dir", str(tmp_path / "m0"), "--model", "SAEHD", "--silent-start", "--no-preview", *TINY)
    assert res.returncode == 1 and len(res.error_lines) == 1 and str(empty) in res.error_lines[0]

    model_dir = tmp_path / "model"
    assert _train_cli(*facesets, model_dir, "--target-iteration", "2").returncode == 0
    state = model_dir / "new_SAEHD_state.npz"
    good = state.read_bytes()

    res = run_cli("train", "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir", str(facesets[1]),
                  "--model-dir", str(model_dir), "--model", "Quick96", "--force-model-name", "new", "--no-preview")
    assert res.returncode == 1 and "SAEHD model" in res.error_lines[0], res.stderr[-2000:]

    state.write_bytes(good[: len(good) // 2])  # a truncated weights file
    res = run_cli("train", "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir", str(facesets[1]),
                  "--model-dir", str(model_dir), "--model", "SAEHD", "--silent-start", "--no-preview",
                  "--target-iteration", "5")
    assert res.returncode == 1 and "corrupt" in res.error_lines[0] and str(state) in res.error_lines[0]
    assert state.read_bytes() == good[: len(good) // 2]


@pytest.mark.slow
def test_preview_window_keys_save_switch_and_exit(facesets, tmp_path, xserver):
    from tests.xserver import window_process
    model_dir = tmp_path / "model"
    cmd = [sys.executable, str(REPO / "main.py"), "train", "--training-data-src-dir", str(facesets[0]),
           "--training-data-dst-dir", str(facesets[1]), "--model-dir", str(model_dir), "--model", "SAEHD",
           "--silent-start", *TINY]
    state = model_dir / "new_SAEHD_state.npz"
    with window_process(xserver, cmd, timeout=120) as win:
        win.wait_title("Training preview")
        deadline = time.monotonic() + 60
        while not state.exists():  # the first save, after iteration 1
            assert time.monotonic() < deadline
            time.sleep(0.2)
        first = _state_meta(model_dir)["iteration"]
        time.sleep(1.5)
        win.press("s")
        while _state_meta(model_dir)["iteration"] == first:  # "s" saves now, not in 25 minutes
            assert time.monotonic() < deadline + 30, "s did not save"
            time.sleep(0.2)
        win.press("space")
        win.press("l")
        win.press("Return")  # save and exit
        out, err = win.proc.communicate(timeout=60)
    assert win.proc.returncode == 0, err[-2000:]
    saved = _state_meta(model_dir)["iteration"]
    assert saved > first
    assert out.count("Saved") >= 3  # iteration 1, the s key, and the exit


def test_every_model_option_has_a_flag_in_the_help():
    from models.saehd_options import COMMON_OPTIONS, SAEHD_OPTIONS
    res = run_cli("train", "--help")
    assert res.returncode == 0, res.stderr
    for opt in SAEHD_OPTIONS + COMMON_OPTIONS:
        assert opt.flag in res.stdout, opt.flag
    for flag in ("--no-preview", "--target-iteration", "--silent-start", "--cpu-only", "--force-gpu-idxs", "--precision",
                 "--pretraining-data-dir", "--autobackup-hours"):
        assert flag in res.stdout, flag


DATA_PARALLEL_CHECK = r"""
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from pathlib import Path
from core import keras_backend as kb
keras = kb.prepare("float32")
import jax
from models.model_files import ModelFiles
from models.saehd import SAEHD
from models.augment import Batch
from tests.test_train import TINY_OPTIONS

assert len(jax.devices()) == 2
opts = dict(TINY_OPTIONS, adabelief=False)
rng = np.random.default_rng(0)
def batch():
    face = rng.random((4, 32, 32, 3), dtype=np.float32)
    mask = np.zeros((4, 32, 32, 1), np.float32); mask[:, 6:26, 6:26] = 1
    return Batch(face, face, mask, mask)
src, dst = batch(), batch()

single = SAEHD(ModelFiles(Path(sys.argv[2]), "a", "SAEHD"), opts, training=True)
start = kb.get_values([v for _, v in single._net_items()])
single.train_iteration(src, dst)
after_single = kb.get_values([v for _, v in single._net_items()])

assert kb.setup_data_parallel() == 2
parallel = SAEHD(ModelFiles(Path(sys.argv[2]), "b", "SAEHD"), opts, training=True)
kb.set_values([v for _, v in parallel._net_items()], start)
sharded = kb._to_tensors({"x": src.warped})["x"]
assert len(sharded.sharding.device_set) == 2, sharded.sharding
parallel.train_iteration(src, dst)
after_parallel = kb.get_values([v for _, v in parallel._net_items()])
# RMSprop's first step moves every weight by about lr / sqrt(1 - rho) whatever its gradient's size, so a weight
# whose gradient nearly cancels can step either way when the two devices' halves are summed in another order
# (seen: 1.2% of the weights, update norms 1.8% apart). A step on half the batch - what a missing all-reduce
# gives - is 44% / 89% apart: compare the whole update and the share of disagreeing weights against 10%.
flat = lambda xs: np.concatenate([np.ravel(x) for x in xs]).astype(np.float64)
single_step, parallel_step = flat(after_single) - flat(start), flat(after_parallel) - flat(start)
moved = float(np.linalg.norm(single_step))
diff = float(np.linalg.norm(parallel_step - single_step))
disagree = float(np.mean(np.abs(parallel_step - single_step) > 0.01 * np.abs(single_step).max()))
print("max diff", diff, "moved", moved, "disagreeing weights", disagree)
assert moved > 5e-5 and diff < 0.1 * moved and disagree < 0.1, (diff, moved, disagree)
"""


@pytest.mark.slow
def test_jax_data_parallel_splits_the_batch_and_matches_one_device(tmp_path):
    """Two XLA host devices stand in for two GPUs: the same step on a sharded batch gives the same weights."""
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    res = subprocess.run([sys.executable, "-c", DATA_PARALLEL_CHECK, str(REPO), str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "max diff" in res.stdout

"""`train`'s options and model choice, as the user meets them: the options file and the flags checked by
the same declarations, the model class in the folder, flags a model does not use, and nothing created
before the inputs check out. Most runs fail before training starts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.facesets import make_faceset
from tests.test_train import TINY, TINY_OPTIONS


@pytest.fixture(scope="module")
def facesets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("options_facesets")
    make_faceset(["obama.jpg"], root / "src", per_photo=4, size=64)
    make_faceset(["biden.jpg"], root / "dst", per_photo=4, size=64)
    return root / "src" / "aligned", root / "dst" / "aligned"


def _train(src: Path, dst: Path, model_dir: Path, model: str, *extra: str):
    return run_cli("train", "--training-data-src-dir", str(src), "--training-data-dst-dir", str(dst),
                   "--model-dir", str(model_dir), "--model", model, "--silent-start", "--no-preview",
                   "--sample-workers", "0", *extra)


def _saved_model(folder: Path, name: str, cls: str, options: dict) -> None:
    """A model's state as `train` saves it (metadata only: every check here fails before the weights load)."""
    from models.model_files import ModelFiles, SavedState
    ModelFiles(folder, name, cls).write_state(SavedState({"class": cls, "format": 1, "iteration": 3, "options": options}))


# --- 1. the options file and the flags: one declaration checks both -------------------------------

@pytest.mark.slow
def test_a_bad_value_in_the_options_file_names_the_file_and_the_key(facesets, tmp_path):
    model_dir = tmp_path / "model"
    _saved_model(model_dir, "new", "SAEHD", TINY_OPTIONS)
    options = model_dir / "new_SAEHD_options.json"
    options.write_text(json.dumps({**TINY_OPTIONS, "batch_size": 1.7}))
    before = options.read_bytes()
    res = _train(*facesets, model_dir, "SAEHD", "--target-iteration", "4")
    assert res.returncode == 1 and len(res.error_lines) == 1, res.stderr[-2000:]
    line = res.error_lines[0]
    assert f"{options}: option 'batch_size' must be an integer from 1 to 256, got 1.7" in line, line
    assert "unexpected" not in res.stderr
    assert options.read_bytes() == before  # not "corrected" to 1 and rewritten


@pytest.mark.parametrize("edit, expected", [
    ({"resolution": 33}, "option 'resolution' must be a multiple of 16, got 33"),
    ({"resolution": 48}, "option 'resolution' must be a multiple of 32 for archi 'df-ud'"),
    ({"archi": "zz-xx"}, "option 'archi' must be df or liae, optionally followed by - and any of u, d, t, c"),
    ({"batch_size": True}, "option 'batch_size' must be an integer from 1 to 256, got true"),
    ({"random_warp": 2}, "option 'random_warp' must be y or n (true or false), got 2"),
    ({"ct_mode": None}, "option 'ct_mode' must be one of none, rct, lct, mkl, idt, sot, got null"),
    ({"resolution": 64}, "option 'resolution' is 64 but the model was created with 32; it cannot change"),
])
def test_every_saved_option_goes_through_its_declaration(tmp_path, edit, expected):
    from core.errors import UserError
    from models.loader import saved_options
    from models.model_files import ModelFiles
    from models.saehd import SAEHD
    files = ModelFiles(tmp_path, "new", "SAEHD")
    files.options.write_text(json.dumps({**TINY_OPTIONS, **edit}))
    with pytest.raises(UserError) as err:
        saved_options(files, SAEHD, {"class": "SAEHD", "options": TINY_OPTIONS})
    assert err.value.path == files.options and expected in err.value.problem, str(err.value)


@pytest.mark.parametrize("flags, expected", [
    (["--batch-size", "true"], "--batch-size must be an integer from 1 to 256, got 'true'"),
    (["--resolution", "48", "--archi", "df-ud"], "--resolution must be a multiple of 32 for archi 'df-ud'"),
])
@pytest.mark.slow
def test_a_bad_flag_value_is_refused_naming_the_flag(facesets, tmp_path, flags, expected):
    model_dir = tmp_path / "model"
    res = _train(*facesets, model_dir, "SAEHD", *flags, "--target-iteration", "1")
    assert res.returncode == 1 and len(res.error_lines) == 1, res.stderr[-2000:]
    assert expected in res.error_lines[0] and "unexpected" not in res.stderr, res.error_lines[0]
    assert not model_dir.exists()


@pytest.mark.slow
def test_unknown_keys_in_the_options_file_are_kept_and_warned_about_once(facesets, tmp_path):
    model_dir = tmp_path / "model"
    assert _train(*facesets, model_dir, "SAEHD", *TINY, "--target-iteration", "1").returncode == 0
    options = model_dir / "new_SAEHD_options.json"
    data = json.loads(options.read_text())
    data.update(my_note="keep me", future_knob=3)
    options.write_text(json.dumps(data))
    res = _train(*facesets, model_dir, "SAEHD", "--target-iteration", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads(options.read_text())
    assert saved["my_note"] == "keep me" and saved["future_knob"] == 3 and saved["resolution"] == 32
    warnings = [line for line in (res.stdout + res.stderr).splitlines() if "my_note" in line]
    assert len(warnings) == 1, warnings
    assert str(options) in warnings[0] and "'future_knob'" in warnings[0] and "not used" in warnings[0]


# --- 2. a folder holding another class of model ----------------------------------------------------

@pytest.mark.slow
def test_quick96_does_not_start_silently_in_a_folder_holding_a_saehd_model(facesets, tmp_path):
    model_dir = tmp_path / "model"
    _saved_model(model_dir, "mine", "SAEHD", TINY_OPTIONS)
    res = _train(*facesets, model_dir, "Quick96", "--target-iteration", "1")
    assert res.returncode == 1 and len(res.error_lines) == 1, res.stderr[-2000:]
    line = res.error_lines[0]
    assert f"{model_dir}: holds SAEHD model 'mine', not Quick96; run with --model SAEHD to continue it, or " \
           f"--force-model-name NAME to start a new Quick96 model beside it" in line, line
    assert sorted(p.name for p in model_dir.iterdir()) == ["mine_SAEHD_state.npz"]


XSEG_OPTIONS = dict(face_type="wf", resolution=64, dims=4, batch_size=2, generic=True, autobackup_hour=0)


def test_an_xseg_model_and_a_face_model_share_a_folder_as_in_dfl(tmp_path):
    """DFL keeps its XSeg model in workspace/model beside the face model: neither counts as 'another class'
    for the other when an unattended run picks or starts a model, and merge hints never name XSeg."""
    from core.errors import UserError
    from models.loader import choose_model_name, choose_saved_model
    only_xseg, only_saehd = tmp_path / "xseg", tmp_path / "saehd"
    _saved_model(only_xseg, "new", "XSeg", XSEG_OPTIONS)
    _saved_model(only_saehd, "mine", "SAEHD", TINY_OPTIONS)
    for cls in ("Quick96", "SAEHD"):
        assert choose_model_name(only_xseg, cls, None, silent=True) == "new"
        assert choose_model_name(only_xseg, cls, "new", silent=True) == "new"  # new_<cls> beside new_XSeg
        with pytest.raises(UserError) as err:
            choose_saved_model(only_xseg, cls, None)
        assert f"no trained {cls} model in this folder" in err.value.problem and "XSeg" not in err.value.problem
    assert choose_model_name(only_saehd, "XSeg", None, silent=True) == "new"
    assert choose_model_name(only_saehd, "XSeg", "mine", silent=True) == "mine"
    with pytest.raises(UserError) as err:
        choose_saved_model(only_saehd, "XSeg", None)
    assert "no trained XSeg model" in err.value.problem and "--model" not in err.value.problem
    # a face model of another class still stops an unattended run, naming only the face model
    _saved_model(only_xseg, "mine", "SAEHD", TINY_OPTIONS)
    with pytest.raises(UserError) as err:
        choose_model_name(only_xseg, "Quick96", None, silent=True)
    assert err.value.problem.startswith("holds SAEHD model 'mine', not Quick96; run with --model SAEHD to continue it")
    with pytest.raises(UserError) as err:
        choose_saved_model(only_xseg, "Quick96", None)
    assert "use --model SAEHD" in err.value.problem and "XSeg" not in err.value.problem


@pytest.mark.slow
def test_quick96_starts_its_own_model_beside_an_xseg_model(facesets, tmp_path):
    model_dir = tmp_path / "model"
    _saved_model(model_dir, "new", "XSeg", XSEG_OPTIONS)
    xseg_state = (model_dir / "new_XSeg_state.npz").read_bytes()
    res = _train(*facesets, model_dir, "Quick96", "--target-iteration", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (model_dir / "new_Quick96_state.npz").is_file()
    assert (model_dir / "new_XSeg_state.npz").read_bytes() == xseg_state


# --- 3. flags the chosen model does not use --------------------------------------------------------

@pytest.mark.slow
def test_flags_quick96_does_not_use_are_refused(facesets, tmp_path):
    model_dir = tmp_path / "model"
    res = _train(*facesets, model_dir, "Quick96", "--batch-size", "8", "--pretraining-data-dir", str(facesets[0]),
                 "--target-iteration", "1")
    assert res.returncode == 1 and len(res.error_lines) == 1, res.stderr[-2000:]
    line = res.error_lines[0]
    assert "--batch-size, --pretraining-data-dir are not options of Quick96: its configuration is fixed " \
           "(batch_size 4, pretrain false); leave them out, or train with --model SAEHD" in line, line
    assert not model_dir.exists()
    res = _train(*facesets, model_dir, "Quick96", "--resolution", "128", "--target-iteration", "1")
    assert res.returncode == 1 and "--resolution is not an option of Quick96" in res.error_lines[0], res.stderr[-2000:]
    assert "(resolution 96)" in res.error_lines[0] and "or train with --model SAEHD" in res.error_lines[0]


# --- 4. nothing is created before the inputs check out ---------------------------------------------

@pytest.mark.slow
def test_a_missing_input_creates_no_model_folder(facesets, tmp_path):
    missing = tmp_path / "data_src" / "aligned"
    model_dir = tmp_path / "workspace" / "model"
    res = _train(missing, facesets[1], model_dir, "SAEHD", *TINY, "--target-iteration", "1")
    assert res.returncode == 1 and len(res.error_lines) == 1, res.stderr[-2000:]
    assert str(missing) in res.error_lines[0], res.error_lines[0]
    assert not (tmp_path / "workspace").exists()


def test_a_mistyped_faceset_path_is_said_before_keras_loads(facesets, tmp_path, monkeypatch):
    """Keras/TensorFlow take seconds to load: a path that does not exist is refused before that. Pretraining
    reads only its own folder, and may be on from the saved options: while that folder exists src and dst
    are not required (the SAEHD script always passes workspace/pretrain_faces)."""
    from core import keras_backend
    from core.errors import UserError
    from mainscripts.trainer import TrainSettings, train

    class KerasPrepared(Exception):
        pass

    def keras_first(*args, **kwargs):
        raise KerasPrepared

    monkeypatch.setattr(keras_backend, "prepare", keras_first)
    typo, pre = tmp_path / "typo", facesets[0]
    refused = ((typo, facesets[1], None, {}), (facesets[0], typo, None, {}), (typo, facesets[1], typo, {}),
               (facesets[0], facesets[1], typo, {"pretrain": True}))
    for src, dst, pretraining, options in refused:
        with pytest.raises(UserError, match="faceset folder not found") as err:
            train(TrainSettings(src, dst, tmp_path / "model", "SAEHD", pretraining_dir=pretraining, options=options,
                                no_preview=True))
        assert str(typo) in str(err.value)
    for options in ({}, {"pretrain": True}):  # a fresh workspace pretraining before it has facesets: goes on
        with pytest.raises(KerasPrepared):
            train(TrainSettings(typo, typo, tmp_path / "model", "SAEHD", pretraining_dir=pre, options=options,
                                no_preview=True))
    assert not (tmp_path / "model").exists()

"""`importdfl`: DeepFaceLab SAEHD models (written by DFL itself, ../shared/dfl-fixtures) become our SAEHD
models that predict what DFL predicts, train on from DFL's iteration and merge; hostile or broken
DFL folders are refused in one line naming the file, with nothing run and nothing written."""
from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli
from tests.facesets import make_faceset

FIXTURES = REPO.parent / "shared" / "dfl-fixtures"
FIXTURE_MODELS = ["saehd_liae-ud_64", "saehd_df-udt_64"]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _meta(state: Path) -> dict:
    with np.load(state, allow_pickle=False) as data:
        return json.loads(str(data["meta"]))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    """Each fixture model imported through the CLI into its own folder (the DFL files checked untouched)."""
    out = {}
    for name in FIXTURE_MODELS:
        source = FIXTURES / name
        before = _digests(source)
        folder = tmp_path_factory.mktemp(name)
        res = run_cli("importdfl", "--input-dir", str(source), "--model-dir", str(folder))
        assert res.returncode == 0, res.stderr[-3000:]
        assert _digests(source) == before
        out[name] = folder
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_imported_fixture_predicts_what_dfl_predicts(imported, name):
    from models.loader import load_predictor
    expected = np.load(FIXTURES / name / "predictions.npz")
    model = load_predictor(imported[name], "SAEHD", precision="float32")
    got = model.predict(expected["in_face"])
    np.testing.assert_allclose(got.face, expected["out_celeb_face"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.src_mask, expected["out_celeb_face_mask"][..., 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.dst_mask, expected["out_face_mask"][..., 0], atol=1e-4, rtol=0)

    meta = _meta(imported[name] / f"{name}_SAEHD_state.npz")
    assert meta["iteration"] == int(expected["iter"])
    archi = name.split("_")[1]
    assert meta["options"]["archi"] == archi and meta["options"]["resolution"] == 64
    assert meta["options"]["face_type"] == "f" and meta["options"]["dfl_layout"] is True
    with np.load(imported[name] / f"{name}_SAEHD_state.npz") as data:
        assert data["loss_history"].shape == (int(expected["iter"]), 2)
        assert any(k.startswith("opt/src_dst/") for k in data.files)  # DFL's AdaBelief state came along
        assert data["preview/src_face"].shape[1:] == (64, 64, 3)


@pytest.fixture(scope="module")
def dst_faces(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("import_facesets")
    make_faceset(["obama.jpg"], root / "src", per_photo=4, size=64)
    make_faceset(["biden.jpg"], root / "dst", per_photo=4, size=64)
    return root / "src" / "aligned", root / "dst"


@pytest.mark.slow
def test_training_goes_on_at_the_next_iteration_and_merge_uses_the_import(imported, dst_faces, tmp_path):
    import shutil
    name = "saehd_liae-ud_64"
    folder = tmp_path / "model"
    shutil.copytree(imported[name], folder)
    src, dst = dst_faces
    res = run_cli("train", "--training-data-src-dir", str(src), "--training-data-dst-dir", str(dst / "aligned"),
                  "--model-dir", str(folder), "--model", "SAEHD", "--force-model-name", name, "--silent-start",
                  "--no-preview", "--target-iteration", "348")
    assert res.returncode == 0, res.stderr[-3000:]
    its = [int(m) for m in re.findall(r"^\[\d\d:\d\d:\d\d\]\[#(\d{6})\]\[[\d.]+m?s\]", res.stdout, flags=re.M)]
    assert its == [348], res.stdout[-2000:]
    assert "starts fresh" not in res.stdout + res.stderr  # DFL's optimizer state was used
    meta = _meta(folder / f"{name}_SAEHD_state.npz")
    assert meta["iteration"] == 348 and meta["options"]["archi"] == "liae-ud" and meta["options"]["dfl_layout"]

    res = run_cli("merge", "--input-dir", str(dst), "--output-dir", str(tmp_path / "merged"), "--output-mask-dir",
                  str(tmp_path / "merged_mask"), "--aligned-dir", str(dst / "aligned"), "--model-dir", str(folder),
                  "--model", "SAEHD")
    assert res.returncode == 0, res.stderr[-3000:]
    frames = sorted(p.name for p in dst.glob("*.png"))
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == frames
    import cv2
    masks = [cv2.imread(str(tmp_path / "merged_mask" / f), cv2.IMREAD_UNCHANGED) for f in frames]
    assert all(m.max() == 255 for m in masks)  # every frame got a face


# --- DFL-format folders made here from FORMAT.md ---------------------------------------------------

TINY = dict(resolution=32, face_type="f", archi="df", ae_dims=8, e_dims=8, d_dims=8, d_mask_dims=4,
            masked_training=True, adabelief=True, lr_dropout="n", random_warp=True, batch_size=2,
            random_hsv_power=np.float64(0.0), gan_power=np.float64(0.0), models_opt_on_gpu=True)


def _df_variables(o: dict) -> dict[str, dict[str, tuple]]:
    """DFL's variable names and shapes of a `df` SAEHD model (FORMAT.md section 4), per network file."""
    e, ae, d, m, r = o["e_dims"], o["ae_dims"], o["d_dims"], o["d_mask_dims"], o["resolution"]
    enc, chans = {}, 3
    for i, ch in enumerate((e, 2 * e, 4 * e, 8 * e)):
        enc[f"down1/downs_{i}/conv1"] = (5, 5, chans, ch)
        chans = ch
    low = r // 16
    inter = {"dense1": (8 * e * low * low, ae), "dense2": (ae, low * low * ae), "upscale1/conv1": (3, 3, ae, 4 * ae)}
    dec, chans = {}, ae
    for i, ch in enumerate((8 * d, 4 * d, 2 * d)):
        dec[f"upscale{i}/conv1"] = (3, 3, chans, 4 * ch)
        dec[f"res{i}/conv1"] = dec[f"res{i}/conv2"] = (3, 3, ch, ch)
        chans = ch
    chans = ae
    for i, ch in enumerate((8 * m, 4 * m, 2 * m)):
        dec[f"upscalem{i}/conv1"] = (3, 3, chans, 4 * ch)
        chans = ch
    dec["out_conv"], dec["out_convm"] = (1, 1, 2 * d, 3), (1, 1, 2 * m, 1)
    return {"encoder": enc, "inter": inter, "decoder_src": dec, "decoder_dst": dec}


def write_dfl_model(folder: Path, name: str = "mine", iteration: int = 7, **options) -> dict[str, dict]:
    """A DFL SAEHD `df` model folder as DFL's pickles look; returns the arrays written per network."""
    folder.mkdir(parents=True, exist_ok=True)
    opts = {**TINY, **options}
    rng = np.random.default_rng(3)
    written = {}
    for net, layers in _df_variables(opts).items():
        arrays = {}
        for layer, shape in layers.items():
            arrays[f"{layer}/weight:0"] = rng.uniform(-0.2, 0.2, shape).astype(np.float32)
            arrays[f"{layer}/bias:0"] = rng.uniform(-0.05, 0.05, shape[-1]).astype(np.float32)
        (folder / f"{name}_SAEHD_{net}.npy").write_bytes(pickle.dumps(arrays, protocol=4))
        written[net] = arrays
    data = {"iter": iteration, "options": opts, "loss_history": [[0.5, 0.4]] * iteration,
            "sample_for_preview": None, "choosed_gpu_indexes": None}
    (folder / f"{name}_SAEHD_data.dat").write_bytes(pickle.dumps(data, protocol=4))
    return written


def state_meta(state: Path) -> dict:
    """The JSON metadata of one of our saved model states."""
    with np.load(state, allow_pickle=False) as data:
        return json.loads(str(data["meta"]))


def import_through_cli(root: Path, write_dfl) -> tuple[Path, dict, object]:
    """A DFL model folder written by `write_dfl(folder) -> arrays` under root/dfl and imported by `importdfl`
    into root/ours: (our model folder, DFL's arrays, the CLI result)."""
    written = write_dfl(root / "dfl")
    res = run_cli("importdfl", "--input-dir", str(root / "dfl"), "--model-dir", str(root / "ours"))
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "ours", written, res


class _RunsCode:
    """Unpickles as a call to os.system: what a malicious model file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.slow
def test_a_dfl_format_folder_made_from_the_format_imports_with_its_weights(tmp_path):
    written = write_dfl_model(tmp_path / "dfl")
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "optimizer starts fresh" in res.stdout + res.stderr  # this folder has no src_dst_opt.npy: said so
    assert "preview faces are not imported" in res.stdout + res.stderr
    state = tmp_path / "ours" / "mine_SAEHD_state.npz"
    meta = _meta(state)
    assert meta["iteration"] == 7 and meta["options"]["archi"] == "df" and meta["options"]["lr_dropout"] is False
    with np.load(state) as data:
        np.testing.assert_array_equal(data["net/decoder_src/res1_conv2/kernel"], written["decoder_src"]["res1/conv2/weight:0"])
        np.testing.assert_array_equal(data["net/encoder/down3/kernel"], written["encoder"]["down1/downs_2/conv1/weight:0"])
        # flatten and reshape are channel-major in DFL: the same values, rows and columns reordered
        ours, theirs = data["net/inter/dense1/kernel"], written["inter"]["dense1/weight:0"]
        assert not np.array_equal(ours, theirs)
        assert sorted(map(tuple, ours)) == sorted(map(tuple, theirs))
        assert data["loss_history"].shape == (7, 2)


@pytest.mark.parametrize("victim", ["data.dat", "decoder_src.npy"])
def test_a_hostile_pickle_is_refused_by_name_without_running_code(tmp_path, victim):
    write_dfl_model(tmp_path / "dfl")
    marker = tmp_path / "pwned"
    target = tmp_path / "dfl" / f"mine_SAEHD_{victim}"
    if victim == "data.dat":
        payload = {"iter": 7, "options": dict(TINY), "loss_history": [_RunsCode(marker)]}
    else:
        payload = {"out_conv/weight:0": _RunsCode(marker)}
    target.write_bytes(pickle.dumps(payload, protocol=4))
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1
    assert len(res.error_lines) == 1 and target.name in res.error_lines[0], res.stderr[-2000:]
    assert "system" in res.error_lines[0] and "Traceback" not in res.stderr
    assert not marker.exists()
    assert not list((tmp_path / "ours").glob("*_state.npz")) if (tmp_path / "ours").exists() else True


def test_folders_without_an_importable_model_say_so_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "empty"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and len(res.error_lines) == 1
    assert "no DFL model here" in res.error_lines[0] and "empty" in res.error_lines[0]

    (tmp_path / "sae").mkdir()  # DFL's long-gone SAE model
    (tmp_path / "sae" / "old_SAE_data.dat").write_bytes(pickle.dumps({"iter": 1, "options": {}}))
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "sae"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and len(res.error_lines) == 1
    assert "SAE models cannot be imported" in res.error_lines[0] and "Quick96 and XSeg" in res.error_lines[0]


@pytest.mark.slow
def test_a_missing_or_misshapen_weight_file_and_an_existing_model_are_refused(tmp_path):
    write_dfl_model(tmp_path / "dfl")
    (tmp_path / "dfl" / "mine_SAEHD_decoder_dst.npy").unlink()
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and "mine_SAEHD_decoder_dst.npy" in res.error_lines[0] and "missing" in res.error_lines[0]
    assert not (tmp_path / "ours" / "mine_SAEHD_state.npz").exists()

    write_dfl_model(tmp_path / "dfl2", ae_dims=16)
    data = tmp_path / "dfl2" / "mine_SAEHD_data.dat"
    data.write_bytes(pickle.dumps({"iter": 7, "options": TINY}, protocol=4))  # options say ae_dims 8
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl2"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and "mine_SAEHD_inter.npy" in res.error_lines[0] and "shaped" in res.error_lines[0]

    write_dfl_model(tmp_path / "dfl3")
    assert run_cli("importdfl", "--input-dir", str(tmp_path / "dfl3"), "--model-dir", str(tmp_path / "ours")).returncode == 0
    state = tmp_path / "ours" / "mine_SAEHD_state.npz"
    before = state.read_bytes()
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl3"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and "already here" in res.error_lines[0] and "--save-as" in res.error_lines[0]
    assert state.read_bytes() == before

""".dfm files in `merge` (issue 14) and the XSeg-dst load fix (issue 13), on real frames.

The .dfm files are built here with onnx.helper (tests/dfm_graphs.py): the merge stand-in as an ONNX graph
with DeepFaceLive's names, so merging with the file must give the stand-in's frames; an AMP-like file with
morph_value; one written like DFL's (NCHW inside, transposes at the edges, no metadata); and broken or
hostile files, each refused in one line naming the file before anything is written.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from core.errors import UserError
from core.image_io import read_image
from facelib.face_type import FaceType
from faceset.face_file import read_face_meta, update_face_meta
from mainscripts import merger_cli
from models.dfm_contract import META_FACE_TYPE, META_ITERATION
from models.dfm_predictor import MAX_DFM_BYTES, load_dfm_predictor
from tests.conftest import REPO, run_cli
from tests.dfm_graphs import standin_dfm, write_dfm
from tests.merge_standin import TINT, make_dst, masker_for, standin_for

R = 64
NAMES = [f"{i:05d}.png" for i in range(1, 4)]
pytestmark = pytest.mark.usefixtures("no_terminal")


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    return make_dst(tmp_path_factory.mktemp("data_dst"), count=3)


@pytest.fixture(scope="module")
def mask(dst) -> np.ndarray:
    """The stand-in's learned mask (the first face's landmark hull in the whole-face crop)."""
    return standin_for(dst, resolution=R).mask.astype(np.float32)


def _merge(dst: Path, out: Path, model_dir: Path | str, model_class: str | None = None, predictor=None,
           aligned: Path | None = None, model_name: str | None = None, xseg=None,
           **settings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Batch-merge dst's frames (colour transfer off: the pixels follow the model and the mask alone)."""
    merger_cli.merge(str(dst), str(out / "merged"), str(out / "mm"), str(aligned or dst / "aligned"), str(model_dir),
                     model_class, workers=0, predictor=predictor, model_name=model_name, xseg=xseg,
                     settings={"color_transfer": "none", **settings})
    return {p.name: (read_image(p), cv2.imread(str(out / "mm" / p.name), cv2.IMREAD_UNCHANGED))
            for p in sorted((out / "merged").glob("*.png"))}


# --- loading ---------------------------------------------------------------------------------------------

def test_a_dfm_says_its_resolution_face_type_and_iteration(mask, tmp_path):
    ours = load_dfm_predictor(write_dfm(standin_dfm(mask, metadata={META_FACE_TYPE: "f", META_ITERATION: "1234"}),
                                        tmp_path / "ours.dfm"))
    assert (ours.resolution, ours.face_type, ours.iteration, ours.has_morph) == (R, FaceType.FULL, 1234, False)
    assert ours.default_mode == "overlay" and not ours.needs_landmarks
    # The file's own face type wins over the option (which is for files that cannot say).
    assert load_dfm_predictor(tmp_path / "ours.dfm", FaceType.HEAD).face_type == FaceType.FULL

    dfl = write_dfm(standin_dfm(mask, nchw=True), tmp_path / "dfl.dfm")  # DFL's export: no metadata
    assert (load_dfm_predictor(dfl).face_type, load_dfm_predictor(dfl).iteration) == (FaceType.WHOLE_FACE, 0)
    assert load_dfm_predictor(dfl, FaceType.MID_FULL).face_type == FaceType.MID_FULL
    assert load_dfm_predictor(dfl, ask_face_type=lambda: FaceType.HALF).face_type == FaceType.HALF

    amp = load_dfm_predictor(write_dfm(standin_dfm(mask, morph=True), tmp_path / "amp.dfm"))
    assert amp.has_morph and amp.resolution == R


def test_the_prediction_is_the_graphs_in_batches_of_any_size(mask, dst, tmp_path):
    faces = np.random.default_rng(0).random((11, R, R, 3), dtype=np.float32)  # more than one batch of 8
    expected = np.clip(faces[:, :, ::-1] * TINT, 0, 1)
    for name, kwargs in (("free", {}), ("nchw", {"nchw": True}), ("fixed3", {"batch": 3})):
        pred = load_dfm_predictor(write_dfm(standin_dfm(mask, **kwargs), tmp_path / f"{name}.dfm")).predict(faces)
        np.testing.assert_allclose(pred.face, expected, atol=1e-6, err_msg=name)
        assert pred.src_mask.shape == pred.dst_mask.shape == (11, R, R)
        np.testing.assert_array_equal(pred.dst_mask[5], mask)


def test_morph_value_reaches_the_graph(mask, tmp_path):
    amp = load_dfm_predictor(write_dfm(standin_dfm(mask, morph=True, tint=(0.5, 0.5, 0.5)), tmp_path / "amp.dfm"))
    faces = np.full((2, R, R, 3), 0.8, np.float32)
    for morph, value in ((0.2, 0.08), (1.0, 0.4), (None, 0.3)):  # None: DeepFaceLive's default, 0.75
        np.testing.assert_allclose(amp.predict(faces, morph=morph).face, value, atol=1e-6)


def test_merges_morph_factor_reaches_an_amp_dfm(dst, mask, tmp_path):
    """`merge --morph-factor` (MergeConfig.morph_factor) is the file's morph_value: with this graph the face
    is the mirrored dst face times the factor, so a low factor merges a darker face."""
    amp = write_dfm(standin_dfm(mask, morph=True, tint=(1.0, 1.0, 1.0)), tmp_path / "amp.dfm")
    low = _merge(dst, tmp_path / "low", amp, morph_factor=0.25)
    high = _merge(dst, tmp_path / "high", amp, morph_factor=1.0)
    for name in NAMES:
        inside = low[name][1] == 255
        ratio = low[name][0][inside].mean() / high[name][0][inside].mean()
        assert 0.2 < ratio < 0.35, (name, ratio)


# --- merging ---------------------------------------------------------------------------------------------

def test_batch_merge_with_a_dfm_gives_the_stand_ins_frames(dst, mask, tmp_path):
    """DFL's layout (NCHW inside, no metadata: whole face) merged by file path: the same frames as the
    stand-in model it encodes; the face changes inside the mask and nothing outside it."""
    dfm = write_dfm(standin_dfm(mask, nchw=True), tmp_path / "models" / "celeb.dfm")
    got = _merge(dst, tmp_path / "dfm", dfm)
    ref = _merge(dst, tmp_path / "ref", tmp_path / "model", "SAEHD", predictor=standin_for(dst, resolution=R))
    assert sorted(got) == NAMES
    for name in NAMES:
        image, m = got[name]
        frame = read_image(dst / name)
        assert np.abs(image.astype(int) - ref[name][0].astype(int)).max() <= 1, name  # float rounding only
        assert (m.astype(int) - ref[name][1].astype(int)).max() <= 1, name
        np.testing.assert_array_equal(image[m == 0], frame[m == 0])
        assert (m == 255).sum() > 1000 and np.abs(image.astype(int) - frame.astype(int))[m == 255].mean() > 5
    assert not list((tmp_path / "models").glob("*session*"))  # batch mode keeps no session


def test_dfm_face_type_sets_the_crop_of_a_file_that_cannot_say_and_a_terminal_asks_it(dst, mask, tmp_path,
                                                                                      monkeypatch):
    from core import interact
    dfl = write_dfm(standin_dfm(mask, nchw=True), tmp_path / "dfl.dfm")
    wf = _merge(dst, tmp_path / "wf", dfl)
    full = _merge(dst, tmp_path / "f", dfl, dfm_face_type="f")
    assert all((wf[n][1] != full[n][1]).mean() > 0.01 for n in NAMES)  # another crop: the mask moved
    asked = []
    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    monkeypatch.setattr(interact, "ask_str", lambda q, default, *a, **k: asked.append((q, default)) or "f")
    assert merger_cli.load_dfm(dfl).face_type == FaceType.FULL
    assert asked == [("Face type of the .dfm model", "wf")]
    assert merger_cli.load_dfm(dfl, "h").face_type == FaceType.HALF and len(asked) == 1  # the flag: no question


def _bake(aligned: Path, count: int) -> None:
    """Bake a mask (the left half of the aligned face) into the first `count` faces, as `xseg apply` does."""
    for f in sorted(aligned.glob("*.jpg"))[:count]:
        meta = read_face_meta(f)
        size = read_image(f).shape[0]
        meta.xseg_mask = np.zeros((size, size), np.float32)
        meta.xseg_mask[:, : size // 2] = 1.0
        update_face_meta(f, meta)


def test_cli_merges_a_dfm_by_path_and_xseg_dst_needs_no_model_when_every_face_is_baked(dst, mask, tmp_path):
    """The user's command: `--model-dir X.dfm` (a stray --model is noted and ignored), mask mode XSeg-dst on a
    dst faceset whose every face carries a baked mask: no XSeg model anywhere, and none is needed."""
    aligned = tmp_path / "aligned"
    shutil.copytree(dst / "aligned", aligned)
    _bake(aligned, 3)
    dfm = write_dfm(standin_dfm(mask, metadata={META_FACE_TYPE: "wf"}), tmp_path / "model" / "ours.dfm")
    out = tmp_path / "out"
    r = run_cli("merge", "--input-dir", str(dst), "--output-dir", str(out / "merged"), "--output-mask-dir",
                str(out / "mm"), "--aligned-dir", str(aligned), "--model-dir", str(dfm), "--model", "SAEHD",
                "--mask-mode", "XSeg-dst", "--workers", "1")
    said = r.stdout + r.stderr
    assert r.returncode == 0, said[-2000:]
    assert "--model SAEHD is ignored" in said and "no XSeg model is loaded" in said and "DFM ours.dfm: 64 px" in said
    assert sorted(p.name for p in (out / "merged").iterdir()) == NAMES
    for name in NAMES:
        m = cv2.imread(str(out / "mm" / name), cv2.IMREAD_UNCHANGED)
        assert (m > 127).sum() > 500


WINDOW_DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from core import log
from mainscripts import merger_cli
log.setup()
merger_cli.merge({dst!r}, {out!r} + "/merged", {out!r} + "/mm", {dst!r} + "/aligned", {dfm!r}, None, interactive=True)
"""


def test_the_window_merges_with_a_dfm_and_keeps_its_session_beside_the_file(xserver, dst, mask, tmp_path):
    from tests.xserver import window_process
    dfm = write_dfm(standin_dfm(mask, nchw=True), tmp_path / "models" / "celeb.dfm")
    merger_cli.merge(str(dst), str(tmp_path / "batch"), str(tmp_path / "bm"), str(dst / "aligned"), str(dfm), None,
                     workers=0, settings={"interactive": False})
    cmd = [sys.executable, "-c", WINDOW_DRIVER.format(repo=str(REPO), dst=str(dst), out=str(tmp_path / "win"),
                                                      dfm=str(dfm))]
    with window_process(xserver, cmd, timeout=40.0, log=tmp_path / "window.log", cwd=REPO) as win:
        win.wait_title(r"^Merger - frame 1/3 00001\.png - overlay .* - help$")
        win.key("Tab", r"^Merger - frame 1/3 .*zoom=1\.0$")
        shown = read_image(tmp_path / "win" / "merged" / "00001.png")
        np.testing.assert_array_equal(shown, read_image(tmp_path / "batch" / "00001.png"))  # what batch makes
        win.press("Escape")
        win.wait_exit()
    assert (tmp_path / "models" / "celeb_DFM_merger_session.json").is_file()


def test_model_dfm_picks_a_dfm_of_the_folder_by_name(dst, mask, tmp_path):
    folder = tmp_path / "model"
    write_dfm(standin_dfm(mask), folder / "a.dfm")
    write_dfm(standin_dfm(mask, tint=(1.0, 1.0, 1.0)), folder / "b.dfm")
    by_name = _merge(dst, tmp_path / "n", folder, "DFM", model_name="a")
    by_path = _merge(dst, tmp_path / "p", folder / "a.dfm")
    newest = _merge(dst, tmp_path / "l", folder, "DFM")  # without a name or a terminal: the latest, b
    for name in NAMES:
        np.testing.assert_array_equal(by_name[name][0], by_path[name][0])
        assert np.abs(newest[name][0].astype(int) - by_path[name][0].astype(int)).max() > 20
    with pytest.raises(UserError, match=r"no c\.dfm in this folder \(it holds b\.dfm, a\.dfm\)"):
        _merge(dst, tmp_path / "c", folder, "DFM", model_name="c")
    with pytest.raises(UserError, match="--model is required"):
        _merge(dst, tmp_path / "d", folder, None)


# --- broken and hostile files ------------------------------------------------------------------------------

def _external_data(mask: np.ndarray) -> onnx.ModelProto:
    """A model whose mask weights live in a file it names outside its folder (ONNX external data)."""
    model = standin_dfm(mask)
    tensor = next(t for t in model.graph.initializer if t.name == "mask")
    onnx.external_data_helper.set_external_data(tensor, location="../../etc/passwd")
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    return model


BROKEN = {  # name -> (how the file is made from the mask and its path, what the line says)
    "not_onnx": (lambda m, p: p.write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 8), "not an ONNX model"),
    "text": (lambda m, p: p.write_text("this is not a model\n"), "not an ONNX model"),
    "wrong_input_name": (lambda m, p: write_dfm(standin_dfm(m, in_name="input_1"), p), "first input must be"),
    "three_inputs": (lambda m, p: write_dfm(standin_dfm(m, morph=True, third_input=True), p), "at most two inputs"),
    "dynamic_hw": (lambda m, p: write_dfm(standin_dfm(m, dynamic_hw=True), p), "fixed, equal H and W"),
    "two_outputs": (lambda m, p: write_dfm(standin_dfm(m, n_outputs=2), p), "three outputs"),
    "small_face": (lambda m, p: write_dfm(standin_dfm(m, wrong_face_shape=True), p), "expected float32 [N, 64, 64, 3]"),
    "nan": (lambda m, p: write_dfm(standin_dfm(m, nan=True), p), "NaN"),
    "external_data": (lambda m, p: write_dfm(_external_data(m), p), "ONNX external data"),
    "huge": (lambda m, p: _sparse(p, MAX_DFM_BYTES + 1), "larger than any .dfm can be"),
}


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)  # no blocks on disk: the loader must refuse it by its size, unread


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_dfm_is_one_line_naming_it_and_nothing_is_written(dst, mask, tmp_path, name):
    make, says = BROKEN[name]
    path = tmp_path / "model" / f"{name}.dfm"
    path.parent.mkdir()
    make(mask, path)
    with pytest.raises(UserError) as e:
        _merge(dst, tmp_path / "out", path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_broken_dfm_with_exit_1_and_one_line(dst, mask, tmp_path):
    path = write_dfm(standin_dfm(mask, morph=True, third_input=True), tmp_path / "three inputs.dfm")
    out = tmp_path / "out"
    r = run_cli("merge", "--input-dir", str(dst), "--output-dir", str(out / "merged"), "--output-mask-dir",
                str(out / "mm"), "--aligned-dir", str(dst / "aligned"), "--model-dir", str(path))
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr[-2000:]
    assert str(path) in r.error_lines[0] and "at most two inputs" in r.error_lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_nan_on_real_faces_stops_the_merge_naming_the_file_before_a_frame_is_written(dst, mask, tmp_path):
    path = write_dfm(standin_dfm(mask, nan_below=0.3), tmp_path / "dark.dfm")  # a grey test face passes
    load_dfm_predictor(path)
    with pytest.raises(UserError, match=r"dark\.dfm: the swapped face output holds NaN"):
        _merge(dst, tmp_path / "out", path)
    assert not list((tmp_path / "out").rglob("*.png"))


# --- issue 13: XSeg-dst loads the XSeg model only for faces without a baked mask ---------------------------

@pytest.mark.parametrize("mode,baked,loads", [("XSeg-dst", 3, False), ("XSeg-dst", 2, True), ("XSeg-prd", 3, True),
                                              ("XSeg-prd*XSeg-dst", 3, True)])
def test_the_xseg_model_is_loaded_only_when_some_face_needs_it(dst, tmp_path, monkeypatch, mode, baked, loads):
    aligned = tmp_path / "aligned"
    shutil.copytree(dst / "aligned", aligned)
    _bake(aligned, baked)
    loaded, checked = [], []
    monkeypatch.setattr(merger_cli, "check_xseg_model", lambda folder, why: checked.append(folder))
    monkeypatch.setattr(merger_cli, "load_xseg_model", lambda folder, why: loaded.append(folder) or masker_for(dst))
    got = _merge(dst, tmp_path / "out", tmp_path / "model", "SAEHD", predictor=standin_for(dst, resolution=R),
                 aligned=aligned, mask_mode=mode)
    assert sorted(got) == NAMES
    assert bool(loaded) == loads and bool(checked) == loads, (loaded, checked)


def test_model_dfm_is_chosen_by_name_else_the_newest_said_else_by_menu(tmp_path, monkeypatch):
    """`--model DFM` over a folder of several .dfm files: the same choice rules as saved models."""
    import os

    from core import interact, log
    for age, stem in enumerate(("carol", "bob", "alice")):  # carol is the newest
        (tmp_path / f"{stem}.dfm").write_bytes(b"x")
        os.utime(tmp_path / f"{stem}.dfm", (1_000_000 - age * 10, 1_000_000 - age * 10))
    assert merger_cli.choose_dfm(tmp_path, "bob").name == "bob.dfm"
    with pytest.raises(UserError, match=r"no dave\.dfm in this folder.*carol\.dfm"):
        merger_cli.choose_dfm(tmp_path, "dave")
    said: list[str] = []
    monkeypatch.setattr(log, "info", said.append)
    monkeypatch.setattr(interact, "is_interactive", lambda: False)
    assert merger_cli.choose_dfm(tmp_path, None).name == "carol.dfm"
    assert any("using 'carol', the most recently saved" in s and "--force-model-name" in s for s in said)
    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "2")
    assert merger_cli.choose_dfm(tmp_path, None).name == "alice.dfm"  # [0] carol, [1] bob, [2] alice

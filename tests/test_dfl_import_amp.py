"""`importdfl` for DFL's AMP: a DFL AMP folder made here from DFL's layout (models/Model_AMP/Model.py: encoder
down1..down5 + res1/res5 + dense1, inter_src/inter_dst dense2, one decoder with a 1x1 `out_conv` head; no AMP
fixtures exist) becomes an AMP model that predicts, at morph 0 and 1, what a numpy implementation of DFL's AMP
merge computes, keeps DFL's AdaBelief state, leaves the inter heads untrained (DFL's behaviour) and trains on
from DFL's iteration; a hostile pickle is refused without running code."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_dfl_import import _RunsCode, import_through_cli, state_meta
from tests.test_dfl_import_quick96 import _conv, _d2s, _lrelu

ITER = 9
R, AE, INTER, E, D, M = 64, 32, 32, 8, 8, 8  # a tiny AMP
LOW = R // 32
OPTIONS = {"resolution": R, "face_type": "wf", "models_opt_on_gpu": True, "ae_dims": np.int64(AE),
           "inter_dims": np.int64(INTER), "e_dims": np.int64(E), "d_dims": D, "d_mask_dims": M,
           "morph_factor": np.float64(0.5), "uniform_yaw": False, "blur_out_mask": False, "lr_dropout": "n",
           "random_warp": True, "ct_mode": "none", "clipgrad": False, "autobackup_hour": 0,
           "write_preview_history": False, "target_iter": 0, "random_src_flip": False, "random_dst_flip": True,
           "batch_size": 2, "gan_power": np.float64(0.0), "gan_patch_size": R // 8, "gan_dims": 16}


def amp_variables() -> dict[str, dict[str, tuple]]:
    """DFL's AMP variables (scope names and shapes) per network file."""
    enc, ch = {}, 3
    for i, c in enumerate((E, 2 * E, 4 * E, 8 * E, 8 * E), start=1):
        enc[f"down{i}/conv1"] = (5, 5, ch, c)
        ch = c
        if i in (1, 5):
            enc[f"res{i}/conv1"] = enc[f"res{i}/conv2"] = (3, 3, c, c)
    enc["dense1"] = (LOW * LOW * 8 * E, AE)
    inter = {"dense2": (AE, LOW * LOW * INTER)}
    dec, ch = {}, INTER
    for i, c in enumerate((8 * D, 8 * D, 4 * D, 2 * D)):
        dec[f"upscale{i}/conv1"] = (3, 3, ch, 4 * c)
        ch = c
    for i, c in enumerate((8 * D, 8 * D, 4 * D, 2 * D)):
        dec[f"res{i}/conv1"] = dec[f"res{i}/conv2"] = (3, 3, c, c)
    ch = INTER
    for i, c in enumerate((8 * M, 8 * M, 4 * M, 2 * M, M)):
        dec[f"upscalem{i}/conv1"] = (3, 3, ch, 4 * c)
        ch = c
    dec["out_convm"] = (1, 1, M, 1)
    dec["out_conv"] = (1, 1, 2 * D, 3)
    for i in (1, 2, 3):
        dec[f"out_conv{i}"] = (3, 3, 2 * D, 3)
    return {"encoder": enc, "inter_src": inter, "inter_dst": inter, "decoder": dec}


def write_dfl_amp(folder: Path, name: str = "morph") -> dict[str, dict]:
    """A DFL AMP folder as DFL writes it: `<name>_AMP_{data.dat,<net>.npy,src_dst_opt.npy}`; the optimizer
    holds AdaBelief `ms_`/`vs_` state for the encoder's and decoder's weights only (DFL's G_weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    written, opt = {}, {"iters:0": np.int64(ITER)}
    for net, layers in amp_variables().items():
        arrays = {}
        for layer, shape in layers.items():
            fan = int(np.prod(shape[:-1]))
            arrays[f"{layer}/weight:0"] = rng.normal(0, 1.0 / np.sqrt(fan), shape).astype(np.float32)
            arrays[f"{layer}/bias:0"] = rng.uniform(-0.05, 0.05, shape[-1]).astype(np.float32)
        if net in ("encoder", "decoder"):
            for key, value in arrays.items():
                for slot in ("ms", "vs"):
                    opt[f"{slot}_{net}/{key}".replace(":", "_") + ":0"] = rng.uniform(0, 1e-4, value.shape).astype(np.float32)
        (folder / f"{name}_AMP_{net}.npy").write_bytes(pickle.dumps(arrays, protocol=4))
        written[net] = arrays
    (folder / f"{name}_AMP_src_dst_opt.npy").write_bytes(pickle.dumps(opt, protocol=4))
    written["opt"] = opt
    faces = rng.uniform(0, 1, (2, R, R, 3)).astype(np.float32)
    masks = np.ones((2, R, R, 1), np.float32)
    data = {"iter": ITER, "options": dict(OPTIONS), "loss_history": [[1.0, 1.1]] * ITER,
            "sample_for_preview": [[faces, faces, masks, masks], [faces, faces, masks, masks]],
            "choosed_gpu_indexes": None}
    (folder / f"{name}_AMP_data.dat").write_bytes(pickle.dumps(data, protocol=4))
    return written


# --- numpy reference: DFL's AMP merge (AE_merge), float64 NHWC with DFL's channel-major flatten/reshape --------

def dfl_amp(x: np.ndarray, w: dict, morph: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred_src_dst, pred_src_dstm, pred_dst_dstm) as DFL's AMP AE_merge computes them at `morph`."""
    W = {net: {k: np.asarray(v, np.float64) for k, v in arrays.items()} for net, arrays in w.items() if net != "opt"}

    def c(net, layer, t, stride=1):
        return _conv(t, W[net][f"{layer}/weight:0"], W[net][f"{layer}/bias:0"], stride)

    def up(layer, t):
        return _d2s(_lrelu(c("decoder", f"{layer}/conv1", t), 0.1))

    def res(net, layer, t):
        r = _lrelu(c(net, f"{layer}/conv1", t), 0.2)
        return _lrelu(t + c(net, f"{layer}/conv2", r), 0.2)

    t = np.asarray(x, np.float64)
    for i in range(1, 6):
        t = _lrelu(c("encoder", f"down{i}/conv1", t, 2), 0.1)
        if i in (1, 5):
            t = res("encoder", f"res{i}", t)
    t = t.transpose(0, 3, 1, 2).reshape(len(t), -1)  # nn.flatten: channel-major
    t = t / np.sqrt(np.mean(t * t, axis=-1, keepdims=True) + 1e-6)  # nn.pixel_norm
    code = t @ W["encoder"]["dense1/weight:0"] + W["encoder"]["dense1/bias:0"]

    def inter(net):
        y = code @ W[net]["dense2/weight:0"] + W[net]["dense2/bias:0"]
        return y.reshape(len(y), INTER, LOW, LOW).transpose(0, 2, 3, 1)  # nn.reshape_4D: channel-major

    from_src, from_dst = inter("inter_src"), inter("inter_dst")
    k = int(INTER * np.float32(morph))  # tf.cast(inter_dims * morph_value, int32)
    swap = np.concatenate([from_src[..., :k], from_dst[..., k:]], axis=-1)

    def decode(z, face=True):
        y = z
        for i in range(4 if face else 0):
            y = res("decoder", f"res{i}", up(f"upscale{i}", y))
        if face:
            y = np.concatenate([c("decoder", n, y) for n in ("out_conv", "out_conv1", "out_conv2", "out_conv3")], -1)
            y = 1 / (1 + np.exp(-_d2s(y)))
        m = z
        for i in range(5):
            m = up(f"upscalem{i}", m)
        return y, 1 / (1 + np.exp(-c("decoder", "out_convm", m)))

    face, src_mask = decode(swap)
    return face, src_mask, decode(from_dst, face=False)[1]


# --- fast ---------------------------------------------------------------------------------------------

def test_amp_variable_names_and_dfl_layouts_map_onto_ours():
    from models.dfl_weights import amp_dfl_key, amp_to_ours
    assert amp_dfl_key("down3/kernel") == "down3/conv1/weight:0"
    assert amp_dfl_key("res5_conv2/bias") == "res5/conv2/bias:0"
    assert amp_dfl_key("upscalem4/kernel") == "upscalem4/conv1/weight:0"
    assert amp_dfl_key("out_conv0/kernel") == "out_conv/weight:0" and amp_dfl_key("out_conv3/bias") == "out_conv3/bias:0"
    assert amp_dfl_key("dense2/kernel") == "dense2/weight:0" and amp_dfl_key("out_convm/bias") == "out_convm/bias:0"
    # DFL's inter output is (inter_dims, side, side): our NHWC channel c at pixel (y, x) is DFL's column c*4 + y*2 + x
    bias = np.arange(LOW * LOW * INTER, dtype=np.float32)
    ours = amp_to_ours("dense2/bias", bias, LOW, 8 * E, INTER).reshape(LOW, LOW, INTER)
    assert ours[1, 0, 3] == 3 * LOW * LOW + 1 * LOW + 0
    rows = np.arange(LOW * LOW * 8 * E, dtype=np.float32)[:, None] * np.ones((1, AE), np.float32)
    ours = amp_to_ours("dense1/kernel", rows, LOW, 8 * E, INTER)
    assert ours[(0 * LOW + 1) * 8 * E + 5, 0] == 5 * LOW * LOW + 0 * LOW + 1  # row (y=0, x=1, c=5)
    kernel = np.ones((3, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(amp_to_ours("upscale0/kernel", kernel, LOW, 8 * E, INTER), kernel)


@pytest.mark.parametrize("victim", ["data.dat", "inter_src.npy", "src_dst_opt.npy"])
def test_a_hostile_pickle_in_an_amp_folder_is_refused_by_name_without_running_code(tmp_path, victim):
    folder = tmp_path / "dfl"
    folder.mkdir()
    for net in ("encoder", "inter_src", "inter_dst", "decoder", "src_dst_opt"):  # small stand-ins
        (folder / f"morph_AMP_{net}.npy").write_bytes(pickle.dumps({}, protocol=4))
    (folder / "morph_AMP_data.dat").write_bytes(pickle.dumps({"iter": 3, "options": dict(OPTIONS)}, protocol=4))
    marker = tmp_path / "pwned"
    target = folder / f"morph_AMP_{victim}"
    payload = {"iter": 3, "options": dict(OPTIONS), "loss_history": [_RunsCode(marker)]} if victim == "data.dat" \
        else {"dense2/weight:0": _RunsCode(marker)}
    target.write_bytes(pickle.dumps(payload, protocol=4))
    res = run_cli("importdfl", "--input-dir", str(folder), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1, res.stdout[-2000:]
    assert len(res.error_lines) == 1 and target.name in res.error_lines[0], res.stderr[-2000:]
    assert "system" in res.error_lines[0] and "Traceback" not in res.stderr
    assert not marker.exists()
    assert not list(tmp_path.glob("ours/*_state.npz"))


# --- slow: a full import, DFL's predictions, training on ---------------------------------------------------

@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict, object]:
    return import_through_cli(tmp_path_factory.mktemp("dfl_amp"), write_dfl_amp)


@pytest.mark.slow
def test_imported_amp_predicts_what_dfls_amp_computes_at_morph_0_and_1_and_keeps_its_adabelief_state(imported):
    folder, written, res = imported
    out = res.stdout + res.stderr
    assert "starts fresh" not in out and "not imported" not in out and "inter heads are not trained" in out
    meta = state_meta(folder / "morph_AMP_state.npz")
    o = meta["options"]
    assert meta["iteration"] == ITER and o["dfl_layout"] is True and o["train_inters"] is False
    assert (o["inter_dims"], o["morph_factor"], o["lr_dropout"], o["random_dst_flip"]) == (INTER, 0.5, False, True)
    with np.load(folder / "morph_AMP_state.npz") as data:
        assert data["loss_history"].shape == (ITER, 2) and data["preview/src_face"].shape == (2, R, R, 3)
        opt = {k: data[k] for k in data.files if k.startswith("opt/src_dst/")}
    for key in ("ms_decoder/res1/conv2/weight_0:0", "vs_encoder/res5/conv1/bias_0:0", "vs_decoder/out_conv/weight_0:0"):
        moment = written["opt"][key]
        assert any(v.shape == moment.shape and np.array_equal(v, moment) for v in opt.values()), key
    assert any(v.shape == () and int(v) == ITER for v in opt.values())  # DFL's step count
    dense1 = written["opt"]["ms_encoder/dense1/weight_0:0"]  # rows reordered like the weight (channel-major flatten)
    assert any(v.shape == dense1.shape and sorted(map(tuple, v)) == sorted(map(tuple, dense1)) for v in opt.values())

    import cv2

    from models.loader import load_predictor
    from tests.test_dfl_import_xseg import _faces
    faces = np.stack([cv2.resize(f, (R, R), interpolation=cv2.INTER_AREA) for f in _faces(2)])
    model = load_predictor(folder, "AMP", precision="float32")
    for morph in (0.0, 1.0):
        got = model.predict(faces, morph=morph)
        face, src_mask, dst_mask = dfl_amp(faces, written, morph)
        assert face.std() > 0.02  # a real signal
        np.testing.assert_allclose(got.face, face, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.src_mask, src_mask[..., 0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.dst_mask, dst_mask[..., 0], atol=1e-4, rtol=0)
    assert np.abs(dfl_amp(faces, written, 0.0)[0] - dfl_amp(faces, written, 1.0)[0]).max() > 1e-3  # morph matters


@pytest.mark.slow
def test_imported_amp_trains_on_at_dfls_iteration_with_its_inters_frozen(imported, tmp_path):
    import shutil

    from tests.facesets import make_faceset
    folder = tmp_path / "model"
    shutil.copytree(imported[0], folder)
    make_faceset(["obama.jpg"], tmp_path / "src", per_photo=4, size=R)
    make_faceset(["biden.jpg"], tmp_path / "dst", per_photo=4, size=R)
    res = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                  str(tmp_path / "dst" / "aligned"), "--model-dir", str(folder), "--model", "AMP",
                  "--force-model-name", "morph", "--silent-start", "--no-preview", "--target-iteration", str(ITER + 2))
    assert res.returncode == 0, res.stderr[-3000:]
    its = [int(m) for m in re.findall(r"^\[\d\d:\d\d:\d\d\]\[#(\d{6})\]\[[\d.]+m?s\]", res.stdout, flags=re.M)]
    assert its and its[-1] == ITER + 2, res.stdout[-2000:]
    out = res.stdout + res.stderr
    assert "starts fresh" not in out and "not an option" not in out and "is new in this run" not in out
    assert state_meta(folder / "morph_AMP_state.npz")["iteration"] == ITER + 2
    with np.load(imported[0] / "morph_AMP_state.npz") as before, np.load(folder / "morph_AMP_state.npz") as after:
        inter = [k for k in before.files if k.startswith(("net/inter_src/", "net/inter_dst/"))]
        enc = [k for k in before.files if k.startswith("net/encoder/")]
        assert inter and all(np.array_equal(before[k], after[k]) for k in inter)  # DFL's inters stay as they were
        assert enc and not all(np.array_equal(before[k], after[k]) for k in enc)  # the encoder learns
    # merge-ready: load_predictor (what merge loads) and predict are checked on the import above

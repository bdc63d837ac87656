"""`importdfl` for DFL's Quick96 (DF-UD, 96 px, ae 128 / e 64 / d 64 / mask 16, RMSprop) and DFL's RMSprop
optimizer state: a Quick96 folder made here from DFL's documented format (no Quick96 fixtures exist)
becomes a Quick96 model that predicts what a numpy implementation of DFL's DF-UD forward pass
predicts (load_predictor, as merge loads it), keeps DFL's RMSprop accumulators and trains on from DFL's
iteration; a hostile pickle is refused without running code."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_dfl_import import TINY, _RunsCode, import_through_cli, state_meta, write_dfl_model

ITER = 21
E, AE, D, M, R = 64, 128, 64, 16, 96  # DFL's Quick96


def quick96_variables() -> dict[str, dict[str, tuple]]:
    """DFL's DeepFakeArchi(96, opts='ud') variables per network file (FORMAT.md section 4)."""
    enc, ch = {}, 3
    for i, c in enumerate((E, 2 * E, 4 * E, 8 * E)):
        enc[f"down1/downs_{i}/conv1"] = (5, 5, ch, c)
        ch = c
    low = R // 32  # -d: the dense bottleneck is res/32
    inter = {"dense1": (8 * E * (R // 16) ** 2, AE), "dense2": (AE, low * low * AE), "upscale1/conv1": (3, 3, AE, 4 * AE)}
    dec, ch = {}, AE
    for i, c in enumerate((8 * D, 4 * D, 2 * D)):
        dec[f"upscale{i}/conv1"] = (3, 3, ch, 4 * c)
        dec[f"res{i}/conv1"] = dec[f"res{i}/conv2"] = (3, 3, c, c)
        ch = c
    ch = AE
    for i, c in enumerate((8 * M, 4 * M, 2 * M, M)):
        dec[f"upscalem{i}/conv1"] = (3, 3, ch, 4 * c)
        ch = c
    dec["out_conv"] = (1, 1, 2 * D, 3)
    for i in (1, 2, 3):
        dec[f"out_conv{i}"] = (3, 3, 2 * D, 3)
    dec["out_convm"] = (1, 1, M, 1)
    return {"encoder": enc, "inter": inter, "decoder_src": dec, "decoder_dst": dec}


def write_dfl_quick96(folder: Path, name: str = "fast") -> dict[str, dict]:
    """A DFL Quick96 folder as DFL writes it: `<name>_Quick96_{data.dat,<net>.npy,src_dst_opt.npy}`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    written, opt = {}, {"iters:0": np.int64(ITER)}
    for net, layers in quick96_variables().items():
        arrays = {}
        for layer, shape in layers.items():
            fan = int(np.prod(shape[:-1]))
            arrays[f"{layer}/weight:0"] = rng.normal(0, 1.0 / np.sqrt(fan), shape).astype(np.float32)
            arrays[f"{layer}/bias:0"] = rng.uniform(-0.05, 0.05, shape[-1]).astype(np.float32)
        for key, value in arrays.items():
            opt[f"acc_{net}/{key}".replace(":", "_") + ":0"] = np.full(value.shape, 1e-6 * (1 + len(opt) % 7), np.float32)
        (folder / f"{name}_Quick96_{net}.npy").write_bytes(pickle.dumps(arrays, protocol=4))
        written[net] = arrays
    (folder / f"{name}_Quick96_src_dst_opt.npy").write_bytes(pickle.dumps(opt, protocol=4))
    written["opt"] = opt
    faces = rng.uniform(0, 1, (2, R, R, 3)).astype(np.float32)
    masks = np.ones((2, R, R, 1), np.float32)
    data = {"iter": ITER, "options": {"batch_size": 4}, "loss_history": [[1.0, 1.1]] * ITER,
            "sample_for_preview": [[faces, faces, masks], [faces, faces, masks]], "choosed_gpu_indexes": None}
    (folder / f"{name}_Quick96_data.dat").write_bytes(pickle.dumps(data, protocol=4))
    return written


# --- numpy reference: DFL's DF-UD forward pass (NHWC, float64) ----------------------------------------

def _conv(x, w, b, stride=1):
    """DFL's Conv2D: (k-1)//2 zeros on every side, then 'valid' at `stride`."""
    k = w.shape[0]
    p = (k - 1) // 2
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[-1]))
    for dy in range(k):
        for dx in range(k):
            patch = np.ascontiguousarray(x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride, :])
            out += (patch.reshape(-1, patch.shape[-1]) @ w[dy, dx]).reshape(out.shape)  # 2-D: BLAS
    return out + b


def _lrelu(x, a):
    return np.where(x >= 0, x, a * x)


def _d2s(x):
    """tf.nn.depth_to_space(x, 2): channel (dy*2 + dx)*C + c -> pixel (2y+dy, 2x+dx), channel c."""
    n, h, w, c4 = x.shape
    c = c4 // 4
    return x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


def dfl_quick96(x: np.ndarray, w: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out_celeb_face, out_celeb_face_mask, out_face_mask) as DFL's Quick96 AE_merge computes them."""
    W = {net: {k: np.asarray(v, np.float64) for k, v in arrays.items()} for net, arrays in w.items() if net != "opt"}

    def c(net, layer, t, stride=1):
        return _conv(t, W[net][f"{layer}/weight:0"], W[net][f"{layer}/bias:0"], stride)

    def up(net, layer, t):
        return _d2s(_lrelu(c(net, f"{layer}/conv1", t), 0.1))

    t = np.asarray(x, np.float64)
    for i in range(4):
        t = _lrelu(c("encoder", f"down1/downs_{i}/conv1", t, 2), 0.1)
    t = t.transpose(0, 3, 1, 2).reshape(len(t), -1)  # nn.flatten: channel-major
    t = t / np.sqrt(np.mean(t * t, axis=-1, keepdims=True) + 1e-6)  # -u pixel norm
    t = t @ W["inter"]["dense1/weight:0"] + W["inter"]["dense1/bias:0"]
    t = t @ W["inter"]["dense2/weight:0"] + W["inter"]["dense2/bias:0"]
    t = t.reshape(len(t), AE, R // 32, R // 32).transpose(0, 2, 3, 1)  # nn.reshape_4D
    code = up("inter", "upscale1", t)

    def decode(net, face=True):
        y = code
        for i in range(3 if face else 0):
            y = up(net, f"upscale{i}", y)
            r = _lrelu(c(net, f"res{i}/conv1", y), 0.2)
            y = _lrelu(y + c(net, f"res{i}/conv2", r), 0.2)
        if face:
            y = np.concatenate([c(net, n, y) for n in ("out_conv", "out_conv1", "out_conv2", "out_conv3")], -1)
            y = 1 / (1 + np.exp(-_d2s(y)))
        m = code
        for i in range(4):
            m = up(net, f"upscalem{i}", m)
        return y, 1 / (1 + np.exp(-c(net, "out_convm", m)))

    face, face_mask = decode("decoder_src")
    return face, face_mask, decode("decoder_dst", face=False)[1]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict, object]:
    return import_through_cli(tmp_path_factory.mktemp("dfl_q96"), write_dfl_quick96)


@pytest.mark.slow
def test_imported_quick96_predicts_what_dfls_df_ud_computes_and_keeps_its_rmsprop_state(imported):
    folder, written, res = imported
    assert "starts fresh" not in res.stdout + res.stderr and "not imported" not in res.stdout + res.stderr
    meta = state_meta(folder / "fast_Quick96_state.npz")
    assert meta["iteration"] == ITER and meta["options"]["dfl_layout"] is True
    with np.load(folder / "fast_Quick96_state.npz") as data:
        assert data["loss_history"].shape == (ITER, 2) and data["preview/src_face"].shape == (2, R, R, 3)
        opt = {k: data[k] for k in data.files if k.startswith("opt/src_dst/")}
    acc = written["opt"]["acc_decoder_src/res1/conv2/weight_0:0"]
    assert any(v.shape == acc.shape and np.array_equal(v, acc) for v in opt.values())  # DFL's accumulator
    assert any(v.shape == () and int(v) == ITER for v in opt.values())  # DFL's step count

    import cv2

    from models.loader import load_predictor
    from tests.test_dfl_import_xseg import _faces
    faces = np.stack([cv2.resize(f, (R, R), interpolation=cv2.INTER_AREA) for f in _faces(1)])
    model = load_predictor(folder, "Quick96", precision="float32")
    got = model.predict(faces)
    face, face_mask, dst_mask = dfl_quick96(faces, written)
    assert face.std() > 0.02  # a real signal
    np.testing.assert_allclose(got.face, face, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.src_mask, face_mask[..., 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.dst_mask, dst_mask[..., 0], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_imported_quick96_trains_on_at_dfls_next_iteration(imported, tmp_path):
    import shutil

    from tests.facesets import make_faceset
    folder = tmp_path / "model"
    shutil.copytree(imported[0], folder)
    make_faceset(["obama.jpg"], tmp_path / "src", per_photo=4, size=96)
    make_faceset(["biden.jpg"], tmp_path / "dst", per_photo=4, size=96)
    res = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                  str(tmp_path / "dst" / "aligned"), "--model-dir", str(folder), "--model", "Quick96",
                  "--force-model-name", "fast", "--silent-start", "--no-preview", "--target-iteration", str(ITER + 1))
    assert res.returncode == 0, res.stderr[-3000:]
    its = [int(m) for m in re.findall(r"^\[\d\d:\d\d:\d\d\]\[#(\d{6})\]\[[\d.]+m?s\]", res.stdout, flags=re.M)]
    assert its == [ITER + 1], res.stdout[-2000:]
    assert "starts fresh" not in res.stdout + res.stderr and "not an option" not in res.stdout + res.stderr
    assert "is new in this run" not in res.stdout + res.stderr  # DFL's optimizer state was loaded
    assert state_meta(folder / "fast_Quick96_state.npz")["iteration"] == ITER + 1
    # merge-ready: load_predictor and predict are checked on the import above (merge runs the same loader)


@pytest.mark.slow
def test_saehd_with_adabelief_off_imports_dfls_rmsprop_state(tmp_path):
    """SAEHD without AdaBelief trains with RMSprop in DFL: its `acc_` state comes along."""
    written = write_dfl_model(tmp_path / "dfl", adabelief=False)
    rng = np.random.default_rng(1)
    opt = {"iters:0": np.int64(7)}
    for net, arrays in written.items():
        for key, value in arrays.items():
            opt[f"acc_{net}/{key}".replace(":", "_") + ":0"] = rng.uniform(0, 1e-4, value.shape).astype(np.float32)
    (tmp_path / "dfl" / "mine_SAEHD_src_dst_opt.npy").write_bytes(pickle.dumps(opt, protocol=4))
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "starts fresh" not in res.stdout + res.stderr
    with np.load(tmp_path / "ours" / "mine_SAEHD_state.npz") as data:
        values = [data[k] for k in data.files if k.startswith("opt/src_dst/")]
    acc = opt["acc_decoder_dst/res2/conv1/weight_0:0"]
    assert any(v.shape == acc.shape and np.array_equal(v, acc) for v in values)
    # DFL's flatten is channel-major: the accumulator of inter's dense1 has its rows reordered like the weight
    dense1 = opt["acc_inter/dense1/weight_0:0"]
    assert not any(v.shape == dense1.shape and np.array_equal(v, dense1) for v in values)
    assert any(v.shape == dense1.shape and sorted(map(tuple, v)) == sorted(map(tuple, dense1)) for v in values)


@pytest.mark.parametrize("victim", ["data.dat", "inter.npy", "src_dst_opt.npy"])
def test_a_hostile_pickle_in_a_quick96_folder_is_refused_by_name_without_running_code(tmp_path, victim):
    folder = tmp_path / "dfl"
    folder.mkdir()
    for net in ("encoder", "inter", "decoder_src", "decoder_dst", "src_dst_opt"):  # small stand-ins
        (folder / f"fast_Quick96_{net}.npy").write_bytes(pickle.dumps({}, protocol=4))
    (folder / "fast_Quick96_data.dat").write_bytes(pickle.dumps({"iter": 3, "options": {}}, protocol=4))
    marker = tmp_path / "pwned"
    target = folder / f"fast_Quick96_{victim}"
    payload = {"iter": 3, "options": dict(TINY), "loss_history": [_RunsCode(marker)]} if victim == "data.dat" \
        else {"dense1/weight:0": _RunsCode(marker)}
    target.write_bytes(pickle.dumps(payload, protocol=4))
    res = run_cli("importdfl", "--input-dir", str(folder), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1, res.stdout[-2000:]
    assert len(res.error_lines) == 1 and target.name in res.error_lines[0], res.stderr[-2000:]
    assert "system" in res.error_lines[0] and "Traceback" not in res.stderr
    assert not marker.exists()
    assert not list(tmp_path.glob("ours/*_state.npz"))

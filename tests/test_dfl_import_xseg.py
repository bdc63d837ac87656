"""`importdfl` for DFL's XSeg: a DFL XSeg folder (XSeg_data.dat, XSeg_256.npy, XSeg_256_opt.npy), made here
from DFL's documented format and code structure (no DFL XSeg fixtures exist), becomes an XSeg model whose
masks are DFL's: checked against a numpy implementation of DFL's XSeg forward pass written below (conv,
FRN, TLU, BlurPool, transposed conv, channel-major flatten); it trains on from DFL's iteration with DFL's
RMSprop state; a hostile pickle is refused without running code."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_dfl_import import _RunsCode, import_through_cli, state_meta

DIMS = 4  # DFL's base width is 32; the importer reads it from the weights, a small one keeps the test fast
RES = 256  # DFL's XSeg resolution (the dense bottleneck is 4x4)
ITER = 11


def _conv(name: str, cin: int, cout: int) -> dict[str, tuple]:
    """DFL's ConvBlock / UpConvBlock variables (conv, frn, tlu), as nn.XSeg builds them."""
    return {f"{name}/conv/weight:0": (3, 3, cin, cout), f"{name}/conv/bias:0": (cout,),
            f"{name}/frn/weight:0": (cout,), f"{name}/frn/bias:0": (cout,), f"{name}/frn/eps:0": (1,),
            f"{name}/tlu/tau:0": (cout,)}


def _up(name: str, cin: int, cout: int) -> dict[str, tuple]:
    v = _conv(name, cin, cout)
    v[f"{name}/conv/weight:0"] = (3, 3, cout, cin)  # Conv2DTranspose: (k, k, out, in)
    return v


def xseg_variables(b: int = DIMS) -> dict[str, tuple]:
    """DFL's XSeg variable names and shapes in build order (core/leras/models/XSeg.py with base `b`)."""
    v: dict[str, tuple] = {}
    for name, cin, cout in [("conv01", 3, b), ("conv02", b, b), ("conv11", b, 2 * b), ("conv12", 2 * b, 2 * b),
                            ("conv21", 2 * b, 4 * b), ("conv22", 4 * b, 4 * b), ("conv31", 4 * b, 8 * b),
                            ("conv32", 8 * b, 8 * b), ("conv33", 8 * b, 8 * b), ("conv41", 8 * b, 8 * b),
                            ("conv42", 8 * b, 8 * b), ("conv43", 8 * b, 8 * b), ("conv51", 8 * b, 8 * b),
                            ("conv52", 8 * b, 8 * b), ("conv53", 8 * b, 8 * b)]:
        v.update(_conv(name, cin, cout))
    v.update({"dense1/weight:0": (16 * 8 * b, 512), "dense1/bias:0": (512,),
              "dense2/weight:0": (512, 16 * 8 * b), "dense2/bias:0": (16 * 8 * b,)})
    for lvl in (5, 4, 3):
        v.update(_up(f"up{lvl}", 8 * b, 4 * b))
        v.update(_conv(f"uconv{lvl}3", 12 * b, 8 * b))
        v.update(_conv(f"uconv{lvl}2", 8 * b, 8 * b))
        v.update(_conv(f"uconv{lvl}1", 8 * b, 8 * b))
    v.update(_up("up2", 8 * b, 4 * b))
    v.update(_conv("uconv22", 8 * b, 4 * b))
    v.update(_conv("uconv21", 4 * b, 4 * b))
    v.update(_up("up1", 4 * b, 2 * b))
    v.update(_conv("uconv12", 4 * b, 2 * b))
    v.update(_conv("uconv11", 2 * b, 2 * b))
    v.update(_up("up0", 2 * b, b))
    v.update(_conv("uconv02", 2 * b, b))
    v.update(_conv("uconv01", b, b))
    v.update({"out_conv/weight:0": (3, 3, b, 1), "out_conv/bias:0": (1,)})
    return v


def write_dfl_xseg(folder: Path, *, iteration: int = ITER, face_type: str = "wf", opt: bool = True) -> dict:
    """A DFL XSeg model folder as DFL writes it (pickled dicts of float32 arrays, network scope stripped);
    returns the weights written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    weights = {}
    for key, shape in xseg_variables().items():
        if key.endswith("conv/weight:0") or key.endswith("dense1/weight:0") or key.endswith("dense2/weight:0"):
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0, 1.3 / np.sqrt(fan_in), shape)
        elif key.endswith("frn/weight:0"):
            value = rng.uniform(0.6, 1.4, shape)
        elif key.endswith("frn/eps:0"):
            value = np.array([-1e-3])  # DFL uses |eps|: a negative one must work as its magnitude
        elif key.endswith("tlu/tau:0"):
            value = rng.uniform(-0.6, 0.1, shape)
        else:
            value = rng.uniform(-0.1, 0.1, shape)
        weights[key] = value.astype(np.float32)
    (folder / "XSeg_256.npy").write_bytes(pickle.dumps(weights, protocol=4))
    if opt:
        state = {"iters:0": np.int64(iteration)}
        for key, shape in xseg_variables().items():
            name = f"XSeg/{key}".replace(":", "_") + ":0"
            state[f"acc_{name}"] = rng.uniform(0, 1e-4, shape).astype(np.float32)
        (folder / "XSeg_256_opt.npy").write_bytes(pickle.dumps(state, protocol=4))
        weights["_opt"] = state
    data = {"iter": iteration, "options": {"face_type": face_type, "pretrain": False, "batch_size": np.int64(4)},
            "loss_history": [[0.5 - 0.01 * i] for i in range(iteration)], "sample_for_preview": None,
            "choosed_gpu_indexes": None}
    (folder / "XSeg_data.dat").write_bytes(pickle.dumps(data))
    return weights


# --- numpy reference: DFL's XSeg forward pass, NHWC, float64 -----------------------------------------

def _conv3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution, 1 zero on every side, stride 1 (DFL's Conv2D 'SAME')."""
    n, h, wd, _ = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, wd, w.shape[-1]), x.dtype)
    for dy in range(3):
        for dx in range(3):
            patch = np.ascontiguousarray(p[:, dy:dy + h, dx:dx + wd, :])
            out += (patch.reshape(-1, patch.shape[-1]) @ w[dy, dx]).reshape(out.shape)  # 2-D: BLAS
    return out + b


def _frn_tlu(x, gamma, beta, eps, tau):
    nu2 = np.mean(x * x, axis=(1, 2), keepdims=True)
    return np.maximum(x / np.sqrt(nu2 + np.abs(eps[0])) * gamma + beta, tau)


def _blurpool(x: np.ndarray, f: int) -> np.ndarray:
    """DFL's BlurPool: binomial f x f blur, zeros (f-1)//2 before and ceil((f-1)/2) after, stride 2 'valid'."""
    a = {2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[f]
    k = np.outer(a, a) / np.sum(np.outer(a, a))
    lo, hi = (f - 1) // 2, int(np.ceil((f - 1) / 2))
    p = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    oh, ow = (p.shape[1] - f) // 2 + 1, (p.shape[2] - f) // 2 + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for dy in range(f):
        for dx in range(f):
            out += x.dtype.type(k[dy, dx]) * p[:, dy:dy + 2 * oh:2, dx:dx + 2 * ow:2, :]
    return out


def _deconv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF conv2d_transpose, 3x3, stride 2, 'SAME' (output 2H): input pixel (i, j) adds w[ky, kx] @ x to
    output pixel (2i + ky, 2j + kx); the row and column past 2H are cut (TF pads the forward conv 0
    before and 1 after). w is (k, k, out, in)."""
    n, h, wd, _ = x.shape
    out = np.zeros((n, 2 * h + 1, 2 * wd + 1, w.shape[2]), x.dtype)
    for ky in range(3):
        for kx in range(3):
            out[:, ky:ky + 2 * h:2, kx:kx + 2 * wd:2, :] += (x.reshape(-1, x.shape[-1]) @ w[ky, kx].T).reshape(
                n, h, wd, -1)
    return out[:, :2 * h, :2 * wd, :] + b


def dfl_xseg_logits(x: np.ndarray, wts: dict, b: int = DIMS, dtype=np.float64) -> np.ndarray:
    x = np.asarray(x, dtype)
    W = {k: np.asarray(v, dtype) for k, v in wts.items() if not k.startswith("_")}

    def block(name, t, up=False):
        t = (_deconv if up else _conv3)(t, W[f"{name}/conv/weight:0"], W[f"{name}/conv/bias:0"])
        return _frn_tlu(t, W[f"{name}/frn/weight:0"], W[f"{name}/frn/bias:0"], W[f"{name}/frn/eps:0"],
                        W[f"{name}/tlu/tau:0"])

    skips = []
    for lvl, convs, f in [(0, 2, 4), (1, 2, 3), (2, 2, 2), (3, 3, 2), (4, 3, 2), (5, 3, 2)]:
        for j in range(1, convs + 1):
            x = block(f"conv{lvl}{j}", x)
        skips.append(x)
        x = _blurpool(x, f)
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # nn.flatten: channel-major
    flat = flat @ W["dense1/weight:0"] + W["dense1/bias:0"]
    flat = flat @ W["dense2/weight:0"] + W["dense2/bias:0"]
    x = flat.reshape(len(x), 8 * b, 4, 4).transpose(0, 2, 3, 1)  # nn.reshape_4D
    for lvl, convs in [(5, 3), (4, 3), (3, 3), (2, 2), (1, 2), (0, 2)]:
        x = block(f"up{lvl}", x, up=True)
        x = np.concatenate([x, skips[lvl]], axis=-1)
        for j in range(convs, 0, -1):
            x = block(f"uconv{lvl}{j}", x)
    return _conv3(x, W["out_conv/weight:0"], W["out_conv/bias:0"])


def _faces(n: int) -> np.ndarray:
    """Real faces at 256 px, BGR 0..1."""
    import cv2

    from tests.conftest import DATA
    photos = sorted((DATA / "faces").glob("*.jpg"))[:n] if (DATA / "faces").is_dir() else []
    out = []
    for p in photos:
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        s = min(h, w)
        out.append(cv2.resize(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], (RES, RES)))
    assert len(out) == n, "tests/data/faces holds the test photos"
    return np.stack(out).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict, object]:
    """A DFL XSeg folder imported through the CLI: (our model folder, DFL's arrays, the CLI result)."""
    return import_through_cli(tmp_path_factory.mktemp("dfl_xseg"), write_dfl_xseg)


def _load(folder: Path, training: bool):
    from core import keras_backend as kb
    kb.prepare("float32")
    from models.dfl_import import xseg_model
    from models.loader import saved_options
    from models.model_files import ModelFiles
    from models.xseg import XSeg
    files = ModelFiles(folder, "XSeg", "XSeg")
    state = files.read_state()
    model = xseg_model(files, saved_options(files, XSeg, state.meta), training=training)
    model.load(state)
    return model


@pytest.mark.slow
def test_imported_xseg_gives_dfls_logits_and_keeps_its_options_history_and_rmsprop_state(imported):
    folder, written, res = imported
    meta = state_meta(folder / "XSeg_XSeg_state.npz")
    assert meta["iteration"] == ITER
    o = meta["options"]
    assert (o["face_type"], o["resolution"], o["dims"], o["dfl_layout"]) == ("wf", RES, DIMS, True)
    with np.load(folder / "XSeg_XSeg_state.npz") as data:
        history = data["loss_history"]
    assert history.shape == (ITER, 2) and history[3, 0] == history[3, 1] == pytest.approx(0.47)
    assert "starts fresh" not in res.stdout + res.stderr

    model = _load(folder, training=True)
    opt, net = model.optimizers["xseg"], model.nets["xseg"]
    assert int(np.asarray(opt.iterations)) == ITER
    var = next(v for v in net.trainable_variables if v.path == "uconv22/kernel")
    acc = opt.slot_variables("acc")[opt._get_variable_index(var)]
    np.testing.assert_array_equal(np.asarray(acc), written["_opt"]["acc_XSeg/uconv22/conv/weight_0:0"])
    eps = next(v for v in net.trainable_variables if v.path == "conv11_frn/eps")  # DFL trains FRN's eps
    assert np.asarray(eps).tolist() == [pytest.approx(-1e-3)]

    faces = _faces(1)
    logits = np.asarray(model.nets["xseg"](faces), np.float64)
    expected = dfl_xseg_logits(faces, written)
    assert np.abs(expected).max() > 1.0 and expected.std() > 0.1  # a real signal, not a constant
    # Keras runs float32: 30 conv + FRN layers amplify rounding (median 1e-4, a few pixels 2.5e-3 off the
    # float64 pass), so the check is that it is as close to DFL's pass in float64 as the same pass run
    # in float32 is; a layer mapped wrongly differs by about the signal (std 0.9) everywhere
    diff = np.abs(logits - expected)
    diff32 = np.abs(dfl_xseg_logits(faces, written, dtype=np.float32) - expected)
    for q in (0.5, 0.99, 1.0):
        assert np.quantile(diff, q) <= 2 * np.quantile(diff32, q) + 1e-6, (q, np.quantile(diff, q), np.quantile(diff32, q))
    assert diff.max() < 1e-2
    masks = model.mask_batch(faces)  # DFL's XSegNet.extract: sigmoid, values under 0.1 set to 0
    sig = 1.0 / (1.0 + np.exp(-expected[..., 0]))
    ref = np.where(sig < 0.1, 0.0, sig)
    away = np.abs(sig - 0.1) > 1e-3  # a pixel right at the floor may fall either side of it
    assert away.mean() > 0.99 and np.abs(masks - ref)[away].max() < 1e-3


@pytest.mark.slow
def test_imported_xseg_trains_through_main_and_masks_through_load_xseg(imported, tmp_path):
    """The user's path: train --model XSeg continues the import, load_xseg (xseg apply, merge) masks with it."""
    import shutil

    from tests.facesets import make_faceset
    from tests.test_xseg_model import _with_labels
    folder = tmp_path / "m"
    shutil.copytree(imported[0], folder)
    make_faceset(["obama.jpg"], tmp_path / "src", per_photo=2, size=96)
    make_faceset(["biden.jpg"], tmp_path / "dst", per_photo=2, size=96)
    from faceset.faceset import Faceset
    fs = Faceset.open(tmp_path / "src" / "aligned")
    for face in fs:
        fs.write_meta(face, _with_labels(face.load()[1]))
    res = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                  str(tmp_path / "dst" / "aligned"), "--model-dir", str(folder), "--model", "XSeg",
                  "--force-model-name", "XSeg", "--silent-start", "--no-preview", "--target-iteration", str(ITER + 1))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "starts fresh" not in res.stdout + res.stderr
    assert "is new in this run" not in res.stdout + res.stderr  # DFL's optimizer state was loaded
    assert state_meta(folder / "XSeg_XSeg_state.npz")["iteration"] == ITER + 1
    from models.xseg import load_xseg
    masker = load_xseg(folder, precision="float32")
    faces = (_faces(2) * 255).astype(np.uint8)
    masks = masker.masks(faces)
    assert masks.shape == (2, RES, RES) and 0.0 <= masks.min() and masks.max() <= 1.0


@pytest.mark.parametrize("victim", ["XSeg_data.dat", "XSeg_256.npy", "XSeg_256_opt.npy"])
def test_a_hostile_pickle_in_an_xseg_folder_is_refused_by_name_without_running_code(tmp_path, victim):
    write_dfl_xseg(tmp_path / "dfl")
    marker = tmp_path / "pwned"
    target = tmp_path / "dfl" / victim
    payload = {"iter": 3, "options": {"face_type": "wf"}, "loss_history": [_RunsCode(marker)]} \
        if victim.endswith(".dat") else {"conv01/conv/weight:0": _RunsCode(marker)}
    target.write_bytes(pickle.dumps(payload, protocol=4))
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1, res.stdout[-2000:]
    assert len(res.error_lines) == 1 and victim in res.error_lines[0], res.stderr[-2000:]
    assert "system" in res.error_lines[0] and "Traceback" not in res.stderr
    assert not marker.exists()
    assert not list(tmp_path.glob("ours/*_state.npz"))


def test_a_folder_with_dfl_saehd_and_xseg_asks_which_and_an_amp_folder_without_weights_is_refused_in_one_line(tmp_path):
    from tests.test_dfl_import import write_dfl_model
    write_dfl_model(tmp_path / "dfl")
    write_dfl_xseg(tmp_path / "dfl", opt=False)
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "dfl"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and len(res.error_lines) == 1
    assert "--name" in res.error_lines[0] and "XSeg (XSeg)" in res.error_lines[0] and "mine (SAEHD)" in res.error_lines[0]

    (tmp_path / "amp").mkdir()
    (tmp_path / "amp" / "morph_AMP_data.dat").write_bytes(pickle.dumps({"iter": 1, "options": {}}))
    res = run_cli("importdfl", "--input-dir", str(tmp_path / "amp"), "--model-dir", str(tmp_path / "ours"))
    assert res.returncode == 1 and len(res.error_lines) == 1
    assert "morph_AMP_encoder.npy" in res.error_lines[0] and "missing" in res.error_lines[0]

"""Live's faster model runtimes (models.onnx_cache, `live --runtime`) and bench/live_speed.py's --model-only
mode, on a tiny SAEHD saved with fresh weights (the runtimes must agree whatever the weights are). One real
conversion per variant (tf2onnx takes ~10 s even for a tiny model): the cache tests reuse its bytes."""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.errors import UserError
from tests.test_train import TINY_OPTIONS as TINY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from core import keras_backend as kb
    kb.prepare("float32")
    from models.model_files import ModelFiles
    from models.saehd import SAEHD
    model = SAEHD(ModelFiles(tmp_path_factory.mktemp("tiny"), "tiny", "SAEHD"), dict(TINY), training=False)
    model.save()
    return model


@pytest.fixture(scope="module")
def fp32_graph(tiny) -> bytes:
    """The tiny model converted for onnxruntime (and cached beside it), once for the module."""
    from models.onnx_cache import cache_path, onnx_predictor
    onnx_predictor(tiny, "fp32")
    return cache_path(tiny, "fp32").read_bytes()


@pytest.fixture
def conversions(monkeypatch, fp32_graph):
    """Counts the conversions onnx_predictor makes (a cache hit makes none); each gives the module's graph."""
    from models import onnx_cache
    made = []
    monkeypatch.setattr(onnx_cache, "_convert", lambda model, variant, key: made.append(variant) or fp32_graph)
    return made


def faces(n: int = 3, size: int = 32) -> np.ndarray:
    """Crops of a real face photo (a face model's input)."""
    import cv2

    from tests.conftest import FACES
    img = cv2.imread(str(FACES / "obama.jpg"))
    h, w = img.shape[:2]
    return np.stack([cv2.resize(img[k * 20:h // 2 + k * 20, k * 15:w - k * 15], (size, size),
                                interpolation=cv2.INTER_AREA) for k in range(n)]).astype(np.float32) / 255.0


@pytest.mark.slow  # the module's one fp32 conversion: ~15 s with Keras' start
def test_onnx_runtime_gives_keras_faces_and_masks_from_the_cache(tiny, conversions):
    from models.dfm_predictor import read_dfm
    from models.onnx_cache import META_KEY, cache_path, onnx_predictor
    p = onnx_predictor(tiny, "fp32")
    x = faces()
    want, got = tiny.predict(x), p.predict(x)
    for a, b in ((want.face, got.face), (want.src_mask, got.src_mask), (want.dst_mask, got.dst_mask)):
        assert np.abs(a - b).max() < 1e-4
    assert p.resolution == 32 and p.face_type == tiny.face_type and p.iteration == tiny.iteration
    _, meta = read_dfm(cache_path(tiny, "fp32"))  # the cache passes the .dfm checks and carries its key
    assert tiny.files.state.name.removesuffix("_state.npz") in meta[META_KEY]
    assert conversions == []  # made by the fixture: this start read the cache


@pytest.mark.slow
def test_a_broken_stale_or_disagreeing_cache_is_converted_again(tiny, conversions):
    from models.onnx_cache import CacheError, cache_path, onnx_predictor
    path = cache_path(tiny, "fp32")
    path.write_bytes(b"\x08\x07garbage" * 100)  # not ONNX
    onnx_predictor(tiny, "fp32")
    st = tiny.files.state.stat()
    os.utime(tiny.files.state, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a newer save of the model
    onnx_predictor(tiny, "fp32")
    assert conversions == ["fp32", "fp32"]
    layer = tiny.nets["decoder_src"].weights[0]  # the cache's key fits the file, but its faces not these weights
    saved = np.asarray(layer.numpy()).copy()
    try:
        layer.assign(saved + np.random.default_rng(0).normal(0, 0.2, saved.shape).astype(saved.dtype))
        with pytest.raises(CacheError, match="outputs differ"):  # and a conversion that disagrees is not used either
            onnx_predictor(tiny, "fp32")
        assert conversions == ["fp32", "fp32", "fp32"]
    finally:
        layer.assign(saved)


@pytest.mark.slow  # a real int8 conversion: ~15 s
def test_int8_runtime_is_close_to_float32_and_uses_int8_convolutions(tiny):
    import onnx

    from models.onnx_cache import cache_path, onnx_predictor
    p = onnx_predictor(tiny, "int8")
    x = faces()
    diff = np.abs(p.predict(x).face - tiny.predict(x).face)
    assert diff.max() < 0.1 and diff.mean() < 0.02
    ops = {n.op_type for n in onnx.load(str(cache_path(tiny, "int8"))).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops


def test_int8_ranges_and_the_probe_come_from_the_model_s_own_faces(tiny, monkeypatch):
    """A trained model keeps real preview faces in its state: int8's activation ranges are measured on them
    (and their mirror images) and the runtimes are compared on them, not on random colour fields."""
    from models import onnx_cache
    from models.dfm_contract import IN_FACE
    real = (faces(4) * 255 + 0.5).astype(np.uint8)
    monkeypatch.setattr(tiny, "preview_samples", {"dst_face": real[:2], "src_face": real[2:]})
    want = real.astype(np.float32) / 255.0
    fed = np.concatenate([f[IN_FACE] for f in onnx_cache._calibration(tiny, morph=False)])
    assert fed.shape == (8, 32, 32, 3) and fed.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(fed[:4], want, atol=1e-6)
    np.testing.assert_allclose(fed[4:], want[:, :, ::-1], atol=1e-6)
    probe = onnx_cache._probe(tiny)
    assert len(probe) == onnx_cache.PROBE_FACES and all(any(np.allclose(p, w) for w in want) for p in probe)
    monkeypatch.setattr(tiny, "preview_samples", {})  # none stored (an untrained model): synthetic faces
    assert not any(np.allclose(f[IN_FACE][0], w) for f in onnx_cache._calibration(tiny, morph=False) for w in want)


@pytest.mark.slow  # an int8 conversion unless the int8 test above left its cache
def test_auto_takes_int8_on_a_cpu_only_when_it_matches_on_the_model_s_own_faces(tiny, monkeypatch):
    from mainscripts import live
    real = (faces(4) * 255 + 0.5).astype(np.uint8)
    monkeypatch.setattr(tiny, "preview_samples", {"dst_face": real[:2], "src_face": real[2:]})
    chosen = live.with_runtime(tiny, "auto")
    assert "int8" in chosen.name and chosen.rms_diff <= live.AUTO_INT8_MAX_RMS
    x = faces()
    assert np.abs(chosen.predict(x).face - tiny.predict(x).face).mean() < 0.01
    monkeypatch.setattr(live, "AUTO_INT8_MAX_RMS", chosen.rms_diff / 2)  # int8 not close enough: float32
    assert "fp32" in live.with_runtime(tiny, "auto").name
    monkeypatch.setattr(live, "AUTO_INT8_MAX_RMS", 1.0)
    monkeypatch.setattr(tiny, "preview_samples", {})  # no real faces to check int8 on: float32
    assert "fp32" in live.with_runtime(tiny, "auto").name


def test_runtime_choice_falls_back_only_when_auto(tmp_path):
    from mainscripts.live import LIVE_OPTIONS, with_runtime
    from models.model_files import ModelFiles

    class NoExport:
        files = ModelFiles(tmp_path, "m", "Original")
    plain = NoExport()
    assert with_runtime(plain, "keras") is plain
    assert with_runtime(plain, "auto") is plain
    with pytest.raises(UserError, match="--runtime onnx: NoExport models have no ONNX export"):
        with_runtime(plain, "onnx")
    assert {o.key: o.default for o in LIVE_OPTIONS}["runtime"] == "auto"


def test_bench_model_only_times_predict_align_and_compose(tiny, monkeypatch, tmp_path):
    from bench import live_speed
    monkeypatch.setitem(live_speed.MODEL_ONLY, "Tiny", ("SAEHD", dict(TINY)))
    rows = live_speed.model_only(["Tiny"], "1280x720", frames=3, warmup=1, runtime="keras")
    (row,) = rows
    assert row["model"] == "Tiny" and row["resolution"] == 32 and row["size"] == "1280x720"
    assert 0 < row["predict_ms_median"] <= row["predict_ms_p90"] and row["compose_ms"] > 0 and row["align_ms"] > 0
    assert row["predict_fps"] == pytest.approx(1000 / row["predict_ms_median"], rel=0.01)

"""The merger's XSeg mask modes in `live`: a tiny untrained XSeg model (built in-process and saved, never
trained: its mask is still a mask) loaded from --xseg-model-dir, the stand-in face model, a real face clip.
An XSeg mode must run on every frame and give other pixels than a learned mode, only around the face."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.frame_source import open_source
from tests.live_standin import standin

XSEG_TINY = dict(face_type="wf", resolution=64, dims=4, batch_size=2, generic=False, autobackup_hour=0)


@pytest.fixture(scope="module")
def xseg_dir(tmp_path_factory):
    """A folder holding one saved, untrained 64 px XSeg model (dims 4: a few thousand weights)."""
    from core import keras_backend as kb
    kb.prepare("float32")
    from models.model_files import ModelFiles
    from models.xseg import XSeg
    folder = tmp_path_factory.mktemp("xseg")
    XSeg(ModelFiles(folder, "tiny", "XSeg"), dict(XSEG_TINY), training=False).save()
    return folder


@pytest.fixture(scope="module")
def masker(xseg_dir):
    from mainscripts.merger_cli import load_xseg_model
    return load_xseg_model(xseg_dir, "test")


def _frames(face_video, mask_mode: str, masker, n: int = 4) -> list:
    """The first `n` merged frames of the clip with `mask_mode`, through the live pipeline."""
    from facelib.detectors import get_detector
    from merger.config import MergeConfig
    from merger.live_pipeline import FaceTracker, LivePipeline, LiveSettings, SharedMasker
    from merger.xseg_masks import LazyMasker

    source = open_source(str(face_video.path))
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,)), 5)
    shared = SharedMasker(LazyMasker(lambda: masker))
    pipe = LivePipeline(source, tracker, standin(), LiveSettings(MergeConfig(mask_mode=mask_mode, color_transfer="none")),
                        max_frames=n, xseg=shared).start()
    try:
        return list(pipe.frames())
    finally:
        pipe.stop()
        source.close()


def test_each_xseg_mode_runs_live_and_changes_the_face_area_only(face_video, masker):
    learned = _frames(face_video, "learned-prd", masker)
    assert len(learned) == 4
    for mode in ("XSeg-prd", "XSeg-dst"):  # the mixed modes: the next test, through live()
        items = _frames(face_video, mode, masker)
        assert [it.index for it in items] == list(range(4))
        for a, b in zip(learned, items):
            assert b.ms.get("xseg", 0) > 0  # the XSeg model ran on this frame
            diff = np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).max(axis=2)
            changed = diff > 8
            assert changed.sum() > 200, f"{mode}, frame {b.index}: the XSeg mask changed nothing"
            ys, xs = np.nonzero(changed)
            lm = b.landmarks[0]
            pad = 0.6 * (lm[:, 0].max() - lm[:, 0].min())
            # only around the face (the whole-face crop reaches past the landmarks, hence the margin)
            assert xs.min() >= lm[:, 0].min() - pad and xs.max() <= lm[:, 0].max() + pad, mode
            assert ys.min() >= lm[:, 1].min() - pad and ys.max() <= lm[:, 1].max() + pad, mode


def test_live_takes_xseg_model_dir_and_reports_the_xseg_cost(face_video, xseg_dir, tmp_path, no_terminal):
    from mainscripts.live import live
    from merger.config import MergeConfig, save_config
    save_config(tmp_path / "xseg.json", MergeConfig(mask_mode="XSeg-prd*XSeg-dst"))
    # the XSeg model from --xseg-model-dir, loaded by live's own loader
    summary = live("stand-in", None, {"input": str(face_video.path), "window": False, "xseg_model_dir": str(xseg_dir)},
                   config_path=str(tmp_path / "xseg.json"), predictor=standin(), max_frames=5)
    assert summary.frames_out == 5 and summary.figures["xseg_ms"] > 0


def test_an_xseg_mode_without_an_xseg_model_is_refused_before_the_input_opens(tmp_path):
    from mainscripts.live import live
    from merger.config import MergeConfig, save_config
    save_config(tmp_path / "xseg.json", MergeConfig(mask_mode="XSeg-dst"))
    with pytest.raises(UserError, match="no trained XSeg model in this folder") as e:
        live(str(tmp_path), "SAEHD", {"input": "7", "window": False}, config_path=str(tmp_path / "xseg.json"))
    assert "--xseg-model-dir" in str(e.value)  # says how to point at one


def test_the_window_steps_into_an_xseg_mode_only_when_the_model_loads(tmp_path):
    from merger.config import MergeConfig
    from merger.live_pipeline import LiveSettings, SharedMasker
    from merger.live_window import LiveWindow
    from merger.xseg_masks import LazyMasker, needs_xseg

    def failing():
        raise UserError("no trained XSeg model in this folder", tmp_path)
    for load, expect_xseg in ((failing, False), (lambda: object(), True)):
        settings = LiveSettings(MergeConfig())
        window = LiveWindow(settings, tmp_path / "cfg.json", mask_ok=SharedMasker(LazyMasker(load)).usable)
        seen = set()
        for _ in range(12):
            window.on_key("x")
            seen.add(settings.get().mask_mode)
        assert any(needs_xseg(m) for m in seen) == expect_xseg, seen
        assert len(seen) > 2

"""`live` headless, for real: a video file of a real face fed as a stream through `main.py live --no-window`
(the stand-in model of tests/live_standin.py), and the inputs that do not open."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from core.errors import UserError
from core.frame_source import open_source
from core.synth_video import make_video_from_photo
from core.video import ffmpeg_exe, probe
from facelib.align import transform_points
from facelib.masks import hull_mask
from tests.conftest import REPO, run_cli
from tests.live_standin import PHOTO, photo_landmarks


def read_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def run_live(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tests.live_standin", *args], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def face_regions(video, shape) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inside, outside) pixel masks of each frame: inside = the face's landmark hull shrunk a little
    (the stand-in's mask is that hull), outside = everything farther than a margin from it. Known exactly:
    each frame is the photo under a known matrix."""
    lm = photo_landmarks()
    out = []
    for m in video.matrices:
        hull = hull_mask(shape, transform_points(lm, m)).astype(np.uint8)
        inside = cv2.erode(hull, np.ones((9, 9), np.uint8)) > 0
        outside = cv2.dilate(hull, np.ones((41, 41), np.uint8)) == 0
        out.append((inside, outside))
    return out


def test_a_video_file_fed_as_a_stream_comes_out_swapped_whole_and_in_order(face_video, tmp_path):
    out = tmp_path / "live.mp4"
    r = run_live("--input", str(face_video.path), "--output", str(out), "--no-window", "--detect-every", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    src, dst = read_frames(face_video.path), read_frames(out)
    assert len(dst) == len(src) == face_video.frame_count  # as many frames out as in
    regions = face_regions(face_video, src[0].shape[:2])
    for i, (a, b) in enumerate(zip(src, dst)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
        inside, outside = regions[i]
        # outside: only the second encode's noise (about 1.8 here; sharp edges of the black border ring most)
        assert diff[inside].mean() > 12, f"frame {i}: the face was not swapped"
        assert diff[outside].mean() < 2.5, f"frame {i}: pixels changed away from the face"
        # in order: frame i matches input frame i outside the face better than its neighbours do
        for j in (i - 1, i + 1):
            if 0 <= j < len(src):
                other = np.abs(src[j].astype(np.int16) - b.astype(np.int16)).mean(axis=2)[outside].mean()
                assert diff[outside].mean() < other, f"frame {i} looks more like input frame {j}"
    info = probe(out)
    assert info.has_audio and info.fps == face_video.fps
    tags = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "synthetic media" in tags  # the marker of video-from-sequence
    assert "Live: 50 frames in, 50 out (0 dropped)" in r.stderr and " fps, latency " in r.stderr
    assert "13 full detections" in r.stderr  # every 4th frame: 0, 4, ..., 48


def test_ctrl_c_stops_and_finishes_the_video(tmp_path):
    (tmp_path / "clip").mkdir()
    clip = make_video_from_photo(PHOTO, tmp_path / "clip" / "long.mp4", seconds=4.0, fps=10, frame_size=(320, 240))
    out = tmp_path / "out" / "stopped.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tests.live_standin", "--input", str(clip.path), "--output",
                             str(out), "--no-window", "--realtime"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:  # the settings are printed once the stages run
            line = proc.stderr.readline()
            lines.append(line)
            if "Live: " in line or not line:  # the first fps line: frames are being written
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = "".join(lines) + err
    assert proc.returncode == 0, err[-3000:]
    assert "Stopped by Ctrl+C" in err
    frames = read_frames(out)
    assert 0 < len(frames) < clip.frame_count, err[-2000:]
    assert probe(out).has_audio
    assert [p.name for p in out.parent.iterdir()] == ["stopped.mp4"]  # no partial files left


@pytest.mark.parametrize("source,message", [
    ("7", "camera 7 does not open"),
    ("http://127.0.0.1:9/stream.mp4", "stream http://127.0.0.1:9/stream.mp4 does not open"),
])
def test_an_input_that_does_not_open_is_one_clear_line(tmp_path, source, message):
    t0 = time.monotonic()
    r = run_cli("live", "--model-dir", str(tmp_path), "--model", "SAEHD", "--input", source, "--no-window", timeout=60)
    assert r.returncode == 1
    assert len(r.error_lines) == 1 and message in r.error_lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 30


def test_open_source_names_what_did_not_open(tmp_path):
    with pytest.raises(UserError, match=r"stream rtsp://user:\*\*\*@127\.0\.0\.1:9/cam does not open") as e:
        open_source("rtsp://user:secret@127.0.0.1:9/cam")
    assert "secret" not in str(e.value)  # a camera's password is not printed
    with pytest.raises(UserError, match="input not found"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "frames").mkdir()
    with pytest.raises(UserError, match="no images in this folder"):
        open_source(str(tmp_path / "frames"))
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(UserError, match="not a readable video"):
        open_source(str(tmp_path / "notes.mp4"))


def test_virtual_camera_without_pyvirtualcam_says_how_to_get_it(tmp_path, monkeypatch):
    blocker = tmp_path / "no_pyvirtualcam"  # whether or not it is installed here, the run cannot import it
    blocker.mkdir()
    (blocker / "pyvirtualcam.py").write_text("raise ImportError('pyvirtualcam is blocked by the test')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")])))
    r = run_cli("live", "--model-dir", str(tmp_path), "--model", "SAEHD", "--input", "0", "--no-window",
                "--virtual-camera", timeout=60)
    assert r.returncode == 1 and "pip install pyvirtualcam" in r.error_lines[-1]


def test_the_window_needs_a_display(tmp_path, face_video):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "live", "--model-dir", str(tmp_path), "--model", "SAEHD",
                        "--input", str(face_video.path)], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "--no-window" in r.stderr


def test_the_numbered_live_scripts_run_live_on_camera_0_alike():
    from tests.test_scripts import SCRIPTS, bat_actions, sh_actions
    sh, bat = SCRIPTS / "9_live.sh", SCRIPTS / "9) live.bat"
    actions = sh_actions(sh)
    assert actions == bat_actions(bat)
    run = [a for a in actions if a[0] == "run"][0]
    assert run[1:4] == ("{VENV_PY}", "{REPO_ROOT}/main.py", "live") and run[-1] == "{ARGS}"
    assert "--input" in run and run[run.index("--input") + 1] == "0"
    raw = bat.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n")


def test_a_failing_model_stops_every_stage_and_says_which(face_video, monkeypatch):
    import threading

    from core.frame_source import open_source as open_src
    from facelib.detectors import get_detector
    from merger.config import MergeConfig
    from merger.live_pipeline import FaceTracker, LivePipeline, LiveSettings, PipelineError
    from tests.live_standin import standin

    model = standin()

    def broken(faces, **extra):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(model, "predict", broken)
    source = open_src(str(face_video.path))
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,)), 5)
    pipe = LivePipeline(source, tracker, model, LiveSettings(MergeConfig())).start()
    with pytest.raises(PipelineError, match="the predict stage failed: RuntimeError: out of memory"):
        list(pipe.frames())
    pipe.stop()
    source.close()
    assert pipe.alive == [] and not [t for t in threading.enumerate() if t.name.startswith("live-")]


def test_an_xseg_mask_mode_without_an_xseg_model_is_refused_before_anything_opens(tmp_path):
    from mainscripts.live import live
    from merger.config import MergeConfig, save_config
    save_config(tmp_path / "xseg.json", MergeConfig(mask_mode="XSeg-prd"))
    with pytest.raises(UserError, match="no trained XSeg model in this folder .needed by mask mode XSeg-prd"):
        live(str(tmp_path), "SAEHD", {"input": "7", "window": False}, config_path=str(tmp_path / "xseg.json"))


@pytest.mark.slow  # onnxruntime's start-up and a whole clip: ~15 s
def test_a_dfm_model_runs_live_with_its_morph_factor(face_video, tmp_path):
    """`--model-dir X.dfm`: the .dfm predictor (onnxruntime), an AMP-style one whose face is scaled by the
    morph value: the config's morph_factor reaches it (0.0 here: a black face wherever the mask is)."""
    from merger.config import MergeConfig, save_config
    from tests.dfm_graphs import standin_dfm, write_dfm
    from tests.live_standin import standin
    mask = standin().mask.astype(np.float32)  # the template hull in the 64 px whole-face crop
    dfm = write_dfm(standin_dfm(mask, morph=True, tint=(1.0, 1.0, 1.0), metadata={"facekit.face_type": "wf"}),
                    tmp_path / "amp.dfm")
    save_config(tmp_path / "cfg.json", MergeConfig(color_transfer="none", morph_factor=0.0))
    out = tmp_path / "dfm.mp4"
    r = run_cli("live", "--model-dir", str(dfm), "--input", str(face_video.path), "--output", str(out), "--no-window",
                "--config", str(tmp_path / "cfg.json"), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    src, dst = read_frames(face_video.path), read_frames(out)
    assert len(dst) == len(src)
    inside = face_regions(face_video, src[0].shape[:2])[10][0]
    assert src[10][inside].mean() > 60 and dst[10][inside].mean() < 15  # morph 0: the face went black


def test_predict_every_2_runs_the_model_on_half_the_frames_and_still_swaps_them_all(face_video):
    from facelib.detectors import get_detector
    from merger.config import MergeConfig
    from merger.live_pipeline import FaceTracker, LivePipeline, LiveSettings
    from tests.live_standin import standin

    model = standin()
    source = open_source(str(face_video.path))
    tracker = FaceTracker(get_detector("centerface", max_faces=1, rotations=(0,)), 5)
    pipe = LivePipeline(source, tracker, model, LiveSettings(MergeConfig()), predict_every=2).start()
    items = list(pipe.frames())
    pipe.stop()
    source.close()
    assert [it.index for it in items] == list(range(face_video.frame_count))
    assert len(model.calls) == pipe.predictions == 25
    regions = face_regions(face_video, items[0].frame.shape[:2])
    for it in items[:6]:  # predicted (even) and reused (odd) frames alike: the face is swapped where it is now
        inside, outside = regions[it.index]
        diff = np.abs(it.image.astype(np.int16) - it.frame.astype(np.int16)).mean(axis=2)
        assert diff[inside].mean() > 12 and diff[outside].max() == 0


def test_raw_predict_mode_writes_the_face_into_a_video_of_the_input_size(face_video, tmp_path, no_terminal):
    """raw-predict's output is the R x R face: the video keeps the input's size (the face letterboxed)."""
    from mainscripts.live import live
    from merger.config import MergeConfig, save_config
    from tests.live_standin import standin
    save_config(tmp_path / "raw.json", MergeConfig(mode="raw-predict"))
    out = tmp_path / "raw.mp4"
    summary = live("stand-in", None, {"input": str(face_video.path), "output": str(out), "window": False},
                   config_path=str(tmp_path / "raw.json"), predictor=standin(), max_frames=10)
    assert summary.frames_out == 10 and summary.output == out
    frames = read_frames(out)
    assert len(frames) == 10 and frames[0].shape == (240, 320, 3)
    assert frames[0][:, :35].max() < 30 and frames[0][100:140, 140:180].mean() > 30  # black bars, the face between

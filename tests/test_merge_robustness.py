"""`merge` hardening (issue 11): one writer per output folder, a choice between several models with one
session per model, no output folders before the inputs check out, no TensorFlow log lines, no debris
of a killed merge, and a write failure (full disk) that ends the run naming the file."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import interact, log
from core.errors import UserError
from core.fileio import atomic_path
from core.folder_lock import LOCK_NAME
from core.image_io import read_image
from mainscripts import merger_cli
from merger.config import MergeConfig
from tests.conftest import REPO, run_cli
from tests.facesets import extract_faces, make_frames
from tests.merge_standin import fake_models, make_dst, merge_args, standin_for

FRAMES = [f"{i:05d}.png" for i in range(1, 4)]


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    """data_dst: 3 real frames with a face and their aligned faces."""
    return make_dst(tmp_path_factory.mktemp("data_dst"), count=3)


pytestmark = pytest.mark.usefixtures("no_terminal")


def _cli_args(dst: Path, out: Path, mask: Path, model_dir: Path) -> list[str]:
    return merge_args(dst, out, mask, model_dir, "--workers", "1")


# A `main.py merge` whose model is the stand-in; with MERGE_GATE set, it predicts only once that file exists.
DRIVER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
import models.loader
from tests.merge_standin import standin_for

def load_standin(model_dir, class_name, name=None, precision="auto"):
    model = standin_for(Path({dst!r}))
    predict, gate = model.predict, os.environ.get("MERGE_GATE")
    def gated(faces):
        deadline = time.monotonic() + 60
        while gate and not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return predict(faces)
    model.predict = gated
    return model

models.loader.load_predictor = load_standin
import main
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_second_merge_into_a_folder_in_use_stops_naming_the_holder(dst, tmp_path):
    model_dir, out, mask = tmp_path / "model", tmp_path / "merged", tmp_path / "merged_mask"
    fake_models(model_dir, "m")
    driver = [sys.executable, "-c", DRIVER.format(repo=str(REPO), dst=str(dst))]
    gate = tmp_path / "go"
    env = dict(os.environ, PYTHONUNBUFFERED="1", MERGE_GATE=str(gate))
    log_a = tmp_path / "a.log"
    with open(log_a, "w") as f:
        first = subprocess.Popen(driver + _cli_args(dst, out, mask, model_dir), env=env, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while first.poll() is None and time.monotonic() < deadline:
            if (out / LOCK_NAME).exists() and str(first.pid) in (out / LOCK_NAME).read_text():
                break
            time.sleep(0.05)
        # A second merge with other settings, into the same folders, or into another folder but the
        # same mask folder: both stop at once, naming the first one, and write nothing.
        other = tmp_path / "original.json"
        other.write_text(json.dumps({"mode": "original"}))
        env_b = dict(os.environ, PYTHONUNBUFFERED="1")
        for b_out in (out, tmp_path / "merged_b"):
            b = subprocess.run(driver + _cli_args(dst, b_out, mask, model_dir) + ["--config", str(other)], env=env_b,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=REPO)
            errors = [line for line in b.stderr.splitlines() if "Error" in line]
            assert b.returncode == 1, b.stderr[-2000:]
            assert len(errors) == 1 and f"process {first.pid}" in errors[0] and "in use" in errors[0], b.stderr[-2000:]
        assert not list((tmp_path / "merged_b").glob("*.png"))
    finally:
        gate.touch()
        rc = first.wait(timeout=120)
    assert rc == 0, log_a.read_text()[-2000:]
    # Every frame is the first run's (overlay: the face replaced), none the second's (original).
    for name in FRAMES:
        assert np.abs(read_image(out / name).astype(int) - read_image(dst / name).astype(int)).mean() > 0.5
    assert not (out / LOCK_NAME).exists() and not (mask / LOCK_NAME).exists()  # released at the end


def _tint_of(name: str) -> np.ndarray:
    return np.array([0.75, 1.0, 1.35] if name == "alice" else [1.35, 1.0, 0.75], np.float32)


def test_each_model_of_a_folder_is_merged_by_name_with_its_own_session(dst, tmp_path, monkeypatch):
    import merger.window
    import models.loader
    model_dir = tmp_path / "model"
    fake_models(model_dir, "alice", "bob")
    (model_dir / "SAEHD_merger_session.json").write_text("{}")  # an older version's per-class session: never used
    loaded, seen = [], []

    def load_standin(folder, class_name, name=None, precision="auto"):
        loaded.append(name)
        return standin_for(dst, tint=_tint_of(name), iteration=5)

    def run_window(infos, predictor, session, out_dir, mask_dir, xseg=None):  # the window, without a display
        seen.append((session.path.name, session.configs[0]))
        if session.configs[0] is None:
            session.set_config(0, MergeConfig(erode=10 if loaded[-1] == "alice" else 20))
        frames = merger.window.FrameMerger(infos, predictor, out_dir, mask_dir)
        for i in range(len(infos)):
            frames.merge(i, session.config_for(i))
            session.mark_done(i)
        session.save()
        return session

    monkeypatch.setattr(models.loader, "load_predictor", load_standin)
    monkeypatch.setattr(merger.window, "run_window", run_window)
    monkeypatch.setattr("core.display.display_problem", lambda: None)  # the window itself is replaced above
    for name in ("alice", "bob", "alice"):
        merger_cli.merge(str(dst), str(tmp_path / name), str(tmp_path / f"{name}_mask"), str(dst / "aligned"),
                         str(model_dir), "SAEHD", interactive=True, model_name=name)
    assert loaded == ["alice", "bob", "alice"]
    # One session per model, named after it; the second alice run found alice's settings, not bob's.
    assert [s[0] for s in seen] == ["alice_SAEHD_merger_session.json", "bob_SAEHD_merger_session.json",
                                    "alice_SAEHD_merger_session.json"]
    assert seen[0][1] is None and seen[1][1] is None and seen[2][1].erode == 10
    for name, erode in (("alice", 10), ("bob", 20)):
        saved = json.loads((model_dir / f"{name}_SAEHD_merger_session.json").read_text())
        assert saved["frames"][0]["config"]["erode"] == erode
    assert (model_dir / "SAEHD_merger_session.json").read_text() == "{}"
    for name in FRAMES:  # each model's own faces
        assert np.abs(read_image(tmp_path / "alice" / name).astype(int) - read_image(tmp_path / "bob" / name)).max() > 50


def test_the_model_is_chosen_by_name_else_by_menu_else_the_newest_said(tmp_path, monkeypatch):
    from models.loader import choose_saved_model
    fake_models(tmp_path, "alice", "bob", "carol")  # carol is the newest
    assert choose_saved_model(tmp_path, "SAEHD", "alice") == "alice"
    with pytest.raises(UserError, match=r"no trained SAEHD model named 'dave'.*carol, bob, alice"):
        choose_saved_model(tmp_path, "SAEHD", "dave")
    said = []
    monkeypatch.setattr(log, "info", said.append)
    assert choose_saved_model(tmp_path, "SAEHD", None) == "carol"
    assert any("using 'carol', the most recently saved" in s and "--force-model-name" in s for s in said)
    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "2")
    assert choose_saved_model(tmp_path, "SAEHD", None) == "alice"  # [0] carol, [1] bob, [2] alice


def test_no_output_folder_is_created_before_the_inputs_check_out(dst, tmp_path, monkeypatch):
    out, mask = tmp_path / "merged", tmp_path / "merged_mask"
    (tmp_path / "empty_model").mkdir()
    fake_models(tmp_path / "model", "m")
    bad_config = tmp_path / "merge.json"
    bad_config.write_text('{"erod": 3}')

    def attempt(expected: str, frames=dst, aligned=dst / "aligned", model=tmp_path / "model", **kwargs):
        with pytest.raises(UserError) as e:
            merger_cli.merge(str(frames), str(out), str(mask), str(aligned), str(model), "SAEHD", workers=0, **kwargs)
        assert expected in str(e.value)
        assert not out.exists() and not mask.exists(), str(e.value)

    attempt("model folder not found", model=tmp_path / "nowhere")
    attempt("nowhere", model=tmp_path / "nowhere")
    attempt("no trained SAEHD model", model=tmp_path / "empty_model")
    attempt("no trained SAEHD model named 'zed'", model_name="zed")
    attempt("input frames folder not found", frames=tmp_path / "no_frames")
    attempt("aligned faces folder not found", aligned=tmp_path / "no_aligned")
    attempt("unknown setting(s) erod", config_path=str(bad_config), predictor=standin_for(dst))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    attempt("needs a display", interactive=True, predictor=standin_for(dst))


def _dead_writer_partial(target: Path) -> Path:
    """What a merge killed in the middle of writing `target` leaves: atomic_path's temp file of a dead process."""
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from core.fileio import atomic_path\n"
            "with atomic_path(sys.argv[2]) as tmp:\n    tmp.write_bytes(b'half a png'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, str(REPO), str(target)], check=False)
    (left,) = target.parent.glob(f"{target.name}.partial-*")
    return left


def test_a_new_merge_removes_the_partial_frames_of_a_killed_one_and_only_those(dst, tmp_path):
    out, mask = tmp_path / "merged", tmp_path / "merged_mask"
    out.mkdir()
    mask.mkdir()
    stale = [_dead_writer_partial(out / "00001.png"), _dead_writer_partial(mask / "00003.png"),
             mask / "00002.partial-x1y2z3ab.png"]  # an older version's name for a partial 00002.png
    stale[2].write_bytes(b"x")
    kept = [_dead_writer_partial(out / "notes.txt"),  # a partial of something that is not a frame of this merge
            out / f"00002.png.partial-{os.getppid()}-abc123"]  # a partial of a process that is still running
    kept[1].write_bytes(b"x")
    merger_cli.merge(str(dst), str(out), str(mask), str(dst / "aligned"), str(tmp_path / "model"), "SAEHD",
                     workers=0, predictor=standin_for(dst))
    assert not [p.name for p in stale if p.exists()]
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in out.glob("*.png")) == FRAMES and sorted(p.name for p in mask.glob("*.png")) == FRAMES


def test_a_full_disk_ends_the_merge_at_the_first_frame_naming_it(dst, tmp_path, monkeypatch):
    import merger.pipeline
    tried = []

    def full_disk(path, image, *args, **kwargs):
        tried.append(Path(path).name)
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(merger.pipeline, "write_image", full_disk)
    out = tmp_path / "merged"
    with pytest.raises(UserError) as e:
        merger_cli.merge(str(dst), str(out), str(tmp_path / "mm"), str(dst / "aligned"), str(tmp_path / "model"),
                         "SAEHD", workers=0, predictor=standin_for(dst))
    assert e.value.path == out / "00001.png" and "disk is full" in e.value.problem
    assert tried == ["00001.png"]  # not one error per remaining frame
    assert not list(out.iterdir())  # no partial left


def test_a_write_failure_in_a_worker_process_ends_the_run_naming_the_frame(dst, tmp_path):
    from merger.frames import collect_frames
    from merger.pipeline import run_merge
    out, mask = tmp_path / "merged", tmp_path / "mm"
    (out / "00002.png").mkdir(parents=True)  # a folder where the frame goes: its write fails for real
    with pytest.raises(UserError) as e:
        run_merge(collect_frames(dst, dst / "aligned"), MergeConfig(), standin_for(dst), out, mask, workers=1,
                  progress=False)
    assert e.value.path == out / "00002.png" and "could not write" in e.value.problem
    assert (out / "00001.png").is_file()


NOISE = re.compile(r"oneDNN|cuInit|cudart|absl::|TF-TRT|^[IWEF]\d{4} \d\d:\d\d|I tensorflow", re.MULTILINE)


@pytest.mark.slow
def test_cli_merges_a_model_chosen_by_name_without_tensorflow_log_lines(dst, tmp_path):
    """A real tiny model trained by `train`, and a copy of it under another name: `merge
    --force-model-name` picks one, and stderr holds the merger's lines only."""
    src = make_frames("obama2.jpg", tmp_path / "src", count=4)
    extract_faces(src, tmp_path / "src" / "aligned", size=64)
    model_dir = tmp_path / "model"
    r = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                str(dst / "aligned"), "--model-dir", str(model_dir), "--model", "SAEHD", "--force-model-name", "alice",
                "--silent-start", "--no-preview", "--resolution", "32", "--archi", "df-ud", "--ae-dims", "32",
                "--e-dims", "16", "--d-dims", "16", "--d-mask-dims", "8", "--batch-size", "4", "--face-type", "f",
                "--target-iteration", "1", "--cpu-only")
    assert r.returncode == 0, r.stderr[-2000:]
    for suffix in ("_state.npz", "_options.json"):  # bob: the same model under another name, saved earlier
        shutil.copy(model_dir / f"alice_SAEHD{suffix}", model_dir / f"bob_SAEHD{suffix}")
    os.utime(model_dir / "bob_SAEHD_state.npz", (1_000_000, 1_000_000))
    out = tmp_path / "merged"
    r = run_cli(*_cli_args(dst, out, tmp_path / "merged_mask", model_dir), "--force-model-name", "bob", "--cpu-only",
                fresh=True)  # a new interpreter: its start-up banners are what is filtered
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Model 'bob' (SAEHD) at iteration 1" in r.stderr
    assert not NOISE.search(r.stderr), NOISE.search(r.stderr).group(0)
    assert sorted(p.name for p in out.glob("*.png")) == FRAMES

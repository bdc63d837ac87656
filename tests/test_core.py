"""core/: atomic files, prompts, the worker pool, devices, and the single error handler in main.py."""
from __future__ import annotations

import io
import os

import pytest

from core import interact
from core.devices import DeviceChoice, parse_gpu_idxs
from core.errors import UserError
from core.fileio import atomic_path, atomic_write_bytes, list_image_sequence, list_images
from core.workers import run_pool
from tests.conftest import run_cli
from tests.pool_helpers import make_square_worker

# --- atomic files ------------------------------------------------------------------------------

def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "model.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["model.json"]


def test_atomic_path_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "weights.npz"
    target.write_bytes(b"good weights")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith("weights.npz.partial-")
            assert tmp.suffix not in (".npz", ".jpg", ".png")  # never named like the file or a face
            tmp.write_bytes(b"half a wri")
            raise RuntimeError("killed mid-save")
    assert target.read_bytes() == b"good weights"
    assert os.listdir(tmp_path) == ["weights.npz"]


def test_list_images_natural_order_ignores_partials(tmp_path):
    for name in ["100000.png", "99999.png", "00001.png", "x.partial-abc.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["00001.png", "99999.png", "100000.png"]
    (tmp_path / "00002.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="mixed image extensions"):
        list_image_sequence(tmp_path)


# --- prompts -----------------------------------------------------------------------------------

def test_prompt_grammar_matches_dfl():
    assert interact.format_prompt("Enter FPS", 0, None, True) == "[0] Enter FPS ( ?:help ) : "
    assert interact.format_prompt("Output image format", "png", ["png", "jpg"], True) == \
        "[png] Output image format ( png/jpg ?:help ) : "
    assert interact.format_prompt("Write debug images", False, ["y", "n"]) == "[n] Write debug images ( y/n ) : "


def test_prompt_uses_default_without_terminal(monkeypatch, caplog):
    monkeypatch.setattr("sys.stdin", io.StringIO("jpg\n"))  # not a tty: must not be read
    assert interact.ask_str("Output image format", "png", ["png", "jpg"]) == "png"
    assert interact.ask_int("Denoise factor", 7, (1, 20)) == 7


def test_prompt_interactive_help_retry_and_answer(monkeypatch, capsys):
    answers = iter(["?", "25", "12"])
    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert interact.ask_int("Denoise factor", 7, (1, 20), help_text="Strength of the denoiser.") == 12
    out = capsys.readouterr().out
    assert "Strength of the denoiser." in out and "from 1 to 20" in out
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    assert interact.ask_bool("Use lossless codec", True) is True


def test_pick_prefers_flag_over_prompt():
    assert interact.pick(5, lambda: pytest.fail("must not ask")) == 5
    assert interact.pick(None, lambda: 7) == 7


# --- worker pool -------------------------------------------------------------------------------

def test_pool_in_order_with_failures_reported_by_name():
    items = list(range(30))
    results = list(run_pool(make_square_worker, items, workers=2, name_of=lambda x: f"frame{x:03d}.png",
                            worker_envs=[{"POOL_TEST_TAG": "a"}, {"POOL_TEST_TAG": "b"}], progress=False))
    assert [r.index for r in results] == items
    failed = [r for r in results if not r.ok]
    assert [(r.name, r.error) for r in failed if r.index == 13] == [("frame013.png", "ValueError: unlucky number")]
    assert [r.name for r in failed] == ["frame013.png", "frame021.png"]  # 21 kills its process
    assert "died" in failed[1].error
    good = [r for r in results if r.ok]
    assert all(r.value[0] == r.index ** 2 for r in good)
    # Each process was initialised once and each got its own environment.
    pids = {r.value[1] for r in good}
    starts = {(r.value[1], r.value[2]) for r in good}
    assert pids != {os.getpid()}
    assert len(starts) == len(pids)  # one init per process (a crash adds fresh processes)
    assert {r.value[3] for r in good} == {"a", "b"}


def test_pool_inline_mode_runs_in_this_process():
    results = list(run_pool(make_square_worker, [1, 2, 13, 3], workers=0, progress=False))
    assert [r.ok for r in results] == [True, True, False, True]
    assert {r.value[1] for r in results if r.ok} == {os.getpid()}


# --- devices -----------------------------------------------------------------------------------

def test_device_choice():
    assert parse_gpu_idxs("0, 2") == (0, 2)
    assert parse_gpu_idxs(None) == ()
    with pytest.raises(UserError, match="force-gpu-idxs"):
        parse_gpu_idxs("first")
    cpu = DeviceChoice.from_flags(cpu_only=True, force_gpu_idxs="1")
    assert cpu.gpus() == [] and cpu.env()["CUDA_VISIBLE_DEVICES"] == "-1"
    count, envs = cpu.worker_envs(cpu_workers=3)
    assert count == 3 and envs[0]["CUDA_VISIBLE_DEVICES"] == "-1"


# --- main.py: help and the single error handler ------------------------------------------------

def test_help_lists_commands_and_options():
    top = run_cli("--help")
    assert top.returncode == 0 and "videoed" in top.stdout and "demo" in top.stdout
    for sub, flag in [("extract-video", "--output-ext"), ("cut-video", "--audio-track-id"),
                      ("denoise-image-sequence", "--factor"), ("video-from-sequence", "--lossless")]:
        r = run_cli("videoed", sub, "--help")
        assert r.returncode == 0 and flag in r.stdout and "--debug" in r.stdout
    demo = run_cli("demo", "--help")
    assert "--cpu-only" in demo.stdout and "--force-gpu-idxs" in demo.stdout


def test_user_error_is_one_line_and_debug_adds_traceback(tmp_path):
    missing = tmp_path / "missing"
    plain = run_cli("videoed", "denoise-image-sequence", "--input-dir", str(missing), "--factor", "3")
    assert plain.returncode == 1
    assert [line for line in plain.stderr.splitlines() if line.strip()] == [f"Error: {missing}: image folder not found"]
    debug = run_cli("videoed", "denoise-image-sequence", "--input-dir", str(missing), "--factor", "3", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_bad_device_flag_is_a_user_error(tmp_path):
    r = run_cli("demo", "--workspace", str(tmp_path / "ws"), "--force-gpu-idxs", "x")
    assert r.returncode == 1 and "force-gpu-idxs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ws").exists()

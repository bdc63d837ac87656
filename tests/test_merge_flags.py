"""`merge`'s per-setting flags (--erode, --mode ...), declared once in merger.config.MERGE_OPTIONS:
they choose batch mode without a prompt, win over --config's values, and a bad one is one line naming it.
The run's own choices (--interactive, --workers) are declared in merger_cli.RUN_OPTIONS: the same flag
rules, and on a terminal DFL's questions in their declared words and range."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import main
from core import interact
from core.image_io import read_image
from tests.conftest import run_cli
from tests.merge_standin import fake_models, make_dst, merge_args, standin_for

FRAMES = [f"{i:05d}.png" for i in range(1, 3)]
PROMPTS = ("ask_bool", "ask_str", "ask_int", "ask_float")
REAL_PROMPTS = {name: getattr(interact, name) for name in PROMPTS}


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    return make_dst(tmp_path_factory.mktemp("data_dst"), count=2)


@pytest.fixture(autouse=True)
def standin_model(dst, monkeypatch):
    import models.loader

    def no_prompt(*a, **k):
        raise AssertionError(f"prompted: {a}")

    monkeypatch.setattr(interact, "is_interactive", lambda: False)
    for name in PROMPTS:
        monkeypatch.setattr(interact, name, no_prompt)
    monkeypatch.setattr(models.loader, "load_predictor", lambda *a, **k: standin_for(dst))


def _merge(dst: Path, tmp_path: Path, out: str, *extra: str, workers: str | None = "1") -> int:
    model = fake_models(tmp_path / "model", "new")
    return main.main(merge_args(dst, tmp_path / out, tmp_path / f"{out}_mask", model,
                                *(["--workers", workers] if workers else []), *extra))


def _differ(a: Path, b: Path) -> float:
    return float(np.abs(read_image(a).astype(int) - read_image(b).astype(int)).mean())


def test_setting_flags_merge_in_batch_without_prompts_and_win_over_the_config(dst, tmp_path, capsys):
    assert _merge(dst, tmp_path, "default", "--no-interactive") == 0
    capsys.readouterr()
    assert _merge(dst, tmp_path, "flags", "--no-interactive", "--erode", "40", "--mode", "seamless") == 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "Mode: seamless" in text and "Erode mask: 40" in text  # the settings of this run, as recorded in the log
    for name in FRAMES:
        assert _differ(tmp_path / "flags" / name, tmp_path / "default" / name) > 0.05
    # Without --no-interactive the flags alone choose batch mode (no question: ask_bool would fail the test);
    # they win over --config's values, the file's other values are kept.
    config = tmp_path / "merge.json"
    config.write_text(json.dumps({"mode": "original", "erode": 5, "blur": 30}))
    assert _merge(dst, tmp_path, "both", "--config", str(config), "--erode", "40", "--mode", "seamless") == 0
    text = "".join(capsys.readouterr())
    assert "Mode: seamless" in text and "Erode mask: 40" in text and "Blur mask: 30" in text
    # Same as the flags-only run, but for the blur the file added.
    assert _differ(tmp_path / "both" / FRAMES[0], tmp_path / "flags" / FRAMES[0]) > 0.0
    assert _differ(tmp_path / "both" / FRAMES[0], dst / FRAMES[0]) > 0.05  # not "original"
    # A number past its range is kept within it, as the window's keys keep it.
    assert _merge(dst, tmp_path, "clamped", "--erode", "9999") == 0
    assert "Erode mask: 400" in "".join(capsys.readouterr())


def test_without_mode_the_merge_uses_the_mode_the_model_suggests(dst, tmp_path, monkeypatch, capsys):
    import models.loader
    monkeypatch.setattr(models.loader, "load_predictor", lambda *a, **k: standin_for(dst, default_mode="seamless"))
    assert _merge(dst, tmp_path, "suggested", "--erode", "5") == 0
    assert "Mode: seamless" in "".join(capsys.readouterr())  # as `merge --help` says of --mode


@pytest.mark.parametrize("flags,named", [(["--mode", "nope"], "--mode"), (["--erode", "4.5"], "--erode"),
                                         (["--masked-hist-match", "maybe"], "--masked-hist-match"),
                                         (["--workers", "0"], "--workers"),
                                         (["--workers", str((os.cpu_count() or 1) + 1)], "--workers")])
def test_a_bad_setting_flag_is_one_line_naming_it_and_nothing_is_written(dst, tmp_path, flags, named):
    # Checked before anything is read: the model folder need not even exist.
    result = run_cli("merge", "--input-dir", str(dst), "--output-dir", str(tmp_path / "bad"), "--output-mask-dir",
                     str(tmp_path / "bad_mask"), "--aligned-dir", str(dst / "aligned"), "--model-dir",
                     str(tmp_path / "model"), "--model", "SAEHD", *flags)
    assert result.returncode == 1, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "must be" in lines[0], lines
    assert not (tmp_path / "bad").exists()


def _terminal(monkeypatch, answer) -> list[str]:
    """stdin is a terminal whose user answers `answer(prompt)`; returns the prompts shown."""
    shown: list[str] = []

    def reply(prompt: str) -> str:
        shown.append(prompt)
        return answer(prompt)

    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    for name, fn in REAL_PROMPTS.items():
        monkeypatch.setattr(interact, name, fn)
    monkeypatch.setattr("builtins.input", reply)
    return shown


def test_on_a_terminal_the_run_questions_come_from_their_declarations(dst, tmp_path, monkeypatch):
    from mainscripts.merger_cli import INTERACTIVE_OPTION, WORKERS_OPTION
    cores = os.cpu_count() or 1
    ask_interactive = interact.format_prompt(INTERACTIVE_OPTION.prompt, True, ["y", "n"], True)
    ask_workers = interact.format_prompt(WORKERS_OPTION.prompt, WORKERS_OPTION.default, [f"1-{cores}"], True)
    workers_answers = [str(cores + 1), "1"]  # out of range: asked again

    def answer(prompt: str) -> str:
        if prompt == ask_interactive:
            return "n"
        if prompt == ask_workers:
            return workers_answers.pop(0) if workers_answers else "1"
        return ""  # the merge settings: their defaults

    shown = _terminal(monkeypatch, answer)
    assert _merge(dst, tmp_path, "asked", workers=None) == 0
    assert shown[0] == ask_interactive and shown[-2:] == [ask_workers, ask_workers]
    assert sorted(p.name for p in (tmp_path / "asked").glob("*.png")) == FRAMES
    # A setting flag chooses batch mode: no "interactive?" question; a given --workers is not asked either.
    shown.clear()
    assert _merge(dst, tmp_path, "flagged", "--erode", "10", workers=None) == 0
    assert ask_interactive not in shown and ask_workers in shown
    shown.clear()
    assert _merge(dst, tmp_path, "both", "--erode", "10") == 0
    assert ask_interactive not in shown and ask_workers not in shown

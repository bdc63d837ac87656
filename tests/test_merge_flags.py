"""`merge`'s per-setting flags (--erode, --mode ...), declared once in merger.config.MERGE_OPTIONS:
they choose batch mode without a prompt, win over --config's values, and a bad one is one line naming it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import main
from core import interact
from core.image_io import read_image
from tests.conftest import run_cli
from tests.facesets import extract_faces, make_frames
from tests.merge_standin import standin_from_aligned

FRAMES = [f"{i:05d}.png" for i in range(1, 3)]


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_dst")
    extract_faces(make_frames("obama.jpg", root, count=2), root / "aligned", size=128)
    return root


@pytest.fixture(autouse=True)
def standin_model(dst, monkeypatch):
    import models.loader

    def no_prompt(*a, **k):
        raise AssertionError(f"prompted: {a}")

    monkeypatch.setattr(interact, "is_interactive", lambda: False)
    for name in ("ask_bool", "ask_str", "ask_float"):
        monkeypatch.setattr(interact, name, no_prompt)
    monkeypatch.setattr(models.loader, "load_predictor", lambda *a, **k: standin_from_aligned(
        sorted((dst / "aligned").glob("*.jpg"))[0], resolution=64))


def _merge(dst: Path, tmp_path: Path, out: str, *extra: str) -> int:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "new_SAEHD_state.npz").write_bytes(b"stand-in")
    return main.main(["merge", "--input-dir", str(dst), "--output-dir", str(tmp_path / out),
                      "--output-mask-dir", str(tmp_path / f"{out}_mask"), "--aligned-dir", str(dst / "aligned"),
                      "--model-dir", str(model), "--model", "SAEHD", "--workers", "0", *extra])


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


@pytest.mark.parametrize("flags,named", [(["--mode", "nope"], "--mode"), (["--erode", "4.5"], "--erode"),
                                         (["--masked-hist-match", "maybe"], "--masked-hist-match")])
def test_a_bad_setting_flag_is_one_line_naming_it_and_nothing_is_written(dst, tmp_path, flags, named):
    # Checked before anything is read: the model folder need not even exist.
    result = run_cli("merge", "--input-dir", str(dst), "--output-dir", str(tmp_path / "bad"), "--output-mask-dir",
                     str(tmp_path / "bad_mask"), "--aligned-dir", str(dst / "aligned"), "--model-dir",
                     str(tmp_path / "model"), "--model", "SAEHD", *flags)
    assert result.returncode == 1, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "must be" in lines[0], lines
    assert not (tmp_path / "bad").exists()

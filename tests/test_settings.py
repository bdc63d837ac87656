"""One declaration per setting (core.settings.Option): the flag, the prompt, the JSON key and the help of a
merger setting, an extract setting and the sort method all come from it."""
from __future__ import annotations

import json

import pytest

from core import interact, settings
from core.errors import UserError
from tests.conftest import run_cli


def _terminal(monkeypatch, answers: list[str]) -> list[str]:
    """Pretend stdin is a terminal answering `answers` in turn; returns the prompts shown."""
    shown: list[str] = []
    replies = iter(answers)

    def fake_input(prompt: str) -> str:
        shown.append(prompt)
        return next(replies)

    monkeypatch.setattr(interact, "is_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", fake_input)
    return shown


def test_train_keeps_its_options_from_the_shared_idiom():
    from facelib.face_type import FaceType
    from models import options
    from models.saehd_options import FACE_TYPES, SAEHD_OPTIONS
    assert options.Option is settings.Option  # declared once, in core.settings
    assert FACE_TYPES == tuple(FaceType.from_string(c).short_name for c in ("half_face", "midfull_face", "full_face",
                                                                             "whole_face", "head"))
    assert next(o for o in SAEHD_OPTIONS if o.key == "face_type").choices == FACE_TYPES


def test_an_extract_setting_has_one_flag_prompt_json_key_and_help(monkeypatch):
    from mainscripts.extractor import EXTRACT_OPTIONS, ExtractSettings
    opt = next(o for o in EXTRACT_OPTIONS if o.key == "jpeg_quality")
    res = run_cli("extract", "--help")
    assert res.returncode == 0, res.stderr
    flat = " ".join(res.stdout.split())
    for o in EXTRACT_OPTIONS:
        assert o.flag in flat, o.flag
    assert f"{opt.flag} INT {opt.help} (default 90)" in flat
    assert "--max-faces-from-image" in flat and "--resume | --force" in flat
    shown = _terminal(monkeypatch, ["", "", "", "77", ""])  # face type, max faces, size, quality, debug
    done = ExtractSettings(detector="centerface").complete()  # the flag given is not asked
    assert done.jpeg_quality == 77 and done.face_type == "wf" and done.image_size == 512
    assert interact.format_prompt(opt.prompt, 90, ["1-100"], True) in shown
    assert not any("Choose detector" in p for p in shown)
    data = settings.to_dict(EXTRACT_OPTIONS, vars(done))
    assert data["jpeg_quality"] == 77 and json.loads(json.dumps(data)) == data


def test_a_merger_setting_has_one_prompt_json_key_help_and_range(tmp_path, monkeypatch):
    from mainscripts.merger_cli import ask_settings
    from merger.config import BY_KEY, RANGES, MergeConfig, load_config, save_config
    blur = BY_KEY["blur"]
    assert RANGES["blur"] == (0, 400) and MergeConfig().blur == blur.default
    assert MergeConfig(blur=999).blur == 400  # clamped, as the window's keys need
    save_config(tmp_path / "m.json", MergeConfig(blur=7))
    assert json.loads((tmp_path / "m.json").read_text())["blur"] == 7 and load_config(tmp_path / "m.json").blur == 7
    # mode, mask mode, erode, blur, motion blur, scale, colour transfer, sharpen mode/amount, 3 degrades, temporal
    shown = _terminal(monkeypatch, ["", "", "", "12", "", "", "", "", "", "", "", "", ""])
    cfg = ask_settings(MergeConfig())
    assert cfg == MergeConfig(blur=12)
    assert f"[0] {blur.prompt} ( 0-400 ?:help ) : " in shown
    assert not any("Hist match" in p for p in shown)  # asked only in the hist-match modes
    shown = _terminal(monkeypatch, ["hist-match", "200", "n"] + [""] * 12)
    cfg = ask_settings(MergeConfig())
    assert (cfg.mode, cfg.hist_match_threshold, cfg.masked_hist_match) == ("hist-match", 200, False)


@pytest.mark.parametrize("key, value", [("erode", "lots"), ("mask_mode", "xseg"), ("masked_hist_match", 3)])
def test_a_bad_value_in_a_merge_config_names_the_file_and_the_key(tmp_path, key, value):
    from merger.config import load_config
    path = tmp_path / "merge.json"
    path.write_text(json.dumps({"blur": 3, key: value}))
    with pytest.raises(UserError) as err:
        load_config(path)
    assert err.value.path == path and f"bad merge config: {key} must be" in err.value.problem
    assert json.dumps(value) in err.value.problem or repr(value) in err.value.problem


def test_extract_prompts_on_a_terminal_in_dfls_grammar(monkeypatch):
    from mainscripts.extractor import ExtractSettings
    shown = _terminal(monkeypatch, ["?", "dlib-hog", "head", "x", "2", "", "", "y"])
    done = ExtractSettings().complete()
    assert shown[0] == "[centerface] Choose detector ( centerface/dlib-hog/manual ?:help ) : "
    assert shown[2] == "[wf] Face type ( h/mf/f/wf/head ?:help ) : "
    assert shown[3] == shown[4]  # "x" is not a number: asked again
    assert "[768] Image size ( 64-4096 ?:help ) : " in shown  # head's default size
    assert (done.detector, done.face_type, done.max_faces, done.image_size, done.jpeg_quality, done.output_debug) == \
        ("dlib-hog", "head", 2, 768, 90, True)
    assert done.long_face_type == "head" and done.resume is None and done.workers is None  # no prompt for these


def test_extract_takes_the_defaults_without_a_terminal_and_says_so(monkeypatch):
    import logging

    from core import log
    from mainscripts.extractor import ExtractSettings
    said: list[str] = []

    class Keep(logging.Handler):  # the console handler may hold the stream of an earlier test's capture
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    keep = Keep()
    log.setup().addHandler(keep)
    monkeypatch.setattr(interact, "is_interactive", lambda: False)
    try:
        done = ExtractSettings(face_type="full_face").complete()  # long names are accepted from flags
    finally:
        log.get().removeHandler(keep)
    assert (done.detector, done.face_type, done.max_faces, done.image_size, done.jpeg_quality, done.output_debug) == \
        ("centerface", "f", 0, 512, 90, False)
    assert done.identity_threshold == 0.6 and done.reference_faces == ()
    text = "\n".join(said)
    assert "Choose detector: centerface (default; stdin is not a terminal)" in text
    assert "Face type" not in text  # given, not asked


def test_bad_extract_flags_name_the_flag():
    from mainscripts.extractor import ExtractSettings
    for given, problem in (({"face_type": "chin"}, "--face-type must be one of h, mf, f, wf, head, got 'chin'"),
                           ({"max_faces": "-1"}, "--max-faces-from-image must be 0 or more, got -1"),
                           ({"image_size": "32"}, "--image-size must be an integer from 64 to 4096, got '32'"),
                           ({"jpeg_quality": "1.5"}, "--jpeg-quality must be an integer from 1 to 100, got '1.5'")):
        with pytest.raises(UserError) as err:
            ExtractSettings.from_flags(given)
        assert problem in str(err.value)


def test_the_sort_method_flag_and_menu_come_from_one_declaration(monkeypatch):
    from mainscripts.sorter import METHOD_OPTION, METHODS, resolve_method
    assert resolve_method("final-by-blur").key == "best-faces" and resolve_method("HIST").key == "hist"
    with pytest.raises(UserError, match="unknown sort method 'sideways'"):
        resolve_method("sideways")
    shown = _terminal(monkeypatch, ["3"])
    assert resolve_method(None).key == METHODS[3].key
    assert shown == [interact.format_prompt(METHOD_OPTION.prompt, 5, [f"0-{len(METHODS) - 1}"], True)]
    res = run_cli("sort", "--help")
    assert res.returncode == 0 and "--by" in res.stdout and "best-faces-faster" in res.stdout


def _help(capsys, monkeypatch, command: str) -> str:
    """`main.py COMMAND --help` on one line (wide: no word is broken at a hyphen)."""
    import main
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as done:
        main.main([command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_merge_and_sort_workers_and_interactive_come_from_their_declarations(capsys, monkeypatch):
    import os

    from mainscripts import merger_cli, sorter
    cores = os.cpu_count() or 1
    merge_workers, sort_workers = merger_cli.WORKERS_OPTION, sorter.WORKERS_OPTION
    assert merge_workers.valid_range == sort_workers.valid_range == (1, cores)  # one range for flag and prompt
    assert merge_workers.prompt == "Number of workers?" and merger_cli.INTERACTIVE_OPTION.prompt == "Use interactive merger?"
    flat = _help(capsys, monkeypatch, "merge")
    assert f"--workers INT {merge_workers.help} (default: {merge_workers.default_text})" in flat
    assert f"--interactive {merger_cli.INTERACTIVE_OPTION.help} --no-interactive" in flat
    assert f"--no-interactive {merger_cli.INTERACTIVE_OPTION.negative_help}" in flat
    # The mode's default is the model's suggestion (default_config), and the help says so.
    assert "the mode the model suggests" in flat and "(default overlay)" not in flat
    assert f"--workers INT {sort_workers.help} (default: {sort_workers.default_text})" in _help(capsys, monkeypatch, "sort")

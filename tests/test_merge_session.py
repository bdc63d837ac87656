"""Merger sessions: per-frame settings with inheritance, saved atomically, recovered safely."""
from __future__ import annotations

import json

from core.keys import KeyReader, decode_key
from merger.config import MergeConfig
from merger.session import load_session, new_session, session_path
from merger.window import MergerController

NAMES = [f"{i:05d}.png" for i in range(1, 6)]


def test_settings_carry_forward_until_changed(tmp_path):
    s = new_session(tmp_path / "s.json", NAMES, 10, MergeConfig())
    s.set_config(1, MergeConfig(blur=5))
    assert s.config_for(0) == MergeConfig() and s.config_for(1).blur == 5 and s.config_for(4).blur == 5
    s.set_config(3, MergeConfig(erode=2))
    assert s.config_for(2).blur == 5 and s.config_for(4) == MergeConfig(erode=2)


def test_save_and_load_round_trip(tmp_path):
    path = session_path(tmp_path, "SAEHD", "new")
    assert path.name == "new_SAEHD_merger_session.json"  # the model's own name and class: one per model
    s = new_session(path, NAMES, 10, MergeConfig())
    s.set_config(0, MergeConfig(mode="seamless", blur=7))
    s.mark_done(0)
    s.current = 2
    s.save()
    assert json.loads(path.read_text())["format"] == "facekit.merger_session"
    back = load_session(path, NAMES, 10, MergeConfig())
    assert back.configs[0] == MergeConfig(mode="seamless", blur=7) and back.configs[1] is None
    assert back.done == [True, False, False, False, False] and back.current == 2
    assert not list(tmp_path.glob("*.partial*"))


def test_a_newer_model_merges_every_frame_again_with_the_saved_settings(tmp_path):
    path = tmp_path / "s.json"
    s = new_session(path, NAMES, 10, MergeConfig())
    s.set_config(0, MergeConfig(blur=3))
    for i in range(5):
        s.mark_done(i)
    s.save()
    back = load_session(path, NAMES, 11, MergeConfig())
    assert back.remaining == [0, 1, 2, 3, 4] and back.configs[0].blur == 3 and back.model_iteration == 11


def test_corrupt_or_foreign_session_is_set_aside_not_lost(tmp_path, caplog):
    path = tmp_path / "s.json"
    path.write_text('{"format": "facekit.merger_session", "frames": [{"name": ')  # truncated
    assert load_session(path, NAMES, 1, MergeConfig()) is None
    aside = list(tmp_path.glob("s.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"format"') and not path.exists()
    # A valid session for other frames is kept aside too.
    other = new_session(path, NAMES[:3], 1, MergeConfig())
    other.save()
    assert load_session(path, NAMES, 1, MergeConfig()) is None
    assert len(list(tmp_path.glob("s.json.other-frames-*"))) == 1
    # A bad setting value inside is "corrupt" as well.
    s = new_session(path, NAMES, 1, MergeConfig())
    data = s.to_json()
    data["frames"][0]["config"] = {"mode": "nonsense"}
    path.write_text(json.dumps(data))
    assert load_session(path, NAMES, 1, MergeConfig()) is None
    assert len(list(tmp_path.glob("s.json.corrupt-*"))) == 2


def test_controller_keys_navigation_and_overrides(tmp_path):
    s = new_session(tmp_path / "s.json", NAMES, 1, MergeConfig())
    c = MergerController(s)
    assert c.view.show_help  # DFL opens on the help screen
    for k in "eee":
        c.on_key(k)
    assert c.cfg.blur == 3 and s.configs[0].blur == 3
    c.on_key(".")  # next frame inherits
    assert c.index == 1 and c.cfg.blur == 3 and not c.view.show_help
    c.on_key("w")
    c.on_key(",")  # back: frame 0 keeps its own settings
    assert c.index == 0 and c.cfg.erode == 0 and c.cfg.blur == 3
    c.on_key("/")  # next, overriding frame 1 with frame 0's settings
    assert c.index == 1 and c.cfg.erode == 0
    c.on_key("u")
    c.on_key("?")  # apply to all remaining
    assert all(s.config_for(k).output_face_scale == 1 for k in range(1, 5)) and s.config_for(0).output_face_scale == 0
    c.on_key("m")  # previous, overriding it
    assert c.index == 0 and c.cfg.output_face_scale == 1
    c.on_key("=")
    c.on_key("v")
    assert c.view.zoom == 1.1 and c.view.checker
    c.on_key(">")
    assert c.view.auto and c.auto_step() and c.index == 1
    c.on_key("esc")
    assert c.view.quit
    assert [decode_key(k) for k in (9, 0xFF09, 27, ord("E"), ord(">"), -1, 0x1234)] == ["tab", "tab", "esc", "E", ">", None, None]
    # Qt reports Shift+e as Shift then 'e': the reader makes it 'E' (and Shift+. '>'), once.
    r = KeyReader()
    assert [r.read(k) for k in (0xFFE1, ord("e"), ord("e"), 0xFFE2, ord("."), ord("E"))] == [None, "E", "e", None, ">", "E"]

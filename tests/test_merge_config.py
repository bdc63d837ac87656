"""Merge settings: DFL's defaults and ranges, the JSON file format, and the key map without a window."""
from __future__ import annotations

import json

import pytest

from core.errors import UserError
from merger.config import MASK_MODES, MergeConfig, apply_key, load_config, save_config


def press(cfg: MergeConfig, keys: str) -> MergeConfig:
    for k in keys:
        cfg = apply_key(cfg, k)
    return cfg


def test_defaults_are_dfls_interactive_ones():
    c = MergeConfig()
    assert (c.mode, c.mask_mode, c.color_transfer, c.hist_match_threshold, c.masked_hist_match) == \
        ("overlay", "learned-prd*learned-dst", "rct", 238, True)
    assert (c.erode, c.blur, c.motion_blur, c.output_face_scale, c.sharpen_amount, c.image_denoise,
            c.bicubic_degrade, c.color_degrade, c.sharpen_mode) == (0, 0, 0, 0, 0, 0, 0, 0, "none")


def test_values_are_clamped_to_dfls_ranges():
    c = MergeConfig(erode=999, blur=-5, motion_blur=101, output_face_scale=-80, sharpen_amount=300,
                    image_denoise=501, bicubic_degrade=-1, color_degrade=1000, hist_match_threshold=300)
    assert (c.erode, c.blur, c.motion_blur, c.output_face_scale, c.sharpen_amount, c.image_denoise,
            c.bicubic_degrade, c.color_degrade, c.hist_match_threshold) == (400, 0, 100, -50, 100, 500, 0, 100, 255)
    with pytest.raises(ValueError, match="mask_mode"):
        MergeConfig(mask_mode="xseg")


def test_json_round_trip_and_partial_files(tmp_path):
    c = MergeConfig(mode="seamless", blur=30, color_transfer="idt-m", masked_hist_match=False)
    save_config(tmp_path / "m.json", c)
    assert load_config(tmp_path / "m.json") == c
    (tmp_path / "p.json").write_text('{"blur": 12, "mask_mode": "dst"}')
    p = load_config(tmp_path / "p.json")
    assert p == MergeConfig(blur=12, mask_mode="dst")


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON"),
    ('{"blurr": 3}', "unknown setting(s) blurr"),
    ('{"mode": "swap"}', "mode must be one of"),
    ('{"blur": "a lot"}', "blur must be a whole number"),
    ("[1, 2]", "must be a JSON object"),
])
def test_bad_config_files_name_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "merge.json"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(path)
    assert problem in str(e.value) and "merge.json" in str(e.value)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.json")


def test_step_keys_and_shift():
    c = press(MergeConfig(), "eee")
    assert c.blur == 3
    assert press(c, "E").blur == 8 and press(c, "dddd").blur == 0  # never below 0
    assert press(MergeConfig(), "wwS").erode == -3
    assert press(MergeConfig(), "rrf").motion_blur == 1
    assert press(MergeConfig(), "yyyh").sharpen_amount == 2
    assert press(MergeConfig(), "uU").output_face_scale == 6 and press(MergeConfig(), "J").output_face_scale == -5
    assert press(MergeConfig(), "iiI").image_denoise == 7 and press(MergeConfig(), "ook").bicubic_degrade == 2
    assert press(MergeConfig(), "pP;").color_degrade == 5 and press(MergeConfig(color_degrade=10), ":").color_degrade == 5


def test_mode_keys_and_hist_match_only_keys():
    assert [press(MergeConfig(), k).mode for k in "`123456"] == [
        "original", "overlay", "hist-match", "seamless", "seamless-hist-match", "raw-rgb", "raw-predict"]
    # Threshold and masked toggle do nothing outside the hist-match modes (as in DFL).
    assert press(MergeConfig(), "qz") == MergeConfig()
    h = press(MergeConfig(), "2qqzA")
    assert h.hist_match_threshold == 235 and h.masked_hist_match is False
    assert press(MergeConfig(), "4q").hist_match_threshold == 239 and press(MergeConfig(), "4z").masked_hist_match


def test_cycle_keys_wrap_around():
    c = MergeConfig()
    seen = [c.mask_mode]
    for _ in range(len(MASK_MODES)):
        c = apply_key(c, "x")
        seen.append(c.mask_mode)
    assert seen[-1] == seen[0] and sorted(set(seen)) == sorted(MASK_MODES)
    assert [press(MergeConfig(), "c" * n).color_transfer for n in (1, 2, 8)] == ["lct", "mkl", "none"]
    assert [press(MergeConfig(), "n" * n).sharpen_mode for n in (1, 2, 3)] == ["box", "gaussian", "none"]
    assert apply_key(MergeConfig(), "?") == MergeConfig()  # not a settings key


def test_describe_lists_what_is_in_effect():
    text = MergeConfig(blur=7).describe()
    assert "Blur mask: 7" in text and "Hist match threshold" not in text
    assert "Hist match threshold: 238" in MergeConfig(mode="hist-match").describe()
    assert json.loads(json.dumps(MergeConfig().to_dict())) == MergeConfig().to_dict()

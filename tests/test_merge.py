"""`merge` end to end on real frames: batch merging with a stand-in model, the outputs a user gets,
and clear errors for bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image, write_image
from mainscripts import merger_cli
from tests.conftest import run_cli
from tests.facesets import extract_faces, make_frames
from tests.merge_standin import make_dst, standin_for


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    """data_dst: 5 real frames with a face, plus 00006.png that has no aligned face."""
    root = make_dst(tmp_path_factory.mktemp("data_dst"), count=5)
    shutil.copy(root / "00001.png", root / "00006.png")
    return root


pytestmark = pytest.mark.usefixtures("no_terminal")


def _args(dst: Path, out: Path, model_dir: Path | None = None, aligned: Path | None = None) -> list[str]:
    return ["merge", "--input-dir", str(dst), "--output-dir", str(out / "merged"), "--output-mask-dir",
            str(out / "merged_mask"), "--aligned-dir", str(aligned or dst / "aligned"), "--model-dir",
            str(model_dir or out / "model"), "--model", "SAEHD"]


def test_batch_merge_writes_every_frame_and_mask(dst, tmp_path):
    model = standin_for(dst)
    n = merger_cli.merge(str(dst), str(tmp_path / "merged"), str(tmp_path / "merged_mask"), str(dst / "aligned"),
                         str(tmp_path / "model"), "SAEHD", workers=2, predictor=model)
    assert n == 6
    names = [f"{i:05d}.png" for i in range(1, 7)]
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == names
    assert sorted(p.name for p in (tmp_path / "merged_mask").iterdir()) == names
    assert sum(model.calls) == 5 and len(model.calls) < 5  # predictions were batched
    for name in names[:5]:
        frame, out = read_image(dst / name), read_image(tmp_path / "merged" / name)
        mask = cv2.imread(str(tmp_path / "merged_mask" / name), cv2.IMREAD_UNCHANGED)
        assert out.shape == frame.shape and mask.shape == frame.shape[:2]
        inside, outside = mask == 255, mask == 0
        assert inside.sum() > 1000
        assert np.abs(out.astype(int) - frame.astype(int))[inside].mean() > 5  # the face was replaced
        np.testing.assert_array_equal(out[outside], frame[outside])  # nothing else changed
    # The frame without an aligned face is copied unchanged, with an empty mask.
    np.testing.assert_array_equal(read_image(tmp_path / "merged" / "00006.png"), read_image(dst / "00006.png"))
    assert cv2.imread(str(tmp_path / "merged_mask" / "00006.png"), cv2.IMREAD_UNCHANGED).max() == 0


def test_config_file_applies_one_setting_to_all_frames(dst, tmp_path):
    cfg = tmp_path / "merge.json"
    cfg.write_text(json.dumps({"mode": "original", "mask_mode": "full"}))
    merger_cli.merge(str(dst), str(tmp_path / "m"), str(tmp_path / "mm"), str(dst / "aligned"), str(tmp_path / "model"),
                     "SAEHD", config_path=str(cfg), workers=0, predictor=standin_for(dst))
    for i in range(1, 6):
        name = f"{i:05d}.png"
        np.testing.assert_array_equal(read_image(tmp_path / "m" / name), read_image(dst / name))
        # full mask: the whole crop square, much more than a face hull
        assert (cv2.imread(str(tmp_path / "mm" / name), cv2.IMREAD_UNCHANGED) > 127).mean() > 0.15


def test_no_terminal_means_batch_and_says_so_and_a_missing_model_is_an_error(dst, tmp_path):
    r = run_cli(*_args(dst, tmp_path, tmp_path / "nowhere"))
    assert r.returncode == 1
    assert "batch mode with the default settings" in r.stdout + r.stderr
    assert r.error_lines and "model folder not found" in r.error_lines[-1] and "nowhere" in r.error_lines[-1]
    (tmp_path / "empty_model").mkdir()
    r = run_cli(*_args(dst, tmp_path, tmp_path / "empty_model"))
    assert r.returncode == 1 and "no trained SAEHD model" in r.error_lines[-1]
    assert not list((tmp_path / "merged").glob("*.png"))  # nothing half-done


def test_aligned_faces_of_other_frames(dst, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for p in sorted(dst.glob("*.png"))[:2]:
        shutil.copy(p, other / f"clip_{p.name}")  # same pictures, other names
    r = run_cli(*_args(other, tmp_path, aligned=dst / "aligned"))
    assert r.returncode == 1
    assert "none of the 5 aligned faces belongs to a frame" in r.error_lines[-1] and "aligned" in r.error_lines[-1]
    # Some faces without their frame: a warning, the rest is merged.
    part = tmp_path / "part"
    part.mkdir()
    for p in sorted(dst.glob("*.png"))[:3]:
        shutil.copy(p, part / p.name)
    merger_cli.merge(str(part), str(tmp_path / "pm"), str(tmp_path / "pmm"), str(dst / "aligned"),
                     str(tmp_path / "model"), "SAEHD", workers=0, predictor=standin_for(dst))
    assert len(list((tmp_path / "pm").glob("*.png"))) == 3


def test_frames_of_different_sizes(dst, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(dst, mixed)
    write_image(mixed / "00003.png", cv2.resize(read_image(mixed / "00003.png"), (400, 300)))
    r = run_cli(*_args(mixed, tmp_path))
    assert r.returncode == 1
    line = r.error_lines[-1]
    assert "00003.png" in line and "400x300" in line and "320x240" in line


def test_unwritable_output_and_missing_aligned_dir(dst, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    (tmp_path / "model").mkdir()  # inputs are checked first: a (never loaded) model file lets the run get that far
    (tmp_path / "model" / "m_SAEHD_state.npz").write_bytes(b"")
    args = _args(dst, tmp_path)
    args[args.index("--output-dir") + 1] = str(blocker / "merged")
    r = run_cli(*args)
    assert r.returncode == 1 and "cannot write to this folder" in r.error_lines[-1] and "a_file" in r.error_lines[-1]
    args = _args(dst, tmp_path)
    i = args.index("--aligned-dir")
    del args[i:i + 2]
    r = run_cli(*args)
    assert r.returncode == 1 and "--aligned-dir is required" in r.error_lines[-1]


def test_bad_config_file_is_a_clear_error(dst, tmp_path):
    cfg = tmp_path / "merge.json"
    cfg.write_text('{"blur": 10, "erod": 3}')
    with pytest.raises(Exception) as e:
        merger_cli.merge(str(dst), str(tmp_path / "m"), str(tmp_path / "mm"), str(dst / "aligned"),
                         str(tmp_path / "model"), "SAEHD", config_path=str(cfg), workers=0, predictor=standin_for(dst))
    assert "unknown setting(s) erod" in str(e.value) and "merge.json" in str(e.value)


def _container_tags(video: Path) -> dict[str, str]:
    """Global metadata of a video as ffmpeg's ffmetadata dump gives it (key=value lines)."""
    import subprocess

    from core.video import ffmpeg_exe
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "ffmetadata", "-"],
                         capture_output=True, text=True, check=True).stdout
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith(";"))
    return {k.lower(): v for k, v in pairs}  # Matroska writes keys in upper case


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_merged_video_carries_a_synthetic_media_marker(dst, tmp_path, ext):
    merger_cli.merge(str(dst), str(tmp_path / "merged"), str(tmp_path / "mm"), str(dst / "aligned"),
                     str(tmp_path / "model"), "SAEHD", workers=0, predictor=standin_for(dst))
    video = tmp_path / f"result{ext}"
    r = run_cli("videoed", "video-from-sequence", "--input-dir", str(tmp_path / "merged"), "--output-file", str(video),
                "--fps", "25", "--bitrate", "2")
    assert r.returncode == 0, r.stderr
    tags = _container_tags(video)
    assert "synthetic media" in tags.get("comment", "") and "face swap" in tags.get("synthetic_media", "")
    plain = tmp_path / f"plain{ext}"
    r = run_cli("videoed", "video-from-sequence", "--input-dir", str(tmp_path / "merged"), "--output-file", str(plain),
                "--fps", "25", "--bitrate", "2", "--no-synthetic-marker")
    assert r.returncode == 0, r.stderr
    tags = _container_tags(plain)
    assert "synthetic" not in " ".join(tags.values()) and "synthetic_media" not in tags


@pytest.mark.slow
def test_cli_merges_with_a_real_tiny_model_trained_by_train(dst, tmp_path):
    """The whole path a user runs: `train` a (tiny, 2-iteration) SAEHD, then `merge` with it."""
    src = make_frames("obama2.jpg", tmp_path / "src", count=4)
    extract_faces(src, tmp_path / "src" / "aligned", size=64)
    model_dir = tmp_path / "model"
    r = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                str(dst / "aligned"), "--model-dir", str(model_dir), "--model", "SAEHD", "--silent-start", "--no-preview",
                "--resolution", "32", "--archi", "df-ud", "--ae-dims", "32", "--e-dims", "16", "--d-dims", "16",
                "--d-mask-dims", "8", "--batch-size", "4", "--face-type", "f", "--target-iteration", "2", "--cpu-only")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli(*_args(dst, tmp_path, model_dir), "--workers", "2", "--cpu-only")
    assert r.returncode == 0, r.stderr[-2000:]
    for i in range(1, 7):
        frame = read_image(dst / f"{i:05d}.png")
        out = read_image(tmp_path / "merged" / f"{i:05d}.png")
        mask = cv2.imread(str(tmp_path / "merged_mask" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert out.shape == frame.shape and mask.shape == frame.shape[:2]
        if i <= 5:  # the model's (untrained, faint) learned masks still put its output on the face
            assert (mask > 0).sum() > 500 and np.abs(out.astype(int) - frame.astype(int))[mask > 0].mean() > 1
        np.testing.assert_array_equal(out[mask == 0], frame[mask == 0])
    # The wrong model class for this folder names the right one.
    r = run_cli(*[a if a != "SAEHD" else "Quick96" for a in _args(dst, tmp_path, model_dir)])
    assert r.returncode == 1 and "no trained Quick96 model" in r.error_lines[-1] and "--model SAEHD" in r.error_lines[-1]


def test_interactive_without_a_display_says_how_to_merge_instead(dst, tmp_path, monkeypatch):
    from core.errors import UserError
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="needs a display .*--no-interactive"):
        merger_cli.merge(str(dst), str(tmp_path / "m"), str(tmp_path / "mm"), str(dst / "aligned"),
                         str(tmp_path / "model"), "SAEHD", interactive=True, predictor=standin_for(dst))

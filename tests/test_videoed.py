"""videoed from the command line: frames out, video back in, cut and denoise, on a real-face clip."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from core.synth_video import render_frames
from core.video import probe
from tests.conftest import FACES, run_cli


def _extract(video, out_dir, *extra):
    result = run_cli("videoed", "extract-video", "--input-file", str(video), "--output-dir", str(out_dir), *extra)
    assert result.returncode == 0, result.stderr
    return sorted(out_dir.iterdir())


def test_extract_full_rate_gives_every_frame_in_order(face_video, tmp_path):
    frames = _extract(face_video.path, tmp_path / "frames", "--fps", "0", "--output-ext", "png")
    assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(1, 51)]
    first = cv2.imread(str(frames[0]))
    assert first.shape == (240, 320, 3)
    # Each frame is the photo under the known motion: compare with the frame we rendered ourselves.
    photo = cv2.imread(str(FACES / "obama.jpg"))
    for idx in (0, 25, 49):
        truth = next(render_frames(photo, [face_video.matrices[idx]], (320, 240))).astype(np.float32)
        got = cv2.imread(str(frames[idx])).astype(np.float32)
        psnr = 10 * np.log10(255 ** 2 / np.mean((truth - got) ** 2))
        assert psnr > 30, f"frame {idx + 1} differs from the source (PSNR {psnr:.1f} dB)"


def test_extract_lower_fps_and_jpg(face_video, tmp_path):
    frames = _extract(face_video.path, tmp_path / "frames", "--fps", "10", "--output-ext", "jpg")
    assert len(frames) == 20
    assert all(p.suffix == ".jpg" for p in frames)
    assert cv2.imread(str(frames[-1])).shape == (240, 320, 3)


def test_extract_replaces_old_frames_only_after_success(face_video, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "99999.png").write_bytes(b"old frame")
    (out / "notes.txt").write_text("keep me")
    frames = _extract(face_video.path, out, "--fps", "0", "--output-ext", "png")
    names = {p.name for p in frames}
    assert "99999.png" not in names and "notes.txt" in names and "00050.png" in names
    assert not [p for p in out.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("container", ["mp4", "mov", "avi", "mkv"])
@pytest.mark.slow
def test_video_from_sequence_round_trip_with_audio(face_video, tmp_path, container):
    frames_dir = tmp_path / "frames"
    _extract(face_video.path, frames_dir, "--fps", "0", "--output-ext", "png")
    out = tmp_path / f"result.{container}"
    result = run_cli("videoed", "video-from-sequence", "--input-dir", str(frames_dir), "--output-file", str(out),
                     "--reference-file", str(face_video.path), "--include-audio", "--bitrate", "8")
    assert result.returncode == 0, result.stderr
    info = probe(out)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == 25
    assert info.has_audio
    assert info.count_frames() == 50
    assert abs(info.duration - 2.0) < 0.15


@pytest.mark.slow
def test_video_from_sequence_lossless_keeps_pixels(face_video, tmp_path):
    frames_dir = tmp_path / "frames"
    frames = _extract(face_video.path, frames_dir, "--fps", "0", "--output-ext", "png")
    out = tmp_path / "lossless.mkv"
    result = run_cli("videoed", "video-from-sequence", "--input-dir", str(frames_dir), "--output-file", str(out),
                     "--fps", "25", "--lossless")
    assert result.returncode == 0, result.stderr
    assert not probe(out).has_audio
    back = _extract(out, tmp_path / "back", "--fps", "0", "--output-ext", "png")
    assert len(back) == len(frames)
    for a, b in zip(frames[::10], back[::10]):
        diff = np.abs(cv2.imread(str(a)).astype(int) - cv2.imread(str(b)).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 6  # only RGB<->YUV rounding


def test_cut_video_keeps_range_and_audio(face_video, tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(face_video.path, video)
    result = run_cli("videoed", "cut-video", "--input-file", str(video), "--from-time", "00:00:00.500",
                     "--to-time", "1.5", "--audio-track-id", "0", "--bitrate", "5")
    assert result.returncode == 0, result.stderr
    cut = probe(tmp_path / "clip_cut.mp4")
    assert abs(cut.duration - 1.0) < 0.1
    assert abs(cut.count_frames() - 25) <= 1
    assert cut.has_audio and cut.fps == 25


def test_cut_video_rejects_reversed_range(face_video, tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(face_video.path, video)
    result = run_cli("videoed", "cut-video", "--input-file", str(video), "--from-time", "1.5", "--to-time", "0.5")
    assert result.returncode == 1
    assert len(result.error_lines) == 1 and "to-time" in result.stderr
    assert not (tmp_path / "clip_cut.mp4").exists()


def _noisy_sequence(folder, face_video):
    folder.mkdir()
    rng = np.random.default_rng(0)
    # Smooth content, so that a stronger spatial filter can only remove noise, not detail.
    photo = cv2.GaussianBlur(cv2.imread(str(FACES / "grace_hopper.jpg")), (0, 0), 6)
    clean = list(render_frames(photo, face_video.matrices[:12], (320, 240)))
    inside = [cv2.erode(f, np.ones((9, 9), np.uint8)) == 255
              for f in render_frames(np.full_like(photo, 255), face_video.matrices[:12], (320, 240))]
    for i, frame in enumerate(clean):
        noisy = np.clip(frame.astype(np.float32) + rng.normal(0, 18, frame.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i + 1:05d}.png"), noisy)
    return clean, inside  # `inside`: pixels of the photo, away from the black border


def test_denoise_uses_the_factor(face_video, tmp_path):
    errors = {}
    for factor in (1, 20):
        folder = tmp_path / f"f{factor}"
        clean, inside = _noisy_sequence(folder, face_video)
        result = run_cli("videoed", "denoise-image-sequence", "--input-dir", str(folder), "--factor", str(factor))
        assert result.returncode == 0, result.stderr
        files = sorted(folder.iterdir())
        assert [p.name for p in files] == [f"{i:05d}.png" for i in range(1, 13)]
        errors[factor] = np.mean([np.abs(cv2.imread(str(p)).astype(float) - c)[m].mean()
                                  for p, c, m in zip(files, clean, inside)])
    noisy_error = 18 * np.sqrt(2 / np.pi)  # mean |N(0, 18)| before any denoising
    assert errors[20] < errors[1] < noisy_error


# --- bad input ---------------------------------------------------------------------------------

def _assert_one_error(result, *words):
    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for w in words:
        assert w in result.stderr


def test_missing_input_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    _assert_one_error(run_cli("videoed", "extract-video", "--input-file", str(missing), "--output-dir",
                              str(tmp_path / "out"), "--fps", "0", "--output-ext", "png"), str(missing), "not found")
    assert not (tmp_path / "out").exists()


def test_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video")
    _assert_one_error(run_cli("videoed", "extract-video", "--input-file", str(fake), "--output-dir",
                              str(tmp_path / "out"), "--fps", "0", "--output-ext", "png"), str(fake), "not a readable video")
    photo = FACES / "obama.jpg"
    _assert_one_error(run_cli("videoed", "cut-video", "--input-file", str(photo), "--from-time", "0", "--to-time", "1"),
                      "still image")


def test_empty_and_mixed_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_error(run_cli("videoed", "video-from-sequence", "--input-dir", str(empty), "--output-file",
                              str(tmp_path / "r.mp4"), "--fps", "25", "--bitrate", "4"), str(empty), "no images")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(FACES / "obama.jpg", mixed / "00001.jpg")
    cv2.imwrite(str(mixed / "00002.png"), cv2.imread(str(FACES / "obama.jpg")))
    _assert_one_error(run_cli("videoed", "denoise-image-sequence", "--input-dir", str(mixed), "--factor", "5"),
                      str(mixed), "mixed image extensions")
    _assert_one_error(run_cli("videoed", "video-from-sequence", "--input-dir", str(mixed), "--output-file",
                              str(tmp_path / "r.mp4"), "--fps", "25", "--bitrate", "4"), "mixed image extensions")
    assert not (tmp_path / "r.mp4").exists()


def test_unwritable_output_folder(face_video, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _assert_one_error(run_cli("videoed", "extract-video", "--input-file", str(face_video.path), "--output-dir",
                              str(blocker / "frames"), "--fps", "0", "--output-ext", "png"), "cannot write")


def test_failed_encode_keeps_previous_result(face_video, tmp_path):
    frames_dir = tmp_path / "frames"
    _extract(face_video.path, frames_dir, "--fps", "5", "--output-ext", "png")
    out = tmp_path / "result.mp4"
    assert run_cli("videoed", "video-from-sequence", "--input-dir", str(frames_dir), "--output-file", str(out),
                   "--fps", "25", "--bitrate", "4").returncode == 0
    before = out.read_bytes()
    (frames_dir / "00005.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # a corrupt frame
    result = run_cli("videoed", "video-from-sequence", "--input-dir", str(frames_dir), "--output-file", str(out),
                     "--fps", "25", "--bitrate", "4")
    _assert_one_error(result, "ffmpeg failed")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "result.mp4"]

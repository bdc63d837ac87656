"""`extract` from the command line on frames made from real face photos."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from core.synth_video import render_frames, smooth_motion
from facelib.align import align, transform_points
from facelib.face_type import FaceType
from faceset.face_file import load_aligned_face
from tests.conftest import FACES, REPO, run_cli
from tests.xserver import window_process


def _frames(folder, photo="obama.jpg", n=6, size=(320, 240), seed=0):
    """Frames of a real photo under a known slow motion; returns the photo->frame matrices."""
    folder.mkdir(parents=True, exist_ok=True)
    img = cv2.imread(str(FACES / photo))
    mats = smooth_motion(n, (img.shape[1], img.shape[0]), size, seed=seed)
    for i, frame in enumerate(render_frames(img, mats, size)):
        cv2.imwrite(str(folder / f"{i + 1:05d}.png"), frame)
    return mats


def _extract(frames, out, *extra):
    return run_cli("extract", "--input-dir", str(frames), "--output-dir", str(out), "--detector", "centerface",
                   "--workers", "1", *extra)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    mats = _frames(root / "frames")
    result = _extract(root / "frames", root / "aligned", "--face-type", "wf", "--image-size", "256", "--output-debug")
    assert result.returncode == 0, result.stderr
    return root, mats, result


def test_one_aligned_face_per_frame_with_metadata(extracted):
    root, mats, result = extracted
    faces = sorted((root / "aligned").glob("*.jpg"))
    assert [p.name for p in faces] == [f"{i:05d}_0.jpg" for i in range(1, 7)]
    assert "Images found:        6" in result.stderr and "Faces detected:      6" in result.stderr
    for i, path in enumerate(faces):
        image, meta = load_aligned_face(path)
        assert image.shape == (256, 256, 3)
        assert meta.face_type.long_name == "whole_face" and meta.source_filename == f"{i + 1:05d}.png"
        # The stored matrix is the shared align() of the stored frame landmarks ...
        np.testing.assert_allclose(meta.image_to_face_mat, align(meta.source_landmarks, 256, FaceType.WHOLE_FACE), atol=1e-6)
        # ... and the face-space landmarks are the frame landmarks under that matrix.
        np.testing.assert_allclose(meta.landmarks, transform_points(meta.source_landmarks, meta.image_to_face_mat), atol=1e-3)
        l, t, r, b = meta.source_rect
        cx, cy = meta.source_landmarks[:, 0].mean(), meta.source_landmarks[:, 1].mean()
        assert l < cx < r and t < cy < b


def test_frames_move_but_aligned_faces_stay_put(extracted):
    """Alignment cancels the camera motion: eyes land at the same face pixels in every crop."""
    root, mats, _ = extracted
    eyes = []
    for path in sorted((root / "aligned").glob("*.jpg")):
        _, meta = load_aligned_face(path)
        eyes.append(np.concatenate([meta.landmarks[36:42].mean(0), meta.landmarks[42:48].mean(0)]))
    eyes = np.array(eyes)
    assert np.abs(eyes - eyes.mean(0)).max() < 256 * 0.02  # within 2% of the crop in every frame
    # while in the frames themselves the face moved by several pixels
    frame_shift = np.ptp([m[:, 2] for m in mats], axis=0)
    assert frame_shift.max() > 5


def test_debug_images_written(extracted):
    root, _, _ = extracted
    debug = sorted((root / "aligned_debug").glob("*.jpg"))
    assert [p.name for p in debug] == [f"{i:05d}.jpg" for i in range(1, 7)]
    assert cv2.imread(str(debug[0])).shape == (240, 320, 3)


def test_face_type_and_size_options(tmp_path):
    _frames(tmp_path / "frames", n=2)
    result = _extract(tmp_path / "frames", tmp_path / "aligned", "--face-type", "f", "--image-size", "128")
    assert result.returncode == 0, result.stderr
    image, meta = load_aligned_face(tmp_path / "aligned" / "00001_0.jpg")
    assert image.shape == (128, 128, 3) and meta.face_type.long_name == "full_face"


def _two_people(path):
    a = cv2.resize(cv2.imread(str(FACES / "obama.jpg")), (300, 375))
    b = cv2.resize(cv2.imread(str(FACES / "grace_hopper.jpg")), (200, 234))
    frame = np.zeros((400, 560, 3), np.uint8)
    frame[:375, :300] = a
    frame[100:334, 340:540] = b
    cv2.imwrite(str(path), frame)


@pytest.mark.slow
def test_max_faces_keeps_the_largest(tmp_path):
    (tmp_path / "frames").mkdir()
    _two_people(tmp_path / "frames" / "group.png")
    assert _extract(tmp_path / "frames", tmp_path / "all", "--max-faces-from-image", "0").returncode == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.jpg")) == ["group_0.jpg", "group_1.jpg"]
    assert _extract(tmp_path / "frames", tmp_path / "one", "--max-faces-from-image", "1").returncode == 0
    assert [p.name for p in (tmp_path / "one").glob("*.jpg")] == ["group_0.jpg"]
    _, meta = load_aligned_face(tmp_path / "one" / "group_0.jpg")
    assert meta.source_rect[2] < 300  # the larger face is the one on the left


def test_defaults_without_a_terminal(tmp_path):
    _frames(tmp_path / "frames", n=1)
    result = run_cli("extract", "--input-dir", str(tmp_path / "frames"), "--output-dir", str(tmp_path / "aligned"))
    assert result.returncode == 0, result.stderr
    assert "Face type: wf (default" in result.stderr and "Image size: 512 (default" in result.stderr
    image, meta = load_aligned_face(tmp_path / "aligned" / "00001_0.jpg")
    assert image.shape == (512, 512, 3) and meta.face_type.long_name == "whole_face"


@pytest.mark.slow
def test_resume_and_force(tmp_path):
    _frames(tmp_path / "frames", n=5)
    out = tmp_path / "aligned"
    assert _extract(tmp_path / "frames", out, "--image-size", "128").returncode == 0
    # Simulate a run killed after frame 3: the journal stops there, and frame 4 has a stray face.
    journal = out / ".extract_journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:3]) + "\n")
    (out / "00005_0.jpg").unlink()
    (out / "00004_7.jpg").write_bytes((out / "00004_0.jpg").read_bytes())
    stamp = (out / "00001_0.jpg").stat().st_mtime_ns
    result = _extract(tmp_path / "frames", out, "--image-size", "128", "--resume")
    assert result.returncode == 0, result.stderr
    assert "Resuming: 3 of 5 frames already done" in result.stderr
    assert "Faces detected:      5" in result.stderr
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"{i:05d}_0.jpg" for i in range(1, 6)]
    assert (out / "00001_0.jpg").stat().st_mtime_ns == stamp  # done frames untouched
    # --force starts over
    result = _extract(tmp_path / "frames", out, "--image-size", "128", "--force")
    assert result.returncode == 0 and "Moved 5 faces of the previous extraction" in result.stderr
    assert len(list(out.glob("*.jpg"))) == 5 and len(list((tmp_path / "aligned_trash").glob("*/*.jpg"))) == 5
    assert len(journal.read_text().splitlines()) == 5


@pytest.mark.slow
def test_killed_run_leaves_only_whole_files_and_resumes(tmp_path):
    _frames(tmp_path / "frames", n=40, size=(480, 360))
    out = tmp_path / "aligned"
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), "extract", "--input-dir", str(tmp_path / "frames"),
                             "--output-dir", str(out), "--detector", "centerface", "--workers", "1",
                             "--image-size", "512"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.jpg"))) < 5:
        time.sleep(0.05)
    import os
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = list(out.glob("*.jpg"))
    assert 5 <= len(written) < 40, "the run should have been killed part-way"
    for p in written:
        load_aligned_face(p)  # every file on disk is complete (atomic writes)
    result = _extract(tmp_path / "frames", out, "--image-size", "512", "--resume")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"{i:05d}_0.jpg" for i in range(1, 41)]
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_bad_frames_are_reported_and_skipped(tmp_path):
    frames = tmp_path / "frames"
    _frames(frames, n=3)
    (frames / "00002.png").write_bytes((frames / "00002.png").read_bytes()[:200])  # truncated
    (frames / "00004.png").write_bytes(b"not an image")
    cv2.imwrite(str(frames / "00005.png"), np.full((240, 320, 3), 90, np.uint8))  # no face
    result = _extract(frames, tmp_path / "aligned", "--image-size", "128")
    assert result.returncode == 0, result.stderr
    assert f"{frames / '00002.png'}: unreadable or truncated image" in result.stderr
    assert f"{frames / '00004.png'}: unreadable or truncated image" in result.stderr
    assert "Skipped files:       2" in result.stderr and "Frames without face: 1" in result.stderr
    assert sorted(p.name for p in (tmp_path / "aligned").glob("*.jpg")) == ["00001_0.jpg", "00003_0.jpg"]


def test_nothing_processable_is_an_error(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "a.png").write_bytes(b"broken")
    result = _extract(frames, tmp_path / "aligned", "--image-size", "128")
    assert result.returncode == 1 and "none of the 1 images could be processed" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _extract(empty, tmp_path / "aligned2", "--image-size", "128")
    assert result.returncode == 1 and "no images in this folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_identity_filter_keeps_only_the_reference_person(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    a = cv2.resize(cv2.imread(str(FACES / "obama.jpg")), (320, 400))
    b = cv2.imread(str(FACES / "biden.jpg"))
    b = cv2.resize(b[: b.shape[1] * 5 // 4], (320, 400))  # the top of the tall portrait: the head
    cv2.imwrite(str(frames / "both.png"), np.hstack([a, b]))
    result = _extract(frames, tmp_path / "aligned", "--image-size", "128",
                      "--reference-face", str(FACES / "obama2.jpg"))  # another photo of the same man
    assert result.returncode == 0, result.stderr
    kept = sorted((tmp_path / "aligned").glob("*.jpg"))
    assert [p.name for p in kept] == ["both_0.jpg"]
    _, meta = load_aligned_face(kept[0])
    assert meta.source_rect[2] <= 320  # the face on the left (Obama)
    assert "identity filter): 1" in result.stderr
    # Without the filter both faces are extracted.
    assert _extract(frames, tmp_path / "all", "--image-size", "128").returncode == 0
    assert len(list((tmp_path / "all").glob("*.jpg"))) == 2


@pytest.mark.slow
def test_smooth_landmarks_lowers_jitter(tmp_path):
    from facelib.detectors import detect
    from facelib.landmarks import landmarks as find_landmarks
    photo = cv2.imread(str(FACES / "grace_hopper.jpg"))
    face = detect(photo)[0]
    truth_photo = find_landmarks(photo, face)
    frames = tmp_path / "frames"
    frames.mkdir()
    mats = smooth_motion(24, (photo.shape[1], photo.shape[0]), (480, 360), seed=3)
    rng = np.random.default_rng(0)
    for i, frame in enumerate(render_frames(photo, mats, (480, 360))):  # with sensor-like noise
        noisy = np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(frames / f"{i + 1:05d}.png"), noisy)
    truth = np.array([transform_points(truth_photo, m) for m in mats])
    jitter = {}
    for flag in ("", "--smooth-landmarks"):
        out = tmp_path / f"aligned{flag}"
        result = _extract(frames, out, "--image-size", "128", *([flag] if flag else []))
        assert result.returncode == 0, result.stderr
        found = np.array([load_aligned_face(out / f"{i + 1:05d}_0.jpg")[1].source_landmarks for i in range(24)])
        error = found - truth
        iod = np.linalg.norm(truth[:, 36:42].mean(1) - truth[:, 42:48].mean(1), axis=1).mean()
        jitter[flag] = np.linalg.norm(error[2:] - 2 * error[1:-1] + error[:-2], axis=2).mean() / iod
        assert np.linalg.norm(error, axis=2).mean() / iod < 0.05  # both within 5% of the eye distance
    assert jitter["--smooth-landmarks"] < 0.7 * jitter[""]


@pytest.mark.slow
def test_manual_fix_opens_the_window_only_for_frames_without_a_face(xserver, tmp_path):
    """`extract --manual-fix` from the command line: the automatic pass finds the face in frame 1,
    the window opens for frame 2 alone, Enter accepts the placed rect and it is written."""
    frames = tmp_path / "frames"
    _frames(frames, n=1)
    rng = np.random.default_rng(1)
    cv2.imwrite(str(frames / "00002.png"), cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), np.uint8), (0, 0), 3))
    cmd = [sys.executable, str(REPO / "main.py"), "extract", "--input-dir", str(frames), "--output-dir",
           str(tmp_path / "aligned"), "--detector", "centerface", "--workers", "1", "--image-size", "128", "--manual-fix"]
    with window_process(xserver, cmd, timeout=60) as window:
        window.wait_title("^Manual pass - frame 1/1 00002")
        window.press("Return")
        out, err = window.proc.communicate(timeout=60)
    proc = window.proc
    assert proc.returncode == 0, err
    assert "Manual pass over the 1 frames where no face was found" in err
    assert sorted(p.name for p in (tmp_path / "aligned").glob("*.jpg")) == ["00001_0.jpg", "00002_0.jpg"]
    assert "Frames without face" not in err

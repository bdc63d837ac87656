"""`sort`: every method on a small real faceset whose properties are known by construction
(a blurred copy, a darkened copy, a mirrored frame, a two-face frame, a bigger frame ...)."""
from __future__ import annotations

import copy
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from core.image_io import read_image, write_image
from faceset.face_file import load_aligned_face, read_face_meta, write_aligned_face
from tests.conftest import REPO, run_cli
from tests.facesets import blurred_copy, extract_faces, make_faceset, make_frames

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper.jpg", "astronaut.jpg"]


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> dict[str, Path]:
    """Ten real faces (two drifting frames of each photo) plus extras with known properties."""
    root = tmp_path_factory.mktemp("sortset")
    base = make_faceset(PHOTOS, root, per_photo=2, size=128)
    assert len(base) == 10
    extras = root / "extras"
    # obama2 is turned to the image's left; its mirror image is turned right.
    frame = read_image(root / "obama2_00001.png")
    write_image(root / "mirror_00001.png", cv2.flip(frame, 1))
    # two people in one frame
    pair = np.hstack([read_image(root / "obama_00001.png"), read_image(root / "biden_00001.png")])
    write_image(root / "pair_00001.png", pair)
    # the same face in a frame twice as large: a bigger source rect
    big = make_frames("grace_hopper.jpg", root / "big", 1, frame_size=(640, 480), prefix="big_")
    found = extract_faces([root / "mirror_00001.png", root / "pair_00001.png", *big], extras)
    assert sorted(p.name for p in found) == ["big_00001_0.jpg", "mirror_00001_0.jpg", "pair_00001_0.jpg", "pair_00001_1.jpg"]
    return {p.name: p for p in base + found}


def make_set(faces: dict[str, Path], tmp_path: Path, names: list[str] | None = None) -> Path:
    """A fresh faceset folder holding the ten base faces (or `names`)."""
    folder = tmp_path / "aligned"
    folder.mkdir()
    for name in names or [n for n in faces if n.count("_") >= 2 and not n.startswith(("mirror", "pair", "big"))]:
        shutil.copy2(faces[name], folder / name)
    return folder


def variant(src: Path, dst: Path, image_fn=None, meta_fn=None) -> Path:
    """A copy of an aligned face with its pixels and/or metadata changed."""
    image, meta = load_aligned_face(src)
    if image_fn is not None:
        image = image_fn(image)
    if meta_fn is not None:
        meta = meta_fn(copy.deepcopy(meta))
    write_aligned_face(dst, image, meta)
    return dst


def order(folder: Path) -> list[str]:
    """Original names of the faces in `folder`, in their (sorted) file order."""
    files = sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
    return [read_face_meta(p).extra["original_name"] for p in files]


def photo(name: str) -> str:
    return name.rsplit("_", 2)[0]


def sort(folder: Path, by: str, **kw):
    from mainscripts.sorter import sort_faceset
    return sort_faceset(folder, by, workers=0, **kw)


# --- sharpness ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["blur", "motion-blur"])
def test_blurred_copies_sort_after_their_sharp_originals(faces, tmp_path, method):
    folder = make_set(faces, tmp_path)
    blurred_copy(folder / "obama_00001_0.jpg", folder / "zz_obama_blurred.jpg", sigma=2.0)
    blurred_copy(folder / "biden_00002_0.jpg", folder / "aa_biden_blurred.jpg", sigma=2.0)
    summary = sort(folder, method)
    names = order(folder)
    assert len(summary.kept) == 12 and not summary.trashed
    assert [p.name for p in summary.kept] == [f"{i:05d}.jpg" for i in range(12)]
    assert names.index("obama_00001_0.jpg") < names.index("zz_obama_blurred.jpg")
    assert names.index("biden_00002_0.jpg") < names.index("aa_biden_blurred.jpg")
    assert set(names[-2:]) == {"zz_obama_blurred.jpg", "aa_biden_blurred.jpg"}


def test_sharpness_drops_with_blur_inside_the_face(faces):
    from facelib.image_measures import sharpness
    from facelib.masks import hull_mask
    image, meta = load_aligned_face(faces["grace_hopper_00001_0.jpg"])
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mask = (hull_mask(image.shape[:2], meta.landmarks) > 0.5).astype(np.uint8)
    values = [sharpness(cv2.GaussianBlur(grey, (0, 0), s) if s else grey, mask) for s in (0, 1.0, 2.0, 4.0)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1] + 0.3
    assert 0.0 <= min(values) and max(values) <= 1.0


# --- pose ------------------------------------------------------------------------------------------------

def test_pose_signs_on_a_real_turned_face_and_its_mirror(faces):
    from facelib.pose import estimate_pose
    pitch, yaw, roll = estimate_pose(read_face_meta(faces["obama2_00001_0.jpg"]).landmarks)
    _, mirror_yaw, mirror_roll = estimate_pose(read_face_meta(faces["mirror_00001_0.jpg"]).landmarks)
    assert yaw < -0.1  # obama2 looks towards the image's left
    assert mirror_yaw > 0.1 and abs(mirror_yaw + yaw) < 0.1
    assert abs(roll) < 0.2 and abs(mirror_roll) < 0.2  # aligned faces are upright


def test_pose_recovers_a_known_rotation_of_the_model():
    """Project the 3D model turned by known angles (yaw right, pitch up) and read them back."""
    from facelib.pose import MODEL_3D, MODEL_INDICES, estimate_pose
    for yaw, pitch, roll in [(0.4, 0.0, 0.0), (-0.3, 0.0, 0.0), (0.0, 0.25, 0.0), (0.0, -0.25, 0.0), (0.0, 0.0, 0.2)]:
        # nose direction (0, 0, -1) turned right by yaw: rotation about y by -yaw; up by pitch: about x by
        # -pitch; roll: about the viewing axis, x towards y (clockwise on screen, y pointing down)
        rot_y = cv2.Rodrigues(np.array([0.0, -yaw, 0.0]))[0]
        rot_x = cv2.Rodrigues(np.array([-pitch, 0.0, 0.0]))[0]
        rot_z = cv2.Rodrigues(np.array([0.0, 0.0, roll]))[0]
        pts3 = MODEL_3D @ (rot_z @ rot_y @ rot_x).T + [0.0, 0.0, 1500.0]
        lm = np.zeros((68, 2))
        lm[MODEL_INDICES] = pts3[:, :2] / pts3[:, 2:] * 1000.0 + 256.0
        p, y, r = estimate_pose(lm, 1000.0)
        assert abs(y - yaw) < 0.05 and abs(p - pitch) < 0.05 and abs(r - roll) < 0.05, (yaw, pitch, roll, y, p, r)
        if roll:
            assert lm[45, 1] > lm[36, 1]  # clockwise: the eye on the image's right is lower


def test_face_yaw_puts_right_turned_first_and_left_turned_last(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    shutil.copy2(faces["mirror_00001_0.jpg"], folder)
    sort(folder, "face-yaw")
    names = order(folder)
    frontal = [names.index(n) for n in ("obama_00001_0.jpg", "obama_00002_0.jpg")]
    assert names.index("mirror_00001_0.jpg") < min(frontal)
    assert min(names.index("obama2_00001_0.jpg"), names.index("obama2_00002_0.jpg")) > max(frontal)
    assert set(names[-2:]) == {"obama2_00001_0.jpg", "obama2_00002_0.jpg"}


def test_face_pitch_orders_a_raised_nose_before_a_lowered_one(faces, tmp_path):
    """Moving the nose up relative to eyes and mouth is what a face looking up does."""
    folder = make_set(faces, tmp_path, ["obama_00001_0.jpg", "biden_00001_0.jpg"])

    def shift_nose(dy):
        def fn(meta):
            meta.landmarks[27:36, 1] += dy
            return meta
        return fn
    variant(folder / "obama_00001_0.jpg", folder / "nose_up.jpg", meta_fn=shift_nose(-5.0))
    variant(folder / "obama_00001_0.jpg", folder / "nose_down.jpg", meta_fn=shift_nose(5.0))
    sort(folder, "face-pitch")
    names = order(folder)
    assert names.index("nose_up.jpg") < names.index("obama_00001_0.jpg") < names.index("nose_down.jpg")


def test_source_rect_size_puts_the_face_from_the_bigger_frame_first(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    shutil.copy2(faces["big_00001_0.jpg"], folder)
    sort(folder, "face-source-rect-size")
    assert order(folder)[0] == "big_00001_0.jpg"


# --- histograms and pixels -----------------------------------------------------------------------------

@pytest.mark.parametrize("method,kw", [("hist", {}), ("absdiff", {"similar": True})])
def test_similarity_chains_keep_frames_of_one_photo_together(faces, tmp_path, method, kw):
    folder = make_set(faces, tmp_path)
    sort(folder, method, **kw)
    people = [photo(n) for n in order(folder)]
    for person in set(people):
        at = [i for i, p in enumerate(people) if p == person]
        assert at[1] - at[0] == 1, (person, people)


def test_absdiff_dissimilar_moves_to_another_photo_while_one_is_left(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    sort(folder, "absdiff", similar=False)
    people = [photo(n) for n in order(folder)]
    for i in range(len(people) - 1):  # the next face is another photo's whenever one is left
        assert people[i + 1] != people[i] or set(people[i + 1:]) == {people[i]}, " ".join(people)


def test_hist_dissim_puts_a_washed_out_face_first(faces, tmp_path):
    """A face squeezed into the top grey levels shares no histogram bins with any real face."""
    folder = make_set(faces, tmp_path)
    variant(folder / "biden_00001_0.jpg", folder / "washed.jpg", image_fn=lambda im: (im // 12 + 232).astype(np.uint8))
    sort(folder, "hist-dissim")
    assert order(folder)[0] == "washed.jpg"


def test_brightness_puts_a_darkened_copy_after_its_original(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    variant(folder / "obama_00002_0.jpg", folder / "dark.jpg", image_fn=lambda im: (im * 0.3).astype(np.uint8))
    variant(folder / "grace_hopper_00001_0.jpg", folder / "bright.jpg",
            image_fn=lambda im: np.clip(im.astype(np.int32) + 120, 0, 255).astype(np.uint8))
    sort(folder, "brightness")
    names = order(folder)
    assert names[0] == "bright.jpg" and names[-1] == "dark.jpg"


def test_hue_puts_a_blue_tinted_copy_first(faces, tmp_path):
    folder = make_set(faces, tmp_path)

    def blue(im):
        hsv = cv2.cvtColor(im, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = 120  # OpenCV hue 0..179: 120 is blue, skin tones are near 10
        hsv[:, :, 1] = np.maximum(hsv[:, :, 1], 80)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    variant(folder / "obama_00001_0.jpg", folder / "blue.jpg", image_fn=blue)
    sort(folder, "hue")
    assert order(folder)[0] == "blue.jpg"


def test_black_puts_a_face_with_a_black_band_last(faces, tmp_path):
    folder = make_set(faces, tmp_path)

    def band(im):
        im = im.copy()
        im[:, : im.shape[1] * 2 // 5] = 0
        return im
    variant(folder / "biden_00001_0.jpg", folder / "band.jpg", image_fn=band)
    sort(folder, "black")
    assert order(folder)[-1] == "band.jpg"


# --- names and frames ----------------------------------------------------------------------------------

def test_origname_restores_extraction_order_after_another_sort(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    sort(folder, "hist")
    sort(folder, "origname")
    assert order(folder) == [
        "astronaut_00001_0.jpg", "astronaut_00002_0.jpg", "biden_00001_0.jpg", "biden_00002_0.jpg",
        "grace_hopper_00001_0.jpg", "grace_hopper_00002_0.jpg", "obama2_00001_0.jpg", "obama2_00002_0.jpg",
        "obama_00001_0.jpg", "obama_00002_0.jpg"]


def test_oneface_trashes_both_faces_of_a_two_face_frame(faces, tmp_path):
    folder = make_set(faces, tmp_path)
    for name in ("pair_00001_0.jpg", "pair_00001_1.jpg"):
        shutil.copy2(faces[name], folder)
    result = run_cli("sort", "--input-dir", str(folder), "--by", "oneface")
    assert result.returncode == 0, result.stderr
    trash = tmp_path / "aligned_trash"
    assert sorted(p.name for p in trash.iterdir()) == ["pair_00001_0.jpg", "pair_00001_1.jpg"]
    assert read_face_meta(trash / "pair_00001_1.jpg").source_filename == "pair_00001.png"
    assert len(order(folder)) == 10 and not any(n.startswith("pair") for n in order(folder))


# --- best faces ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("by", ["best-faces", "final-by-size"])
def test_best_faces_keeps_target_count_spread_over_yaw_and_drops_blurred(faces, tmp_path, by):
    folder = make_set(faces, tmp_path)
    shutil.copy2(faces["mirror_00001_0.jpg"], folder)
    blurred_copy(folder / "obama2_00001_0.jpg", folder / "blurred.jpg", sigma=3.0)
    result = run_cli("sort", "--input-dir", str(folder), "--by", by, "--target-count", "5")
    assert result.returncode == 0, result.stderr
    kept = order(folder)
    trash = tmp_path / "aligned_trash"
    assert len(kept) == 5 and len(list(trash.iterdir())) == 7
    assert "mirror_00001_0.jpg" in kept  # the most right-turned face
    left_turned = {"obama2_00001_0.jpg", "obama2_00002_0.jpg", "blurred.jpg"}  # the blurred one is obama2 too
    assert left_turned & set(kept)
    if by == "best-faces":  # ranks by sharpness (final-by-size ranks by source rect, a tie here)
        assert "blurred.jpg" not in kept


def test_water_fill_gives_underfull_bins_everything_and_spreads_the_rest():
    from faceset.sort_methods import water_fill
    assert water_fill([1, 10, 10], 12) in ([1, 6, 5], [1, 5, 6])
    assert water_fill([3, 3, 3], 100) == [3, 3, 3]
    assert water_fill([0, 2, 0, 2, 0, 2], 3) == [0, 1, 0, 1, 0, 1]
    assert sum(water_fill([5] * 128, 7)) == 7


# --- robustness ------------------------------------------------------------------------------------------

def test_interrupted_sort_loses_nothing_and_the_next_sort_finishes_it(faces, tmp_path, monkeypatch):
    import core.rename_journal as rj
    folder = make_set(faces, tmp_path)
    cv2.imwrite(str(folder / "plain.jpg"), np.full((64, 64, 3), 90, np.uint8))  # goes to the trash
    sort(folder, "hist")  # names become 00000.jpg ..., so the next sort is a true permutation
    before = sorted(order(folder))
    real_replace = os.replace
    for fail_at in (4, 14):  # once while staging, once while placing
        calls = {"n": 0}

        def flaky(src, dst):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(5, "Input/output error")
            return real_replace(src, dst)
        monkeypatch.setattr(rj.os, "replace", flaky)
        with pytest.raises(UserError, match="run the command again"):
            sort(folder, "brightness")
        monkeypatch.setattr(rj.os, "replace", real_replace)
        everywhere = list(folder.glob("*.jpg")) + list((folder / rj.STAGING_NAME).glob("*.jpg"))
        assert sorted(read_face_meta(p).extra["original_name"] for p in everywhere) == before
        summary = sort(folder, "origname")  # finishes the interrupted sort first, then sorts
        assert not (folder / rj.JOURNAL_NAME).exists() and not (folder / rj.STAGING_NAME).exists()
        assert [p.name for p in summary.kept] == [f"{i:05d}.jpg" for i in range(10)]
        assert sorted(order(folder)) == before
    assert [p.name for p in (tmp_path / "aligned_trash").iterdir()] == ["plain.jpg"]


def test_files_without_metadata_are_reported_and_trashed_not_deleted(faces, tmp_path):
    folder = make_set(faces, tmp_path, ["obama_00001_0.jpg", "biden_00001_0.jpg"])
    plain = np.full((64, 64, 3), 120, np.uint8)
    cv2.imwrite(str(folder / "holiday.jpg"), plain)
    cv2.imwrite(str(folder / "notes.png"), plain)
    (folder / "broken.jpg").write_bytes((folder / "obama_00001_0.jpg").read_bytes()[:300])
    originals = {n: (folder / n).read_bytes() for n in ("holiday.jpg", "notes.png", "broken.jpg")}
    result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
    assert result.returncode == 0, result.stderr
    for name in originals:
        assert name in result.stderr
        assert (tmp_path / "aligned_trash" / name).read_bytes() == originals[name]
    assert sorted(p.name for p in folder.iterdir()) == ["00000.jpg", "00001.jpg"]


def test_workers_out_of_range_is_one_line_naming_the_flag_and_nothing_moves(faces, tmp_path):
    folder = make_set(faces, tmp_path, ["obama_00001_0.jpg", "biden_00001_0.jpg"])
    for bad in ("0", str((os.cpu_count() or 1) + 1)):  # the flag's range is 1..cores, as DFL's questions
        result = run_cli("sort", "--input-dir", str(folder), "--by", "blur", "--workers", bad)
        assert result.returncode == 1 and len(result.error_lines) == 1, result.stderr
        assert "--workers must be an integer from 1 to" in result.error_lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["biden_00001_0.jpg", "obama_00001_0.jpg"]


def test_a_worker_process_measures_the_faces_as_this_process_does(faces, tmp_path):
    """The measures of a worker process (it reads each face itself, through faceset.Face) sort alike."""
    (tmp_path / "here").mkdir()
    (tmp_path / "pool").mkdir()
    here, pool = make_set(faces, tmp_path / "here"), make_set(faces, tmp_path / "pool")
    blurred_copy(here / "obama_00001_0.jpg", here / "blurred.jpg")
    blurred_copy(pool / "obama_00001_0.jpg", pool / "blurred.jpg")
    sort(here, "blur")
    result = run_cli("sort", "--input-dir", str(pool), "--by", "blur", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert order(pool) == order(here) and order(pool)[-1] == "blurred.jpg"


def test_bad_folders_give_one_error_line_and_exit_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing"):
        result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
        assert result.returncode == 1
        assert len(result.error_lines) == 1 and str(folder) in result.error_lines[0]
    assert run_cli("sort", "--input-dir", str(empty), "--by", "sideways").returncode == 2  # argparse


def test_without_by_a_script_gets_hist_and_a_terminal_gets_the_menu(faces, tmp_path):
    folder = make_set(faces, tmp_path, ["obama_00001_0.jpg", "biden_00001_0.jpg", "astronaut_00001_0.jpg"])
    result = run_cli("sort", "--input-dir", str(folder))
    assert result.returncode == 0 and "sorting by hist (default" in result.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), "sort", "--input-dir", str(folder)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=REPO)
    os.close(slave)

    def read_until(marker: bytes | None, out: bytes = b"") -> bytes:
        deadline = time.time() + 60
        while (marker is None or marker not in out) and time.time() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif marker is None and proc.poll() is not None:
                break
        return out
    try:
        out = read_until(b"Sort method")
        assert b"[7] brightness" in out and b"[5] Sort method" in out
        os.write(master, b"7\n")
        out = read_until(None, out)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(master)
    assert b"Sorting 3 files by brightness" in out

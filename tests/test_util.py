"""`util`: pack/unpack, metadata save/restore around an external editor, filename recovery, debug
images and mask export, on real extracted faces."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceset.face_file import FaceMeta, load_aligned_face, read_face_meta, update_face_meta
from faceset.pack import PACK_NAME, read_packed
from tests.conftest import run_cli
from tests.facesets import copy_faceset, make_faceset, write_legacy_pack

POLY = np.array([[30, 30], [90, 30], [90, 90], [30, 90]], np.float32)  # a square, face pixels


@pytest.fixture(scope="session")
def faceset(tmp_path_factory) -> Path:
    """Six real faces at 128 px; the first carries mask polygons, the second an XSeg mask."""
    root = tmp_path_factory.mktemp("utilset")
    files = make_faceset(["obama.jpg", "biden.jpg", "grace_hopper.jpg"], root, per_photo=2, size=128)
    assert len(files) == 6
    meta = read_face_meta(files[0])
    meta.seg_ie_polys = [{"type": 1, "pts": POLY}, {"type": 0, "pts": POLY[:3] * 0.5 + 45}]
    update_face_meta(files[0], meta)
    meta = read_face_meta(files[1])
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 8:32] = 1.0  # left half of the middle, at half resolution
    meta.xseg_mask = mask
    update_face_meta(files[1], meta)
    return root / "aligned"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


def same_meta(a: FaceMeta, b: FaceMeta) -> bool:
    arrays = ("landmarks", "source_landmarks", "image_to_face_mat")
    if any(not np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays):
        return False
    if (a.face_type, a.source_filename, a.source_rect, a.extra) != (b.face_type, b.source_filename, b.source_rect, b.extra):
        return False
    if (a.seg_ie_polys is None) != (b.seg_ie_polys is None):
        return False
    if a.seg_ie_polys and any(p["type"] != q["type"] or not np.array_equal(p["pts"], q["pts"])
                              for p, q in zip(a.seg_ie_polys, b.seg_ie_polys)):
        return False
    if (a.xseg_mask is None) != (b.xseg_mask is None):
        return False
    return a.xseg_mask is None or np.abs(a.xseg_mask - b.xseg_mask).max() <= 1 / 255 + 1e-6


# --- pack ------------------------------------------------------------------------------------------------

def test_pack_then_unpack_is_byte_identical(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = snapshot(folder)
    metas = {n: read_face_meta(folder / n) for n in before}
    result = run_cli("util", "--input-dir", str(folder), "--pack-faceset")  # no terminal: default deletes
    assert result.returncode == 0, result.stderr
    assert "Delete original files?" in result.stderr
    assert [p.name for p in folder.iterdir()] == [PACK_NAME]
    assert [name for name, _ in read_packed(folder / PACK_NAME)] == list(before)
    result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
    assert result.returncode == 0, result.stderr
    assert snapshot(folder) == before
    assert not (folder / PACK_NAME).exists()
    assert all(same_meta(read_face_meta(folder / n), m) for n, m in metas.items())


def test_pack_can_keep_originals_and_refuses_to_overwrite_a_pack(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = snapshot(folder)
    assert run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--keep-originals").returncode == 0
    assert snapshot(folder) == before
    again = run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--delete-originals")
    assert again.returncode == 1 and len(again.error_lines) == 1 and "already exists" in again.error_lines[0]
    assert snapshot(folder) == before


def test_damaged_pack_is_refused_and_nothing_is_written(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    entries = list(snapshot(folder).items())
    for p in folder.glob("*.jpg"):
        p.unlink()
    pak = folder / PACK_NAME
    write_legacy_pack(pak, entries)  # the first format, still read (zip packs: tests/test_faceset.py)
    good = pak.read_bytes()
    for damaged, reason in ((good[:-100], "truncated"), (good[:-50] + bytes([good[-50] ^ 0xFF]) + good[-49:], "SHA-256"),
                            (b"PK\x03\x04" + good[4:], "not a packed faceset")):
        pak.write_bytes(damaged)
        result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
        assert result.returncode == 1 and len(result.error_lines) == 1 and reason in result.error_lines[0]
        assert [p.name for p in folder.iterdir()] == [PACK_NAME]


def test_unpack_never_overwrites_a_different_file(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    assert run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--delete-originals").returncode == 0
    first = read_packed(folder / PACK_NAME)[0][0]
    (folder / first).write_bytes(b"someone else's file")
    result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
    assert result.returncode == 1 and first in result.error_lines[0]
    assert sorted(p.name for p in folder.iterdir()) == sorted([PACK_NAME, first])
    assert (folder / first).read_bytes() == b"someone else's file"


# --- metadata around an external editor ----------------------------------------------------------------

def test_restore_after_external_resize_returns_original_size_and_metadata(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    metas = {p.name: read_face_meta(p) for p in folder.glob("*.jpg")}
    assert run_cli("util", "--input-dir", str(folder), "--save-faceset-metadata").returncode == 0
    for p in folder.glob("*.jpg"):  # an editor: upscale 2x, brighten, save a plain JPEG (header lost)
        image, _ = load_aligned_face(p)
        edited = cv2.resize(cv2.add(image, 20), (256, 256), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(p), edited)
        assert read_face_meta(p) is None
    result = run_cli("util", "--input-dir", str(folder), "--restore-faceset-metadata")
    assert result.returncode == 0, result.stderr
    for name, meta in metas.items():
        image, restored = load_aligned_face(folder / name)
        assert image.shape == (128, 128, 3)
        assert same_meta(restored, meta), name
    assert not list(folder.glob("*.json"))


def test_restore_keeps_same_size_edits_bit_for_bit_and_keeps_the_file_on_failure(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    assert run_cli("util", "--input-dir", str(folder), "--save-faceset-metadata").returncode == 0
    names = sorted(p.name for p in folder.glob("*.jpg"))
    edited = folder / names[0]
    image, _ = load_aligned_face(edited)
    cv2.rectangle(image, (10, 10), (40, 40), (0, 0, 255), -1)
    cv2.imwrite(str(edited), image)
    edited_pixels = cv2.imread(str(edited))
    (folder / names[1]).unlink()  # the user lost one file
    result = run_cli("util", "--input-dir", str(folder), "--restore-faceset-metadata")
    assert result.returncode == 1 and "could not be restored" in result.error_lines[0]
    assert names[1] in result.stderr
    assert list(folder.glob("*.json"))  # kept for another try
    restored, meta = load_aligned_face(edited)
    assert np.array_equal(restored, edited_pixels) and meta.source_filename


# --- names, debug images, masks --------------------------------------------------------------------------

def test_recover_original_filenames_after_sort(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = snapshot(folder)
    assert run_cli("sort", "--input-dir", str(folder), "--by", "brightness").returncode == 0
    assert sorted(p.name for p in folder.glob("*.jpg")) == [f"{i:05d}.jpg" for i in range(6)]
    result = run_cli("util", "--input-dir", str(folder), "--recover-original-aligned-filename")
    assert result.returncode == 0, result.stderr
    after = snapshot(folder)
    assert sorted(after) == sorted(before)
    for name in after:  # the same face under its old name (metadata now also holds the old name)
        assert read_face_meta(folder / name).source_filename == name.rsplit("_", 1)[0] + ".png"


def test_recover_without_a_remembered_name_uses_the_source_frame(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    (folder / "obama_00001_0.jpg").rename(folder / "renamed_by_hand.jpg")
    (folder / "obama_00002_0.jpg").rename(folder / "obama_00001_0.jpg")  # squats on the other's name
    assert run_cli("util", "--input-dir", str(folder), "--recover-original-aligned-filename").returncode == 0
    for p in folder.glob("obama_*.jpg"):
        assert read_face_meta(p).source_filename == p.name.rsplit("_", 1)[0] + ".png"
    assert len(list(folder.glob("*.jpg"))) == 6 and not (folder / "renamed_by_hand.jpg").exists()


def test_landmarks_debug_images_show_the_landmarks(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    result = run_cli("util", "--input-dir", str(folder), "--add-landmarks-debug-images")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "aligned_landmarks_debug"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_debug.jpg" for p in folder.glob("*.jpg"))
    face = sorted(folder.glob("*.jpg"))[2]
    debug = cv2.imread(str(out / f"{face.stem}_debug.jpg")).astype(int)
    x, y = np.round(read_face_meta(face).landmarks[30]).astype(int)  # nose tip: a green dot
    b, g, r = debug[y, x]
    assert g > 150 and g > r + 60 and g > b + 60


def test_export_mask_from_polygons_and_xseg_and_fails_for_faces_without(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    result = run_cli("util", "--input-dir", str(folder), "--export-faceset-mask")
    assert result.returncode == 1 and "4 faces have no mask" in result.error_lines[0]
    out = tmp_path / "aligned_mask"
    first, second = sorted(folder.glob("*.jpg"))[:2]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{first.stem}_mask.jpg", f"{second.stem}_mask.jpg"])
    poly = cv2.imread(str(out / f"{first.stem}_mask.jpg"), cv2.IMREAD_GRAYSCALE)
    assert poly[35, 80] > 200 and poly[10, 10] < 50 and poly[95, 60] < 50  # inside / outside the square
    assert poly[65, 80] < 50 and poly[85, 65] > 200  # inside the exclude triangle (60,60)-(90,60)-(90,90); beside it
    xseg = cv2.imread(str(out / f"{second.stem}_mask.jpg"), cv2.IMREAD_GRAYSCALE)
    assert xseg.shape == (128, 128)
    assert xseg[64, 30] > 200 and xseg[64, 100] < 50 and xseg[10, 30] < 50


def test_util_without_an_action_or_folder_is_one_error(tmp_path):
    result = run_cli("util", "--input-dir", str(tmp_path))
    assert result.returncode == 1 and "nothing to do" in result.error_lines[0]
    result = run_cli("util", "--input-dir", str(tmp_path / "missing"), "--pack-faceset")
    assert result.returncode == 1 and len(result.error_lines) == 1
    result = run_cli("util", "--input-dir", str(tmp_path), "--unpack-faceset")
    assert result.returncode == 1 and PACK_NAME in result.error_lines[0]


def test_interrupted_unpack_keeps_the_pack_and_a_second_run_finishes(faceset, tmp_path, monkeypatch):
    from core.errors import UserError
    from mainscripts import util
    folder = copy_faceset(faceset, tmp_path)
    before = snapshot(folder)
    util.pack_faceset(folder, delete_originals=True)
    real_write, calls = util.atomic_write_bytes, []

    def disk_full_on_third(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_write(path, data)
    monkeypatch.setattr(util, "atomic_write_bytes", disk_full_on_third)
    with pytest.raises(UserError, match="run --unpack-faceset again"):
        util.unpack_faceset(folder)
    assert (folder / PACK_NAME).exists() and len(snapshot(folder)) == 2
    monkeypatch.undo()
    util.unpack_faceset(folder)
    assert snapshot(folder) == before and not (folder / PACK_NAME).exists()
    # a packed folder is not an empty one: sort says what to do
    util.pack_faceset(folder, delete_originals=True)
    result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
    assert result.returncode == 1 and "--unpack-faceset" in result.error_lines[0]

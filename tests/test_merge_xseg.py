"""DFL's XSeg mask modes in `merge`, on real frames: with a stand-in XSeg model (tests/merge_standin.py:
the face hull without its lower third) each mode changes the merged frame where its mask differs from
the learned one and nowhere else; XSeg-dst takes a face's baked mask when it has one; no XSeg model is
one clear error before anything is written; the window's `x` reaches the modes. The slow test trains a
tiny XSeg with `train` and merges through the CLI."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from faceset.face_file import read_face_meta, update_face_meta
from mainscripts import merger_cli
from merger.config import MASK_MODES
from tests.conftest import run_cli
from tests.merge_standin import TINT, fake_models, make_dst, masker_for, merge_args, standin_for

XSEG_MODES = ("XSeg-prd", "XSeg-dst", "XSeg-prd*XSeg-dst", "learned-prd*learned-dst*XSeg-prd*XSeg-dst")
R = 64  # the stand-in face model's resolution (the stand-in masker's is 48: its masks are resized)


@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    return make_dst(tmp_path_factory.mktemp("data_dst"), count=3)


pytestmark = pytest.mark.usefixtures("no_terminal")


def _merge(dst: Path, out: Path, mask_mode: str, masker=None, aligned: Path | None = None, **settings):
    """Batch-merge dst's frames with the stand-in model (colour transfer off: pixels follow the mask
    alone); returns {frame name: (image, mask)}."""
    merger_cli.merge(str(dst), str(out / "merged"), str(out / "mm"), str(aligned or dst / "aligned"), str(out / "model"),
                     "SAEHD", workers=0, predictor=standin_for(dst), xseg=masker,
                     settings={"mask_mode": mask_mode, "color_transfer": "none", **settings})
    return {p.name: (read_image(p), cv2.imread(str(out / "mm" / p.name), cv2.IMREAD_UNCHANGED))
            for p in sorted((out / "merged").glob("*.png"))}


def _frame_landmarks(dst: Path) -> dict[str, tuple[np.ndarray, Path]]:
    """Frame name -> (frame landmarks of its face, its aligned file)."""
    out = {}
    for f in sorted((dst / "aligned").glob("*.jpg")):
        meta = read_face_meta(f)
        out[meta.source_filename] = (np.asarray(meta.source_landmarks, np.float64), f)
    return out


def test_the_xseg_modes_come_after_the_learned_ones_in_dfls_order():
    assert MASK_MODES[6:] == XSEG_MODES and len(MASK_MODES) == 10


def test_each_xseg_mode_changes_the_frame_only_where_its_mask_cuts_the_learned_one(dst, tmp_path):
    learned = _merge(dst, tmp_path / "learned", "learned-prd*learned-dst")
    lms = _frame_landmarks(dst)
    for k, mode in enumerate(XSEG_MODES):
        masker = masker_for(dst, resolution=R)  # at the model's resolution its hull is the learned one, cut
        got = _merge(dst, tmp_path / f"x{k}", mode, masker)
        assert masker.calls, mode
        for name, (image, mask) in got.items():
            ref_image, ref_mask = learned[name]
            mask_diff = mask.astype(int) != ref_mask.astype(int)
            changed = np.any(image != ref_image, axis=2)
            near = cv2.dilate(mask_diff.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # 8-bit masks round
            assert not (changed & ~near).any(), (mode, name)  # same mask, same pixels
            assert changed.sum() > 300, (mode, name)  # the cut is visible
            big = np.abs(mask.astype(int) - ref_mask.astype(int)) > 16
            assert big.sum() > 200 and (mask[big] < ref_mask[big]).mean() > 0.95  # it removes (cubic resizes ring)
            # ... the lower third of the face: every changed pixel lies low in the model's crop
            ys, xs = np.nonzero(changed)
            crop_y = CropSpec(R, FaceType.WHOLE_FACE).of(lms[name][0]).to_face(np.stack([xs, ys], 1).astype(float))[:, 1]
            assert crop_y.min() > R * 2 / 3 - 3, (mode, name, crop_y.min())


def test_xseg_prd_sees_the_predicted_face_and_xseg_dst_the_dst_face(dst, tmp_path):
    prd, dst_masker = masker_for(dst), masker_for(dst)
    _merge(dst, tmp_path / "p", "XSeg-prd", prd)
    _merge(dst, tmp_path / "d", "XSeg-dst", dst_masker)
    # One call per batch of frames, at the masker's resolution, one face per frame.
    assert sum(len(c) for c in prd.calls) == 3 and sum(len(c) for c in dst_masker.calls) == 3
    assert prd.calls[0].shape[1:] == (48, 48, 3) and dst_masker.calls[0].shape[1:] == (48, 48, 3)
    seen_prd = np.concatenate(prd.calls).astype(np.float32) / 255
    seen_dst = np.concatenate(dst_masker.calls).astype(np.float32) / 255
    # The stand-in's prediction is the dst face mirrored and tinted: so is what XSeg-prd was given.
    as_predicted = np.clip(seen_dst[:, :, ::-1] * TINT, 0, 1)
    assert np.abs(seen_prd - as_predicted).mean() < 0.03
    assert np.abs(seen_prd - seen_dst).mean() > 2 * np.abs(seen_prd - as_predicted).mean()


def _bake_left_half(aligned_file: Path) -> np.ndarray:
    """Bake the left half of the aligned face as its XSeg mask (as `xseg apply` stores one); returns it."""
    meta = read_face_meta(aligned_file)
    size = read_image(aligned_file).shape[0]
    mask = np.zeros((size, size), np.float32)
    mask[:, : size // 2] = 1.0
    meta.xseg_mask = mask
    update_face_meta(aligned_file, meta)
    return mask


def test_xseg_dst_takes_a_baked_mask_when_the_face_has_one_and_the_model_otherwise(dst, tmp_path):
    aligned = tmp_path / "aligned"
    shutil.copytree(dst / "aligned", aligned)
    lms = _frame_landmarks(dst)
    baked_frames = sorted(lms)[:2]
    for name in baked_frames:
        _bake_left_half(aligned / lms[name][1].name)
    masker = masker_for(dst)
    got = _merge(dst, tmp_path / "baked", "XSeg-dst", masker, aligned)
    assert sum(len(c) for c in masker.calls) == 1  # only the face without a baked mask went to the model
    by_model = _merge(dst, tmp_path / "model", "XSeg-dst", masker_for(dst))
    for name, (image, mask) in got.items():
        if name not in baked_frames:
            np.testing.assert_array_equal(image, by_model[name][0])
            continue
        # Where the mask went, by the aligned face's own frame -> face matrix: its left half, inside the
        # model's crop square.
        meta = read_face_meta(aligned / lms[name][1].name)
        size = meta.xseg_mask.shape[0]
        h, w = mask.shape
        left = cv2.warpAffine(meta.xseg_mask, meta.image_to_face_mat, (w, h), flags=cv2.WARP_INVERSE_MAP)
        square = cv2.warpAffine(np.ones((R, R), np.float32), CropSpec(R, FaceType.WHOLE_FACE).of(lms[name][0]).mat, (w, h),
                                flags=cv2.WARP_INVERSE_MAP)
        expected = (left > 0.5) & (square > 0.5)
        merged = mask > 127
        iou = (expected & merged).sum() / (expected | merged).sum()
        assert size == 128 and iou > 0.9, (name, iou)


def test_a_baked_mask_of_another_face_type_and_size_lands_where_its_face_was(dst):
    """A FULL-face aligned face of 96 px, all mask, moved into a WHOLE_FACE crop of 64: it covers the FULL
    square's area in that crop (scaled by the two crops' pixel scales), centred on the face."""
    from merger.xseg_masks import BakedMask
    lm = next(iter(_frame_landmarks(dst).values()))[0]
    baked = BakedMask.from_array(np.ones((96, 96), np.float32), FaceType.FULL)
    wf = CropSpec(R, FaceType.WHOLE_FACE).of(lm)
    full = CropSpec(96, FaceType.FULL).of(lm)
    moved = baked.in_crop(lm, wf)
    expected_area = (96 * wf.pixel_scale / full.pixel_scale) ** 2
    assert moved.shape == (R, R) and abs(moved.sum() - expected_area) < 0.05 * expected_area
    centre = full.to_frame(np.array([48.0, 48.0]))
    ys, xs = np.nonzero(moved > 0.5)
    assert np.abs(np.array([xs.mean(), ys.mean()]) - wf.to_face(centre)).max() < 1.5


def test_an_xseg_mode_without_an_xseg_model_is_one_line_and_writes_nothing(dst, tmp_path):
    model_dir = fake_models(tmp_path / "model", "m")  # a face model, no XSeg model beside it
    out, mask = tmp_path / "merged", tmp_path / "merged_mask"
    r = run_cli(*merge_args(dst, out, mask, model_dir, "--mask-mode", "XSeg-prd"))
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr
    line = r.error_lines[0]
    assert "no trained XSeg model" in line and str(model_dir) in line and "XSeg-prd" in line
    assert not out.exists() and not mask.exists()
    r = run_cli(*merge_args(dst, out, mask, model_dir, "--mask-mode", "XSeg-dst", "--xseg-model-dir",
                            str(tmp_path / "nowhere")))
    assert r.returncode == 1 and "nowhere" in r.error_lines[-1] and "XSeg model folder not found" in r.error_lines[-1]
    assert not out.exists()


def test_the_batch_merge_loads_the_xseg_model_only_for_an_xseg_mode(dst, tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(merger_cli, "check_xseg_model", lambda folder, why: None)
    monkeypatch.setattr(merger_cli, "load_xseg_model", lambda folder, why: loaded.append(folder) or masker_for(dst))
    merger_cli.merge(str(dst), str(tmp_path / "a"), str(tmp_path / "am"), str(dst / "aligned"), str(tmp_path / "model"),
                     "SAEHD", workers=0, predictor=standin_for(dst), settings={"mask_mode": "dst"})
    assert loaded == []
    merger_cli.merge(str(dst), str(tmp_path / "b"), str(tmp_path / "bm"), str(dst / "aligned"), str(tmp_path / "model"),
                     "SAEHD", workers=0, predictor=standin_for(dst), settings={"mask_mode": "XSeg-prd"},
                     xseg_model_dir=str(tmp_path / "xseg"))
    assert loaded == [tmp_path / "xseg"]


WINDOW_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from core import log
from mainscripts import merger_cli
from tests.merge_standin import masker_for, standin_for
log.setup()
dst, out = Path({dst!r}), Path({out!r})
merger_cli.merge(str(dst), str(out / "merged"), str(out / "mm"), str(dst / "aligned"), str(out / "model"), "SAEHD",
                 interactive=True, predictor=standin_for(dst), xseg=masker_for(dst) if {with_xseg!r} else None)
"""


def _window(xserver, dst: Path, out: Path, with_xseg: bool):
    import sys

    from tests.test_merge_window import REPO
    from tests.xserver import window_process
    (out / "model").mkdir(parents=True, exist_ok=True)  # the face model's folder, where DFL keeps XSeg too
    cmd = [sys.executable, "-c", WINDOW_DRIVER.format(repo=str(REPO), dst=str(dst), out=str(out), with_xseg=with_xseg)]
    return window_process(xserver, cmd, timeout=40.0, log=out / "window.log", cwd=REPO)


def test_the_window_x_key_reaches_the_xseg_modes_with_the_pixels_of_batch_mode(xserver, dst, tmp_path):
    batch = _merge(dst, tmp_path / "batch", "XSeg-prd", masker_for(dst), color_transfer="rct")
    with _window(xserver, dst, tmp_path / "win", with_xseg=True) as win:
        win.wait_title(r"^Merger - frame 1/3 .* mask=learned-prd\*learned-dst .* - help$")
        win.key("Tab", r"^Merger - frame 1/3 .*zoom=1\.0$")
        win.key("x", r" mask=learned-prd\+learned-dst ")
        win.key("x", r" mask=XSeg-prd ct=rct ")
        shown = read_image(tmp_path / "win" / "merged" / "00001.png")
        np.testing.assert_array_equal(shown, batch["00001.png"][0])  # what the window shows is what batch makes
        for mode in (r"XSeg-dst", r"XSeg-prd\*XSeg-dst", r"learned-prd\*learned-dst\*XSeg-prd\*XSeg-dst", "full"):
            win.key("x", rf" mask={mode} ")
        win.press("Escape")
        win.wait_exit()

    # Without an XSeg model (none beside the face model), x skips the XSeg modes and says why.
    with _window(xserver, dst, tmp_path / "plain", with_xseg=False) as win:
        win.wait_title(r"^Merger - frame 1/3 .* - help$")
        win.key("Tab", r"^Merger - frame 1/3 .*zoom=1\.0$")
        win.key("x", r" mask=learned-prd\+learned-dst ")
        win.key("x", r" mask=full .* - XSeg off$")
        win.press("Escape")
        win.wait_exit()
    said = (tmp_path / "plain" / "window.log").read_text()
    assert "XSeg mask modes are skipped" in said and "no trained XSeg model" in said and str(tmp_path / "plain") in said


@pytest.mark.slow
def test_cli_merges_with_a_tiny_xseg_trained_beside_a_tiny_face_model(dst, tmp_path):
    """The user's path: `train` a tiny SAEHD and a tiny XSeg into one model folder, then `merge
    --mask-mode XSeg-prd*XSeg-dst` (the XSeg model is found beside the face model)."""
    from tests.facesets import extract_faces, make_frames
    src = make_frames("obama2.jpg", tmp_path / "src", count=4)
    extract_faces(src, tmp_path / "src" / "aligned", size=64)
    model_dir = tmp_path / "model"
    common = ["--model-dir", str(model_dir), "--silent-start", "--no-preview", "--cpu-only", "--batch-size", "2"]
    r = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                str(dst / "aligned"), "--model", "SAEHD", "--resolution", "32", "--archi", "df-ud", "--ae-dims", "32",
                "--e-dims", "16", "--d-dims", "16", "--d-mask-dims", "8", "--face-type", "wf", "--target-iteration", "2",
                *common)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("train", "--training-data-src-dir", str(tmp_path / "src" / "aligned"), "--training-data-dst-dir",
                str(dst / "aligned"), "--model", "XSeg", "--resolution", "64", "--dims", "4", "--face-type", "wf",
                "--target-iteration", "2", *common)
    assert r.returncode == 0, r.stderr[-2000:]
    out, mask = tmp_path / "merged", tmp_path / "merged_mask"
    r = run_cli(*merge_args(dst, out, mask, model_dir), "--mask-mode", "XSeg-prd*XSeg-dst", "--workers", "1", "--cpu-only")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "XSeg model 'new'" in r.stdout + r.stderr
    for p in sorted(dst.glob("*.png")):
        image, frame = read_image(out / p.name), read_image(p)
        m = cv2.imread(str(mask / p.name), cv2.IMREAD_UNCHANGED)
        assert image.shape == frame.shape and m.shape == frame.shape[:2]
        np.testing.assert_array_equal(image[m == 0], frame[m == 0])  # outside the (XSeg) mask: the frame

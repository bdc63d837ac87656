"""Reenact (issue 16): the landmark drawing, carrying an expression onto another face shape, and a
tiny model that trains on real faces, saves, resumes, follows an opened mouth and merges."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.image_io import read_image
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from facelib.landmark_sketch import CHANNEL_NAMES, draw_sketch
from facelib.landmarks import inter_ocular
from facelib.reenact_geometry import crop_landmarks, expression_error, mouth_opening, retarget
from faceset.face_file import read_face_meta
from tests.conftest import run_cli
from tests.facesets import make_faceset

LOWER_LIP = np.r_[55:60, 65:68]  # outer and inner lower lip
CHIN = np.r_[5:12]
TINY = dict(resolution=32, face_type="f", g_dims=8, gan_power=0.0, gan_dims=8, dssim_loss=True, temporal_input=False,
            learning_rate=1e-3, random_src_flip=False, batch_size=4, autobackup_hour=0, write_preview_history=False)
ITERATIONS = 60  # the PatchGAN is off here (one compiled step less); the CLI test trains with it


def open_mouth(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """The landmarks with the lower lip moved down by `amount` eye distances and the chin by 0.7x that."""
    lm = np.array(landmarks, np.float32).reshape(-1, 68, 2)
    for p in lm:
        step = amount * inter_ocular(p)
        p[LOWER_LIP, 1] += step
        p[CHIN, 1] += 0.7 * step
    return lm


@pytest.fixture(scope="module")
def facesets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reenact_facesets")
    src = make_faceset(["obama.jpg", "obama2.jpg"], root / "src", per_photo=4, size=64)
    dst = make_faceset(["biden.jpg"], root / "dst", per_photo=5, size=64)
    assert len(src) >= 6 and len(dst) >= 4
    return root / "src" / "aligned", root / "dst" / "aligned"


def _crop_of(aligned: Path, res: int = 64, face_type: FaceType = FaceType.FULL) -> tuple[np.ndarray, np.ndarray]:
    """A real face of the faceset re-cropped to `face_type` at `res` px, and its landmarks there."""
    path = sorted(aligned.glob("*.jpg"))[0]
    meta = read_face_meta(path)
    crop = CropSpec(res, face_type).of(meta.landmarks)
    return crop.warp(read_image(path), cv2.INTER_AREA), crop.to_face(meta.landmarks).astype(np.float32)


# --- drawing and geometry (fast) -------------------------------------------------------------------

def test_sketch_draws_each_part_in_its_own_channel_and_an_opened_mouth_only_moves_the_lips(facesets):
    _, lm = _crop_of(facesets[0])
    sketch = draw_sketch(lm, 64)
    assert sketch.shape == (64, 64, len(CHANNEL_NAMES)) and sketch.dtype == np.float32
    assert all(sketch[..., c].max() > 0.5 for c in range(len(CHANNEL_NAMES)))  # every part is drawn
    lips = CHANNEL_NAMES.index("lips")
    lip_ys = np.nonzero(sketch[..., lips] > 0.3)[0]
    assert lm[48:68, 1].min() - 2 <= lip_ys.min() and lip_ys.max() <= lm[48:68, 1].max() + 2
    opened = lm.copy()
    opened[LOWER_LIP, 1] += 3.0
    moved = np.abs(draw_sketch(opened, 64) - sketch).sum(axis=(0, 1))
    assert moved[lips] > 5 and np.all(np.delete(moved, lips) == 0), moved
    assert not draw_sketch(np.full((68, 2), np.nan), 64).any()  # no landmarks: a blank drawing, no crash


def test_retarget_keeps_the_src_shape_and_carries_the_dst_expression(facesets):
    _, src_lm = _crop_of(facesets[0])
    _, dst_lm = _crop_of(facesets[1])
    np.testing.assert_allclose(retarget(dst_lm, dst_lm, src_lm), src_lm, atol=1e-4)  # dst at rest: src at rest
    opened = open_mouth(dst_lm, 0.3)[0]
    driven = retarget(opened, dst_lm, src_lm)
    assert mouth_opening(driven)[0] > mouth_opening(src_lm)[0] + 0.2
    np.testing.assert_allclose(driven[17:48], src_lm[17:48], atol=1e-4)  # brows, nose, eyes: src's own
    # the expression measure ignores the face shape and sees the mouth
    seq = np.stack([dst_lm, opened])
    assert expression_error(retarget(seq, dst_lm, src_lm), seq) < 1e-4
    assert expression_error(np.stack([src_lm, src_lm]), seq) > 0.01


def test_landmarks_found_on_aligned_crops_match_the_faceset_landmarks(facesets):
    for face_type in (FaceType.FULL, FaceType.WHOLE_FACE):
        face, lm = _crop_of(facesets[0], 64, face_type)
        found = crop_landmarks(face[None].astype(np.float32) / 255.0, face_type)[0]
        err = np.linalg.norm(found - lm, axis=1).mean() / inter_ocular(lm)
        assert err < 0.08, (face_type, err)


# --- a tiny model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(facesets, tmp_path_factory):
    """A tiny Reenact trained ITERATIONS steps on the src faces, saved; with its losses and batches."""
    from core import keras_backend as kb
    kb.prepare("float32")
    from models.batch_stream import BatchStream
    from models.model_files import ModelFiles
    from models.reenact import Reenact
    from models.sample_set import load_faceset
    folder = tmp_path_factory.mktemp("reenact_model")
    model = Reenact(ModelFiles(folder, "new", "Reenact"), TINY, training=True)
    s_spec, d_spec = model.sample_specs()
    src = BatchStream(load_faceset(facesets[0]), s_spec, 4, workers=0, seed=1)
    dst = BatchStream(load_faceset(facesets[1]), d_spec, 4, workers=0, seed=2)
    losses = [model.train_step(src.next(), dst.next())[0] for _ in range(ITERATIONS)]
    model.save()
    return model, folder, losses, src, dst


@pytest.mark.slow
def test_trains_with_falling_loss_saves_and_resumes(trained):
    from models.loader import load_predictor
    from models.model_files import ModelFiles
    from models.reenact import Reenact
    model, folder, losses, src, dst = trained
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses
    assert model.nets["stats"].means() is not None  # both sides' average shapes were learnt
    faces = dst.next().target
    lms = crop_landmarks(faces, model.face_type)
    before = model.predict(faces, landmarks=lms)
    assert before.face.shape == (4, 32, 32, 3) and before.src_mask.shape == (4, 32, 32)
    assert before.src_mask.max() == 1.0 and before.src_mask.mean() > 0.2  # the driving landmarks' hull

    from models.preview import preview_rows
    views = model.preview_outputs(src.next().target, faces)  # the trainer's preview: S SS D DD SD rows
    assert preview_rows(faces, faces, views, before.src_mask[..., None], before.src_mask[..., None], masked=True).shape \
        == (4 * 32, 5 * 32, 3)
    assert views["DD"].shape == (4, 32, 32, 3) and views["DD"].max() > 0.5  # the driving drawing

    loaded = load_predictor(folder, "Reenact", precision="float32")
    assert loaded.iteration == ITERATIONS and loaded.needs_landmarks
    np.testing.assert_array_equal(loaded.predict(faces, landmarks=lms).face, before.face)

    files = ModelFiles(folder, "new", "Reenact")
    resumed = Reenact(files, TINY, training=True)
    resumed.load(files.read_state())
    for a, b in zip(kb_values(resumed.nets["stats"]), kb_values(model.nets["stats"])):
        np.testing.assert_array_equal(a, b)  # the average shapes come back with the weights
    more = resumed.train_step(src.next(), dst.next())[0]
    assert resumed.iteration == ITERATIONS + 1 and more < np.mean(losses[:5])


def kb_values(net) -> list[np.ndarray]:
    from core import keras_backend as kb
    return kb.get_values(net.weights)


@pytest.mark.slow
def test_opening_the_driving_mouth_changes_the_mouth_more_than_the_rest(trained):
    model, _, _, _, dst = trained
    faces = dst.next().target
    lms = crop_landmarks(faces, model.face_type)
    base = model.predict(faces, landmarks=lms).face
    opened = model.predict(faces, landmarks=open_mouth(lms, 0.25)).face
    change = np.abs(opened - base).mean(axis=-1)
    res = model.resolution
    ratios = []
    for k, lm in enumerate(model.driving_landmarks(lms)):
        mouth = np.zeros((res, res), bool)
        x0, y0 = np.floor(lm[48:68].min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(lm[48:68].max(axis=0)).astype(int) + 4  # the lip moves down
        mouth[max(y0, 0):y1, max(x0, 0):x1] = True
        upper = np.zeros((res, res), bool)
        upper[: max(int(lm[17:48, 1].max()), 1)] = True  # brows and eyes and above
        ratios.append(change[k][mouth].mean() / max(change[k][upper].mean(), 1e-6))
    assert np.median(ratios) > 4.0, ratios  # measured about 15


@pytest.mark.slow
def test_merges_through_the_merger_with_the_handed_over_landmarks(trained, tmp_path):
    from mainscripts import merger_cli
    from tests.merge_standin import make_dst
    model, folder, _, _, _ = trained
    data_dst = make_dst(tmp_path / "data_dst", count=2)
    seen: list[np.ndarray] = []

    class Recording:  # the loaded model, noting the landmarks the merger hands over
        def __init__(self, inner):
            self.inner = inner
            self.resolution, self.face_type, self.iteration = inner.resolution, inner.face_type, inner.iteration
            self.default_mode, self.needs_landmarks = inner.default_mode, True

        def predict(self, faces, **extra):
            seen.append(extra["landmarks"])
            return self.inner.predict(faces, **extra)

    n = merger_cli.merge(str(data_dst), str(tmp_path / "merged"), str(tmp_path / "merged_mask"),
                         str(data_dst / "aligned"), str(folder), "Reenact", workers=0, predictor=Recording(model))
    assert n == 2 and seen and seen[0].shape[1:] == (68, 2)
    for frame in sorted(data_dst.glob("*.png")):
        original, merged = read_image(frame), read_image(tmp_path / "merged" / frame.name)
        mask = cv2.imread(str(tmp_path / "merged_mask" / frame.name), cv2.IMREAD_UNCHANGED)
        assert (mask > 0).sum() > 300
        assert np.abs(merged.astype(int) - original.astype(int))[mask > 0].mean() > 1
        np.testing.assert_array_equal(merged[mask == 0], original[mask == 0])


@pytest.mark.slow
def test_cli_trains_a_reenact_model_non_interactively(facesets, tmp_path):
    src, dst = facesets
    r = run_cli("train", "--training-data-src-dir", str(src), "--training-data-dst-dir", str(dst), "--model-dir",
                str(tmp_path), "--model", "Reenact", "--silent-start", "--no-preview", "--resolution", "32", "--g-dims",
                "8", "--gan-dims", "8", "--batch-size", "2", "--temporal-input", "y", "--target-iteration", "2",
                "--cpu-only")
    assert r.returncode == 0, r.stderr[-2000:]
    options = json.loads((tmp_path / "new_Reenact_options.json").read_text())
    assert options["temporal_input"] is True and options["g_dims"] == 8
    with np.load(tmp_path / "new_Reenact_state.npz", allow_pickle=False) as data:
        assert json.loads(str(data["meta"]))["iteration"] == 2
    r = run_cli("train", "--training-data-src-dir", str(src), "--training-data-dst-dir", str(dst), "--model-dir",
                str(tmp_path), "--model", "Reenact", "--silent-start", "--no-preview", "--archi", "df", "--cpu-only")
    assert r.returncode == 1 and "--archi" in r.error_lines[-1]  # a flag Reenact does not have is refused


def test_evaluate_reports_how_closely_the_merged_landmarks_follow_the_driving_ones(tmp_path):
    import shutil

    from mainscripts.evaluate import evaluate
    from tests.facesets import extract_faces, make_frames
    ws = tmp_path / "ws"
    frames = make_frames("biden.jpg", ws / "data_dst", count=5, seed=3)
    extract_faces(frames, ws / "data_dst" / "aligned", size=64)
    make_faceset(["obama.jpg"], ws / "data_src", per_photo=2, size=64)
    merged = ws / "data_dst" / "merged"
    merged.mkdir()
    for f in frames:  # a "merge" that follows its driver exactly: the dst frames themselves
        shutil.copy(f, merged / f.name)
    following = evaluate(str(ws))["expression_error"]
    for f, other in zip(frames, frames[::-1]):  # frames out of order: the face is not where the driver is
        shutil.copy(other, merged / f.name)
    lagging = evaluate(str(ws))["expression_error"]
    assert following < 0.03 and lagging > following + 0.02, (following, lagging)

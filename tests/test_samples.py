"""models/sample_set.py, augment.py, batch_stream.py: loading facesets (folders, DFL files, packs) and the batch stream."""
from __future__ import annotations

import multiprocessing
import pickle
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from core.image_io import read_image
from facelib.align import align, transform_points
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from facelib.masks import hull_mask
from faceset.face_file import load_aligned_face, read_face_meta, write_aligned_face
from faceset.pack import pack_path, write_packed
from models.augment import SampleSpec, _Order, preview_batch
from models.batch_stream import BatchStream
from models.sample_set import load_faceset
from tests.conftest import REPO
from tests.facesets import make_faceset

SPEC = SampleSpec(64, FaceType.FULL, random_flip=True, scale_range=(-0.15, 0.15))


@pytest.fixture(scope="module")
def wf_set(tmp_path_factory):
    """6 real whole_face faces at 96 px (two people), with the frames they came from."""
    root = tmp_path_factory.mktemp("wf")
    files = make_faceset(["obama.jpg", "biden.jpg"], root, per_photo=3, size=96, face_type="whole_face")
    assert len(files) == 6
    return root, files


@pytest.fixture(scope="module")
def f_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("f")
    return root, make_faceset(["grace_hopper.jpg"], root, per_photo=2, size=64, face_type="full_face")


def _copy(files, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)
    return folder


def _batches(records, spec, n=3, seed=5, **kw):
    with BatchStream(records, spec, 3, workers=0, seed=seed, **kw) as stream:
        return [stream.next() for _ in range(n)]


# ---- loading ---------------------------------------------------------------------------------


def test_load_faceset_reads_every_face(wf_set):
    root, files = wf_set
    records = load_faceset(root / "aligned")
    assert [r.name for r in records] == [f.name for f in files]
    for rec, f in zip(records, files):
        meta = read_face_meta(f)
        assert rec.face_type.long_name == "whole_face" and rec.where == str(f)
        assert rec.source_filename == meta.source_filename
        np.testing.assert_array_equal(rec.landmarks, meta.landmarks)


def test_many_faces_are_read_on_a_process_pool(wf_set, monkeypatch):
    import models.sample_set as samples
    calls = []
    real_pool = samples.run_pool
    monkeypatch.setattr(samples, "POOL_THRESHOLD", 3)
    monkeypatch.setattr(samples, "run_pool", lambda *a, **kw: calls.append(kw["workers"]) or real_pool(*a, **kw))
    pooled = load_faceset(wf_set[0] / "aligned")
    assert calls and calls[0] >= 1
    direct = [read_face_meta(f) for f in wf_set[1]]
    assert [r.name for r in pooled] == [f.name for f in wf_set[1]]
    for rec, meta in zip(pooled, direct):
        np.testing.assert_array_equal(rec.landmarks, meta.landmarks)


def test_xseg_labels_and_their_problems_are_read_with_the_light_metadata(wf_set, tmp_path, monkeypatch):
    """Which faces carry usable XSeg labels is known from the index (folder, pack, process pool), so the
    XSeg trainer never re-reads a face to choose what to train on."""
    import models.sample_set as samples
    folder = _copy(wf_set[1], tmp_path / "aligned")
    files = sorted(folder.glob("*.jpg"))
    hull = cv2.convexHull(read_face_meta(files[0]).landmarks).reshape(-1, 2)
    labels = {0: [{"type": 1, "pts": hull}],  # good
              1: [{"type": 1, "pts": hull * 3}],  # drawn on a face three times the size
              2: [{"type": 0, "pts": hull}]}  # an exclude polygon alone labels nothing
    for k, polys in labels.items():
        image, meta = load_aligned_face(files[k])
        write_aligned_face(files[k], image, replace(meta, seg_ie_polys=polys))
    packed = tmp_path / "packed"
    packed.mkdir()
    write_packed(pack_path(packed), [(f.name, f.read_bytes()) for f in files])
    direct, in_pack = load_faceset(folder), load_faceset(packed)
    monkeypatch.setattr(samples, "POOL_THRESHOLD", 3)
    pooled = load_faceset(folder)
    for records in (direct, in_pack, pooled):
        assert [r.labelled for r in records] == [True, True, False, False, False, False]
        assert [r.usable_labels for r in records] == [True, False, False, False, False, False]
        assert len(records[1].label_problems) == 1 and "outside the 96 px face" in records[1].label_problems[0]
        assert all(not r.label_problems for k, r in enumerate(records) if k != 1)


def test_load_errors_name_the_folder_or_file(wf_set, f_set, tmp_path):
    wf_files, f_files = wf_set[1], f_set[1]
    with pytest.raises(UserError, match="faceset folder not found") as err:
        load_faceset(tmp_path / "missing")
    assert err.value.path == tmp_path / "missing"

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no faces here")
    with pytest.raises(UserError, match="no aligned faces") as err:
        load_faceset(tmp_path / "empty")
    assert err.value.path == tmp_path / "empty"

    plain = _copy(wf_files[:2], tmp_path / "plain")
    cv2.imwrite(str(plain / "zz_photo.jpg"), read_image(wf_files[0]))  # same pixels, no metadata
    with pytest.raises(UserError, match="1 of 3 images have no face metadata") as err:
        load_faceset(plain)
    assert err.value.path == plain / "zz_photo.jpg"

    mixed = _copy(wf_files[:2] + f_files[:1], tmp_path / "mixed")
    with pytest.raises(UserError, match="mixed face types") as err:
        load_faceset(mixed)
    assert f_files[0].name in str(err.value) and "full_face" in str(err.value) and "whole_face" in str(err.value)

    # a crop cannot be widened: full_face faces for a whole_face model are refused, naming a face
    narrow = _copy(f_files, tmp_path / "narrow")
    with pytest.raises(UserError, match="extract the faces as whole_face") as err:
        load_faceset(narrow, face_type=FaceType.WHOLE_FACE)
    assert err.value.path.parent == narrow
    records = load_faceset(narrow)
    with pytest.raises(UserError, match="covers more"):
        BatchStream(records, SampleSpec(64, FaceType.WHOLE_FACE), 2, workers=0)
    assert len(load_faceset(narrow, face_type=FaceType.HALF)) == 2  # narrower is fine


# ---- faces at the model's crop ----------------------------------------------------------------


def _dfl_copy(src: Path, dst: Path) -> None:
    """The face as DeepFaceLab writes it: pixels re-encoded, metadata as a pickled dict in APP15."""
    image, meta = load_aligned_face(src)
    d = {"face_type": meta.face_type.long_name, "landmarks": meta.landmarks, "source_filename": meta.source_filename,
         "source_rect": meta.source_rect, "source_landmarks": meta.source_landmarks,
         "image_to_face_mat": meta.image_to_face_mat, "eyebrows_expand_mod": 1.0}
    payload = pickle.dumps(d, protocol=4)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
    dst.write_bytes(jpeg[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:])


def test_wider_faces_are_recropped_to_the_model_face_type(wf_set, tmp_path):
    """whole_face faces trained as full_face: each is cropped from its landmarks where align() puts a
    full_face crop, so it matches a full_face crop taken from the original frame."""
    root, files = wf_set
    records = load_faceset(root / "aligned")
    spec = SampleSpec(64, FaceType.FULL)
    for rec in records[::2]:
        meta = read_face_meta(Path(rec.path))
        batch = preview_batch([rec], spec, 1)
        assert np.array_equal(batch.warped, batch.target)  # no augmentation in previews
        got = batch.target[0]
        frame = read_image(root / meta.source_filename)
        expected = CropSpec(64, FaceType.FULL).of(meta.source_landmarks).warp(frame).astype(np.float32) / 255
        naive = cv2.resize(read_image(Path(rec.path)), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        assert np.abs(got - expected)[4:-4, 4:-4].mean() < 0.035
        assert np.abs(naive - expected)[4:-4, 4:-4].mean() > 2 * np.abs(got - expected)[4:-4, 4:-4].mean()
        # the mask is the hull of the landmarks where the full_face crop puts them
        lm64 = transform_points(meta.source_landmarks, align(meta.source_landmarks, 64, FaceType.FULL))
        hull = hull_mask((64, 64), lm64) > 0.5
        mask = batch.mask[0, ..., 0] > 0.5
        assert (hull & mask).sum() / (hull | mask).sum() > 0.93
        em = batch.em_mask[0, ..., 0]
        assert em.max() == pytest.approx(1.0) and em[~mask].max() == 0.0
        eyes = np.rint(lm64[36:42].mean(axis=0)).astype(int)  # the right eye
        assert em[eyes[1], eyes[0]] > 0.5

    # the same face as a DFL file (pickled metadata) loads and crops the same
    dfl_dir = tmp_path / "dfl"
    dfl_dir.mkdir()
    _dfl_copy(files[0], dfl_dir / files[0].name)
    dfl = load_faceset(dfl_dir)
    assert dfl[0].face_type.long_name == "whole_face"
    ours = preview_batch(records[:1], spec, 1)
    theirs = preview_batch(dfl, spec, 1)
    assert np.abs(ours.target - theirs.target).mean() < 0.01
    np.testing.assert_array_equal(ours.mask, theirs.mask)


def test_mixed_sizes_are_resized(wf_set, tmp_path):
    root, files = wf_set
    folder = _copy(files[:1], tmp_path / "sizes")
    image, meta = load_aligned_face(files[1])
    big = cv2.resize(image, (192, 192), interpolation=cv2.INTER_CUBIC)
    write_aligned_face(folder / "big.jpg", big, replace(meta, landmarks=meta.landmarks * 2))
    records = load_faceset(folder)
    spec = SampleSpec(64, FaceType.WHOLE_FACE)
    small = preview_batch([r for r in records if r.name == files[0].name], spec, 1)
    large = preview_batch([r for r in records if r.name == "big.jpg"], spec, 1)
    direct = preview_batch(load_faceset(root / "aligned"), spec, 6)
    assert small.target.shape == large.target.shape == (1, 64, 64, 3)
    # the big copy of face 2 comes out like face 2 itself (same type: just resized)
    ref = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    assert np.abs(large.target[0] - ref).mean() < 0.02
    assert direct.target.shape == (6, 64, 64, 3)


# ---- augmented batches ------------------------------------------------------------------------


def test_batch_shapes_ranges_and_seeds(wf_set):
    records = load_faceset(wf_set[0] / "aligned")
    spec = replace(SPEC, random_hsv_power=0.2, uniform_yaw=True)
    a, b, c = _batches(records, spec, seed=3), _batches(records, spec, seed=3), _batches(records, spec, seed=4)
    for batch in a:
        assert len(batch) == 3
        for arr, ch in ((batch.warped, 3), (batch.target, 3), (batch.mask, 1), (batch.em_mask, 1)):
            assert arr.shape == (3, 64, 64, ch) and arr.dtype == np.float32
            assert arr.min() >= 0.0 and arr.max() <= 1.0
        assert np.mean((batch.mask > 0.05) & (batch.mask < 0.95)) < 0.1  # a hard mask, soft only at edges
        assert 0.2 < batch.mask.mean() < 0.8
        np.testing.assert_allclose(batch.em_mask.max(axis=(1, 2, 3)), 1.0)
        assert batch.em_mask[batch.mask == 0].max() == 0.0  # eyes and mouth inside the face only
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x.warped, y.warped)
        np.testing.assert_array_equal(x.target, y.target)
        assert not np.array_equal(x.target, z.target)


def test_input_and_target_share_the_affine_only_the_input_is_warped(wf_set):
    records = load_faceset(wf_set[0] / "aligned")
    plain = replace(SPEC, random_warp=False)
    flat = _batches(records, plain)
    warped = _batches(records, replace(plain, random_warp=True))
    hsv = _batches(records, replace(plain, random_hsv_power=0.3))
    unaugmented = preview_batch(records, plain, 12, seed=0).target  # every face, several times
    for f, w, h in zip(flat, warped, hsv):
        np.testing.assert_array_equal(f.warped, f.target)  # same affine and flip, from one seed
        np.testing.assert_array_equal(w.target, f.target)  # the warp never reaches the target ...
        np.testing.assert_array_equal(w.mask, f.mask)
        assert np.abs(w.warped - w.target).mean(axis=(1, 2, 3)).min() > 0.005  # ... only the input
        np.testing.assert_array_equal(h.target, f.target)  # HSV: input only
        assert np.abs(h.warped - h.target).mean(axis=(1, 2, 3)).min() > 0.005
        # the target is transformed: it is none of the unaugmented faces
        for t in f.target:
            assert np.abs(unaugmented - t).mean(axis=(1, 2, 3)).min() > 0.01


def test_uniform_yaw_draws_yaw_bins_evenly():
    rng = np.random.default_rng(0)
    yaws = np.r_[np.zeros(90), np.ones(10)]
    by_bin = _Order(np.arange(100), rng, yaws)
    plain = _Order(np.arange(100), rng)
    rare_binned = np.mean([by_bin.next() >= 90 for _ in range(2000)])
    rare_plain = np.mean([plain.next() >= 90 for _ in range(2000)])
    assert 0.45 < rare_binned < 0.55 and 0.08 < rare_plain < 0.12
    epoch = [plain.next() for _ in range(100)]  # endless shuffled epochs: each face once per epoch
    assert sorted(epoch) == list(range(100))


def test_ct_mode_moves_colours_towards_dst(wf_set, tmp_path):
    root, files = wf_set
    records = load_faceset(root / "aligned")
    dst = tmp_path / "dst"
    dst.mkdir()
    for f in files[:2]:
        image, meta = load_aligned_face(f)
        tinted = image.astype(np.float32) * (1.3, 0.6, 0.5)  # strongly blue
        write_aligned_face(dst / f.name, np.clip(tinted, 0, 255).astype(np.uint8), meta)
    dst_records = load_faceset(dst)
    dst_mean = preview_batch(dst_records, SPEC, 2).target.mean(axis=(0, 1, 2))
    plain = np.mean([b.target.mean(axis=(0, 1, 2)) for b in _batches(records, SPEC)], axis=0)
    ct = np.mean([b.target.mean(axis=(0, 1, 2))
                  for b in _batches(records, replace(SPEC, ct_mode="rct"), ct_source=dst_records)], axis=0)
    assert np.abs(ct - dst_mean).sum() < 0.5 * np.abs(plain - dst_mean).sum()
    with pytest.raises(UserError, match="needs the dst faces"):
        BatchStream(records, replace(SPEC, ct_mode="rct"), 2, workers=0)


# ---- worker processes -------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] in ("Z", "X")


def test_workers_produce_batches_and_leave_no_process(wf_set):
    records = load_faceset(wf_set[0] / "aligned")
    with BatchStream(records, SPEC, 4, workers=2, seed=1) as stream:
        procs = stream.processes
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
        for _ in range(6):
            batch = stream.next()
            assert batch.warped.shape == (4, 64, 64, 3) and batch.em_mask.shape == (4, 64, 64, 1)
            assert batch.target.max() <= 1.0 and batch.mask.max() > 0.5
        pids = [p.pid for p in procs]
    assert not any(p.is_alive() for p in procs) and all(_gone(pid) for pid in pids)
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]
    stream.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        stream.next()

    started = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        with BatchStream(records, SPEC, 4, workers=2, seed=2) as stream:
            procs = stream.processes
            stream.next()
            _ = 1 / 0  # the trainer fails mid-training
    assert not any(p.is_alive() for p in procs) and all(_gone(p.pid) for p in procs)
    assert time.monotonic() - started < 10


def test_workers_exit_when_the_trainer_is_killed(wf_set):
    """A trainer killed with SIGKILL cannot close its stream; its workers notice and exit."""
    code = (f"import os, sys; sys.path.insert(0, {str(REPO)!r})\n"
            "from facelib.face_type import FaceType\n"
            "from models.augment import SampleSpec\n"
            "from models.batch_stream import BatchStream\n"
            "if __name__ == '__main__':\n"
            f"    s = BatchStream({str(wf_set[0] / 'aligned')!r}, SampleSpec(64, FaceType.FULL), 2, workers=1)\n"
            "    s.next()\n"
            "    print(s.processes[0].pid, flush=True)\n"
            "    os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)


def test_worker_errors_reach_the_trainer_naming_the_face(wf_set, tmp_path):
    root, files = wf_set
    folder = _copy(files, tmp_path / "faces")
    records = load_faceset(folder)
    (folder / files[2].name).unlink()  # deleted while training
    with BatchStream(records, SPEC, len(files), workers=1, seed=0) as stream:
        with pytest.raises(UserError, match="cannot read this face") as err:
            stream.next()
    assert err.value.path == folder / files[2].name


def test_wait_fraction_says_whether_the_trainer_waits(wf_set):
    records = load_faceset(wf_set[0] / "aligned")
    with BatchStream(records, SPEC, 4, workers=2, seed=0) as stream:
        stream.next()
        for _ in range(12):
            time.sleep(0.03)  # a training step much slower than making a batch
            stream.next()
        stats = stream.stats
    assert stats["batches"] == 13 and stats["startup_s"] > 0
    assert stream.wait_fraction < 0.3
    with BatchStream(records, SPEC, 4, workers=0, seed=0) as stream:
        for _ in range(6):
            stream.next()  # no work between batches: all the time is spent making them
    assert stream.wait_fraction > 0.8


# ---- packed facesets --------------------------------------------------------------------------


def test_packed_faceset(wf_set, tmp_path):
    root, files = wf_set
    packed = tmp_path / "packed"
    packed.mkdir()
    write_packed(pack_path(packed), [(f.name, f.read_bytes()) for f in files])
    records = load_faceset(packed)
    folder = load_faceset(root / "aligned")
    assert [r.name for r in records] == [r.name for r in folder]
    assert all(r.where == f"{pack_path(packed)}:{r.name}" for r in records)
    for a, b in zip(records, folder):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        assert a.read_bytes() == Path(b.path).read_bytes()
    spec = SampleSpec(64, FaceType.FULL)
    np.testing.assert_array_equal(preview_batch(records, spec, 4).target, preview_batch(folder, spec, 4).target)
    with BatchStream(packed, SPEC, 2, workers=1, seed=0) as stream:  # a path, read by a worker process
        assert stream.face_count == 6 and stream.next().warped.shape == (2, 64, 64, 3)

    # a pack next to loose faces wins (DFL's rule); the loose faces may be a subset
    both = _copy(files[:2], tmp_path / "both")
    shutil.copy(pack_path(packed), pack_path(both))
    assert len(load_faceset(both)) == 6

"""`xseg fetch / remove-labels / apply / remove / export-masks` on real extracted faces, labelled from
their own landmarks (face hull in, a box over the mouth out), with bad faces mixed in: labels that
cross themselves or were made at another size, a corrupt baked-mask blob, a DFL pickle that asks for
code. Bad faces are named, left untouched, and the others are done.

`apply` runs here with a stand-in masker (a fixed ellipse), in-process or behind a stand-in
`models.xseg` module; the end-to-end test trains a real XSeg for two iterations (slow)."""
from __future__ import annotations

import os
import pickle
import struct
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

import main
from core.errors import UserError
from facelib.align import invert_affine
from facelib.face_type import FaceType
from faceset.face_file import load_aligned_face, read_face_meta, update_face_meta
from mainscripts import xseg_util
from tests.conftest import run_cli
from tests.facesets import copy_faceset, extract_faces, make_faceset

SIZE = 128


def face_labels(landmarks: np.ndarray) -> list[dict]:
    hull = cv2.convexHull(landmarks.astype(np.float32)).reshape(-1, 2)
    (x0, y0), (x1, y1) = landmarks[48:60].min(axis=0) - 2, landmarks[48:60].max(axis=0) + 2
    mouth = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return [{"type": 1, "pts": hull}, {"type": 0, "pts": mouth}]


def set_meta(path: Path, **fields) -> None:
    meta = read_face_meta(path)
    for k, v in fields.items():
        setattr(meta, k, v)
    update_face_meta(path, meta)


def corrupt_mask_blob(path: Path) -> None:
    """A baked mask whose PNG bytes are damaged (the JSON around it stays valid)."""
    set_meta(path, xseg_mask=np.ones((SIZE, SIZE), np.float32))
    data = path.read_bytes()
    assert data.count(b"iVBORw0K") == 1  # base64 of the PNG signature
    path.write_bytes(data.replace(b"iVBORw0K", b"AAAAAAAA"))


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile_dfl(path: Path, marker: Path) -> None:
    """The face as DFL would store it (APP15 pickle, no JSON of ours), its labels asking to run a command."""
    data = path.read_bytes()
    pos, segs = 2, []
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segs.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    segs = [(m, p) for m, p in segs if m not in (0xEB, 0xEF)]
    _, meta = load_aligned_face(path)
    payload = pickle.dumps({"face_type": "whole_face", "landmarks": meta.landmarks.tolist(),
                            "seg_ie_polys": _Reduce(os.system, (f"touch '{marker}'",))}, protocol=3)
    segs = segs[:1] + [(0xEF, payload)] + segs[1:]
    path.write_bytes(b"\xff\xd8" + b"".join(struct.pack(">BBH", 0xFF, m, len(p) + 2) + p for m, p in segs) + data[pos:])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


@pytest.fixture(scope="session")
def faceset(tmp_path_factory) -> Path:
    """Six real faces at 128 px, no labels."""
    root = tmp_path_factory.mktemp("xsegset")
    files = make_faceset(["obama.jpg", "biden.jpg", "grace_hopper.jpg"], root, per_photo=2, size=SIZE)
    assert len(files) == 6
    return root / "aligned"


@pytest.fixture
def labelled(faceset, tmp_path) -> tuple[Path, list[Path]]:
    """A copy whose faces 0 and 1 carry good labels and 2 and 3 bad ones (crossing; made at 2x size)."""
    folder = copy_faceset(faceset, tmp_path)
    files = sorted(folder.glob("*.jpg"))
    for p in files[:4]:
        set_meta(p, seg_ie_polys=face_labels(read_face_meta(p).landmarks))
    polys = read_face_meta(files[2]).seg_ie_polys
    polys[1]["pts"] = polys[1]["pts"][[0, 2, 1, 3]]  # the mouth box as a bow tie
    set_meta(files[2], seg_ie_polys=polys)
    set_meta(files[3], seg_ie_polys=[{"type": p["type"], "pts": p["pts"] * 2} for p in read_face_meta(files[3]).seg_ie_polys])
    return folder, files


class Ellipse:
    """Stand-in XSeg masker: an ellipse in the middle of each face, whatever the face; records its calls."""

    resolution = 256
    face_type: FaceType | None = None  # masks every face as it is

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[tuple[int, ...]] = []
        self.inputs: list[np.ndarray] = []
        self.fail_on_call = fail_on_call

    def masks(self, faces: np.ndarray) -> np.ndarray:
        assert faces.dtype == np.uint8 and faces.ndim == 4 and faces.shape[3] == 3
        self.calls.append(faces.shape)
        self.inputs.extend(faces.copy())
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt  # the user stops the run
        return np.stack([self.mask(f.shape[0]) for f in faces]) * 0.8 + 0.1  # soft, never exactly 0 or 1

    @staticmethod
    def mask(size: int) -> np.ndarray:
        m = np.zeros((size, size), np.float32)
        cv2.ellipse(m, (size // 2, size // 2), (size // 3, size // 2 - 8), 0, 0, 360, 1.0, -1)
        return m


# --- fetch ------------------------------------------------------------------------------------------------

def test_fetch_copies_the_labelled_faces_and_names_the_bad_ones(labelled, tmp_path):
    folder, files = labelled
    corrupt_mask_blob(files[4])
    set_meta(files[5], seg_ie_polys=face_labels(read_face_meta(files[5]).landmarks))
    marker = tmp_path / "pwned"
    hostile_dfl(files[5], marker)
    before = snapshot(folder)
    result = run_cli("xseg", "fetch", "--input-dir", str(folder))
    assert result.returncode == 1
    assert len(result.error_lines) == 1 and "4 faces were not fetched" in result.error_lines[0]
    log = result.stderr
    assert f"{files[2]}: label polygon 2 (exclude) crosses itself" in log
    assert f"{files[3]}: label polygon 1 (include) lies outside the 128 px face (labels made on a face of another " \
        "size?) (and 1 more bad polygon)" in log
    assert f"{files[4]}: corrupt face metadata (the XSeg mask is not a PNG or JPEG image)" in log
    assert f"{files[5]}: refusing" in log and not marker.exists()
    fetched = tmp_path / "aligned_xseg"
    assert snapshot(fetched) == {p.name: before[p.name] for p in files[:2]}  # byte for byte, names kept
    assert snapshot(folder) == before  # nothing changed in the faceset
    assert "2 labelled faces (2 include, 2 exclude polygons)" in log + result.stdout


def test_fetch_again_keeps_labels_edited_in_the_copy(labelled, tmp_path):
    folder, files = labelled
    for p in files[2:4]:
        set_meta(p, seg_ie_polys=None)
    assert run_cli("xseg", "fetch", "--input-dir", str(folder)).returncode == 0
    copy = tmp_path / "aligned_xseg" / files[0].name
    set_meta(copy, seg_ie_polys=face_labels(read_face_meta(copy).landmarks)[:1])  # edited there: newer
    edited = copy.read_bytes()
    result = run_cli("xseg", "fetch", "--input-dir", str(folder))
    assert result.returncode == 0 and "newer; kept" in result.stderr
    assert copy.read_bytes() == edited
    set_meta(files[0], seg_ie_polys=face_labels(read_face_meta(files[0]).landmarks)[1:])  # now the original is newer
    os.utime(files[0], (copy.stat().st_mtime + 5,) * 2)
    assert run_cli("xseg", "fetch", "--input-dir", str(folder)).returncode == 0
    assert copy.read_bytes() == files[0].read_bytes()


# --- remove-labels ----------------------------------------------------------------------------------------

def test_remove_labels_needs_yes_without_a_terminal(labelled):
    folder, files = labelled
    set_meta(files[0], xseg_mask=Ellipse.mask(SIZE))
    before = snapshot(folder)
    result = run_cli("xseg", "remove-labels", "--input-dir", str(folder))
    assert result.returncode == 1 and "pass --yes" in result.error_lines[0]
    assert snapshot(folder) == before
    result = run_cli("xseg", "remove-labels", "--input-dir", str(folder), "--yes")
    assert result.returncode == 0, result.stderr
    for p in files:
        old, new = load_aligned_face(folder / p.name), load_aligned_face(p)
        assert new[1].seg_ie_polys is None
        assert np.array_equal(old[0], new[0]) and np.array_equal(old[1].landmarks, new[1].landmarks)
    assert read_face_meta(files[0]).xseg_mask is not None  # the baked mask is not a label


def test_remove_labels_asks_on_a_terminal(labelled):
    import pty
    import subprocess
    folder, _ = labelled
    before = snapshot(folder)
    for answer, removed in ((b"\n", False), (b"y\n", True)):  # Enter takes the default: no
        parent, terminal = pty.openpty()
        try:
            os.write(parent, answer)
            proc = subprocess.run([sys.executable, "main.py", "xseg", "remove-labels", "--input-dir", str(folder)],
                                  cwd=Path(main.__file__).parent, stdin=terminal, capture_output=True, text=True,
                                  timeout=120)
        finally:
            os.close(parent)
            os.close(terminal)
        assert proc.returncode == 0, proc.stderr
        assert "Delete the XSeg labels of 4 faces" in proc.stdout + proc.stderr
        assert (snapshot(folder) != before) == removed


# --- apply / remove ---------------------------------------------------------------------------------------

def test_apply_bakes_the_mask_and_leaves_bad_faces_alone(labelled, tmp_path):
    folder, files = labelled
    corrupt_mask_blob(files[4])
    before = snapshot(folder)
    masker = Ellipse()
    with pytest.raises(UserError) as err:
        xseg_util.apply_masks(folder, None, masker=masker, batch=2)
    assert "3 faces were left as they are" in str(err.value)
    assert all(shape[0] <= 2 and shape[1:] == (SIZE, SIZE, 3) for shape in masker.calls)
    for p in files[2:5]:
        assert p.read_bytes() == before[p.name]
    for p in (files[0], files[1], files[5]):
        image, meta = load_aligned_face(p)
        assert np.array_equal(meta.xseg_mask, (Ellipse.mask(SIZE) * 0.8 + 0.1 >= 0.5).astype(np.float32))
        assert np.array_equal(image, cv2.imdecode(np.frombuffer(before[p.name], np.uint8), cv2.IMREAD_COLOR))
    assert read_face_meta(files[0]).seg_ie_polys is not None  # labels kept


@pytest.fixture(scope="module")
def full_and_whole(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The same two frames extracted twice: a full_face faceset, and the whole_face faces of each frame."""
    root = tmp_path_factory.mktemp("full_face_set")
    make_faceset(["obama.jpg"], root / "full", per_photo=2, size=SIZE, face_type="full_face")
    whole = extract_faces(sorted((root / "full").glob("*.png")), root / "whole" / "aligned", SIZE, "whole_face")
    return root / "full" / "aligned", whole


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine doing `inner`, then `outer`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_apply_recrops_faces_of_another_type_to_the_models_and_warps_the_mask_back(full_and_whole, tmp_path):
    """DFL's apply: a whole_face XSeg on a full_face faceset masks each face's whole-face crop (cut from the
    face's landmarks) and the mask comes back in the full face's own pixels."""
    full, whole = full_and_whole
    folder = copy_faceset(full, tmp_path)
    masker = Ellipse()
    masker.face_type = FaceType.WHOLE_FACE
    assert xseg_util.apply_masks(folder, None, masker=masker) == 2
    middle = slice(SIZE // 4, 3 * SIZE // 4)
    for path, whole_path, seen in zip(sorted(folder.glob("*.jpg")), whole, masker.inputs):
        whole_image, whole_meta = load_aligned_face(whole_path)
        meta = read_face_meta(path)
        assert meta.face_type == FaceType.FULL and whole_meta.face_type == FaceType.WHOLE_FACE
        # the masker was given the whole-face crop: what extracting the frame as whole_face gives
        assert np.abs(seen[middle, middle].astype(int) - whole_image[middle, middle]).mean() < 12
        # its mask, moved from the whole-face crop into the full face through the frame (source matrices)
        whole_to_full = _compose(meta.image_to_face_mat, invert_affine(whole_meta.image_to_face_mat))
        expected = cv2.warpAffine(Ellipse.mask(SIZE) * 0.8 + 0.1, whole_to_full, (SIZE, SIZE)) >= 0.5
        baked = meta.xseg_mask > 0.5
        assert _iou(baked, expected) > 0.97
        assert _iou(baked, Ellipse.mask(SIZE) > 0.5) < 0.9  # not the mask of the full-face crop itself


def test_apply_stopped_midway_leaves_each_face_old_or_new_and_a_rerun_finishes(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    stale = folder / f"{sorted(folder.glob('*.jpg'))[0].name}.partial-999999999-abc123"
    stale.write_bytes(b"half a face")  # left by a killed writer
    with pytest.raises(KeyboardInterrupt):
        xseg_util.apply_masks(folder, None, masker=Ellipse(fail_on_call=2), batch=2)
    masked = [read_face_meta(p).xseg_mask is not None for p in sorted(folder.glob("*.jpg"))]
    assert masked == [True, True, False, False, False, False]
    assert xseg_util.apply_masks(folder, None, masker=Ellipse(), batch=4) == 6
    assert all(read_face_meta(p).xseg_mask is not None for p in folder.glob("*.jpg"))
    assert not stale.exists()


@pytest.fixture
def standin_model(monkeypatch, tmp_path) -> Path:
    """`models.xseg` replaced by a module whose load_xseg gives the Ellipse masker for folders holding
    a file 'xseg.stand-in' and refuses any other folder, as the real one does."""
    def load_xseg(model_dir: Path) -> Ellipse:
        if not (Path(model_dir) / "xseg.stand-in").is_file():
            raise UserError("no XSeg model in this folder", model_dir)
        return Ellipse()
    module = types.ModuleType("models.xseg")
    module.load_xseg = load_xseg
    monkeypatch.setitem(sys.modules, "models.xseg", module)
    model = tmp_path / "model"
    model.mkdir()
    (model / "xseg.stand-in").write_text("")
    return model


def test_apply_and_remove_through_the_command_line(faceset, tmp_path, standin_model, capsys):
    folder = copy_faceset(faceset, tmp_path)
    set_meta(sorted(folder.glob("*.jpg"))[0], seg_ie_polys=face_labels(read_face_meta(sorted(folder.glob("*.jpg"))[0]).landmarks))
    assert main.main(["xseg", "apply", "--input-dir", str(folder), "--model-dir", str(standin_model)]) == 0
    assert all(read_face_meta(p).xseg_mask is not None for p in folder.glob("*.jpg"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main.main(["xseg", "apply", "--input-dir", str(folder), "--model-dir", str(empty)]) == 1
    assert f"{empty}: no XSeg model in this folder" in capsys.readouterr().err
    assert main.main(["xseg", "remove", "--input-dir", str(folder)]) == 0
    metas = [read_face_meta(p) for p in sorted(folder.glob("*.jpg"))]
    assert all(m.xseg_mask is None for m in metas) and metas[0].seg_ie_polys is not None  # labels stay


def test_writing_commands_refuse_a_pack_with_the_unpack_hint(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    assert run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--delete-originals").returncode == 0
    for args in (["apply", "--model-dir", str(tmp_path)], ["remove"], ["remove-labels", "--yes"]):
        result = run_cli("xseg", args[0], "--input-dir", str(folder), *args[1:])
        assert result.returncode == 1 and "util --unpack-faceset" in result.error_lines[0], args


# --- export-masks -----------------------------------------------------------------------------------------

def test_export_masks_writes_labels_and_baked_masks_and_names_bad_labels(labelled, tmp_path):
    folder, files = labelled
    set_meta(files[4], xseg_mask=Ellipse.mask(SIZE))
    result = run_cli("xseg", "export-masks", "--input-dir", str(folder))
    assert result.returncode == 1 and "2 faces have labels that cannot make a mask" in result.error_lines[0]
    assert f"{files[2]}: label polygon 2 (exclude) crosses itself" in result.stderr
    out = tmp_path / "aligned_mask"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_mask.jpg" for p in (files[0], files[1], files[4]))
    lm = read_face_meta(files[0]).landmarks
    mask = cv2.imread(str(out / f"{files[0].stem}_mask.jpg"), cv2.IMREAD_GRAYSCALE)
    nose, mouth = lm[30].round().astype(int), lm[48:60].mean(axis=0).round().astype(int)
    assert mask[nose[1], nose[0]] > 200 and mask[mouth[1], mouth[0]] < 50 and mask[2, 2] < 50


# --- end to end -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_train_a_tiny_xseg_and_apply_it(labelled, tmp_path):
    folder, files = labelled
    for p in files[2:4]:
        set_meta(p, seg_ie_polys=None)  # only good labels for training
    model = tmp_path / "model"
    train = run_cli("train", "--training-data-src-dir", str(folder), "--training-data-dst-dir", str(folder),
                    "--model-dir", str(model), "--model", "XSeg", "--no-preview", "--silent-start",
                    "--resolution", "64", "--dims", "4", "--batch-size", "2", "--target-iteration", "2", timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run_cli("xseg", "apply", "--input-dir", str(folder), "--model-dir", str(empty))
    assert refused.returncode == 1 and str(empty) in refused.error_lines[0]
    result = run_cli("xseg", "apply", "--input-dir", str(folder), "--model-dir", str(model), fresh=True)
    assert result.returncode == 0, result.stderr[-3000:]
    noise = [line for line in result.stderr.splitlines() if "oneDNN" in line or "absl" in line or "cuInit" in line]
    assert noise == []  # TensorFlow's start-up banners are filtered, as for train and merge
    for p in files:
        meta = read_face_meta(p)
        assert meta.xseg_mask.shape == (SIZE, SIZE) and set(np.unique(meta.xseg_mask)) <= {0.0, 1.0}

"""DFL facesets stay DFL facesets: every command that rewrites face metadata (sort, filename recovery,
metadata save/restore around an editor, resize) leaves DeepFaceLab's pickled dict (APP15) in the
file, loadable by DFL's plain `pickle.loads` and by our restricted loader, with correct values:
DFL's own bytes where the geometry did not change, an updated dict where it did."""
from __future__ import annotations

import pickle
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceset.dfl_pickle import restricted_loads
from faceset.face_file import load_aligned_face, read_face_meta
from tests.conftest import run_cli
from tests.facesets import make_faceset

POLY = np.array([[20, 20], [70, 22], [66, 75], [24, 70]], np.float32)


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    pos, segs = 2, []
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segs.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return segs, data[pos:]


def _app15(path: Path) -> bytes:
    (payload,) = [p for m, p in _segments(path.read_bytes())[0] if m == 0xEF]
    return payload


def _dfl_dict_of(face: Path, polys: bool, mask: bool) -> dict:
    """The face's metadata with the types DFL's extractor and XSeg tools write."""
    _, meta = load_aligned_face(face)
    d = {
        "face_type": meta.face_type.long_name,
        "landmarks": meta.landmarks.tolist(),
        "source_filename": meta.source_filename,
        "source_rect": np.array(meta.source_rect),
        "source_landmarks": meta.source_landmarks.tolist(),
        "image_to_face_mat": meta.image_to_face_mat,
        "eyebrows_expand_mod": 1.0,
        "relighted": False,
    }
    if polys:
        d["seg_ie_polys"] = {"polys": [{"type": 1, "pts": POLY}]}
    if mask:
        m = np.zeros((64, 64), np.uint8)
        m[10:50, 16:40] = 255
        d["xseg_mask"] = cv2.imencode(".png", m)[1]
    return d


def _dfl_file(face: Path, payload: bytes) -> bytes:
    """The face as DFL writes it: pixels encoded by OpenCV, the pickle in APP15 after the last APPn."""
    image, _ = load_aligned_face(face)
    segs, scan = _segments(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    last = max(i for i, (m, _) in enumerate(segs) if m & 0xF0 == 0xE0)
    segs = segs[:last + 1] + [(0xEF, payload)] + segs[last + 1:]
    return b"\xff\xd8" + b"".join(struct.pack(">BBH", 0xFF, m, len(p) + 2) + p for m, p in segs) + scan


@pytest.fixture(scope="session")
def dfl_faceset(tmp_path_factory) -> tuple[Path, dict[str, dict], dict[str, bytes]]:
    """Three real faces as DFL files (the first with label polygons, the second with an XSeg mask):
    (folder, {name: DFL dict}, {name: APP15 payload})."""
    root = tmp_path_factory.mktemp("dflset")
    files = make_faceset(["obama.jpg", "biden.jpg", "grace_hopper.jpg"], root, per_photo=1, size=96)
    folder = root / "dfl_aligned"
    folder.mkdir()
    dicts, payloads = {}, {}
    for i, f in enumerate(files):
        d = _dfl_dict_of(f, polys=i == 0, mask=i == 1)
        payload = pickle.dumps(d, protocol=3).replace(b"numpy._core.", b"numpy.core.")  # DFL on numpy 1.x
        (folder / f.name).write_bytes(_dfl_file(f, payload))
        dicts[f.name], payloads[f.name] = d, payload
    return folder, dicts, payloads


def _copy(dfl_faceset, tmp_path: Path) -> Path:
    folder = tmp_path / "aligned"
    shutil.copytree(dfl_faceset[0], folder)
    return folder


def _as_dfl_reads(payload: bytes) -> dict:
    """What DFL's DFLJPG getters return for a payload (a plain pickle.loads, as DFL does)."""
    d = pickle.loads(payload)
    out = {
        "face_type": d.get("face_type", "full_face"),
        "landmarks": np.array(d["landmarks"]),
        "source_filename": d.get("source_filename"),
        "source_rect": d.get("source_rect"),
        "source_landmarks": np.array(d.get("source_landmarks")),
        "image_to_face_mat": np.array(d["image_to_face_mat"]),
        "eyebrows_expand_mod": d.get("eyebrows_expand_mod", 1.0),
        "polys": [(p["type"], np.float32(p["pts"])) for p in (d.get("seg_ie_polys") or {"polys": []})["polys"]],
        "xseg_mask": None if d.get("xseg_mask") is None else cv2.imdecode(d["xseg_mask"], cv2.IMREAD_UNCHANGED),
        "relighted": d.get("relighted"),
    }
    rect = out["source_rect"]
    assert np.array(rect[[0, 2, 2, 0]]).shape == (4,)  # DFL's sort by source rect indexes it as an array
    ours = restricted_loads(payload)  # and our loader reads what we write
    assert set(ours) == set(d)
    return out


def _assert_same_dfl(a: dict, b: dict, scale: float = 1.0) -> None:
    """`a` is `b` after a resize by `scale` (1: unchanged)."""
    off = (scale - 1) / 2
    assert a["face_type"] == b["face_type"] and a["source_filename"] == b["source_filename"]
    np.testing.assert_array_equal(a["source_rect"], b["source_rect"])
    np.testing.assert_array_equal(a["source_landmarks"], b["source_landmarks"])
    np.testing.assert_allclose(a["landmarks"], b["landmarks"] * scale + off, atol=1e-3)
    np.testing.assert_allclose(a["image_to_face_mat"], b["image_to_face_mat"] * scale + [[0, 0, off], [0, 0, off]],
                               atol=1e-6)
    assert a["eyebrows_expand_mod"] == b["eyebrows_expand_mod"] and a["relighted"] == b["relighted"]
    assert [t for t, _ in a["polys"]] == [t for t, _ in b["polys"]]
    for (_, p), (_, q) in zip(a["polys"], b["polys"]):
        np.testing.assert_allclose(p, q * scale + off, atol=1e-3)
    assert (a["xseg_mask"] is None) == (b["xseg_mask"] is None)


def test_sort_and_recover_names_keep_dfl_bytes(dfl_faceset, tmp_path):
    folder = _copy(dfl_faceset, tmp_path)
    _, _, payloads = dfl_faceset
    result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
    assert result.returncode == 0, result.stderr
    sorted_names = sorted(p.name for p in folder.glob("*.jpg"))
    assert sorted_names == ["00000.jpg", "00001.jpg", "00002.jpg"]
    for name in sorted_names:
        original = read_face_meta(folder / name).extra["original_name"]
        assert _app15(folder / name) == payloads[original]  # DFL's own bytes, untouched

    result = run_cli("util", "--input-dir", str(folder), "--recover-original-aligned-filename")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(payloads)
    for name, payload in payloads.items():
        assert _app15(folder / name) == payload
        _as_dfl_reads(payload)


def test_metadata_save_edit_restore_keeps_dfl_metadata(dfl_faceset, tmp_path):
    folder = _copy(dfl_faceset, tmp_path)
    _, dicts, payloads = dfl_faceset
    names = sorted(payloads)
    assert run_cli("util", "--input-dir", str(folder), "--save-faceset-metadata").returncode == 0
    for name in names[:2]:  # an editor: upscale 2x, save a plain JPEG (every header dropped)
        image, _ = load_aligned_face(folder / name)
        cv2.imwrite(str(folder / name), cv2.resize(image, (192, 192), interpolation=cv2.INTER_CUBIC))
        assert read_face_meta(folder / name) is None
    result = run_cli("util", "--input-dir", str(folder), "--restore-faceset-metadata")
    assert result.returncode == 0, result.stderr

    assert _app15(folder / names[2]) == payloads[names[2]]  # not edited: DFL's bytes kept
    for name in names:
        image, meta = load_aligned_face(folder / name)
        assert image.shape == (96, 96, 3)
        got, want = _as_dfl_reads(_app15(folder / name)), _as_dfl_reads(payloads[name])
        _assert_same_dfl(got, want)
        if want["xseg_mask"] is not None:
            np.testing.assert_array_equal(got["xseg_mask"], want["xseg_mask"])
        assert meta.extra["dfl"] == {"relighted": False}


def test_resize_writes_scaled_dfl_geometry(dfl_faceset, tmp_path):
    folder = _copy(dfl_faceset, tmp_path)
    _, _, payloads = dfl_faceset
    ours = folder / "ours.jpg"  # a face this toolkit extracted: it must not gain a pickle
    shutil.copy(next(iter(sorted((dfl_faceset[0].parent / "aligned").glob("*.jpg")))), ours)
    result = run_cli("facesettool", "resize", "--input-dir", str(folder), "--image-size", "192",
                     "--face-type", "same", "--merge")
    assert result.returncode == 0, result.stderr
    for name, payload in payloads.items():
        image, meta = load_aligned_face(folder / name)
        assert image.shape == (192, 192, 3)
        got, want = _as_dfl_reads(_app15(folder / name)), _as_dfl_reads(payload)
        _assert_same_dfl(got, want, scale=2.0)
        np.testing.assert_array_equal(got["landmarks"], meta.landmarks)
        if want["xseg_mask"] is not None:
            assert got["xseg_mask"].shape == (192, 192)
            big = cv2.resize(want["xseg_mask"], (192, 192), interpolation=cv2.INTER_LINEAR)
            assert np.mean(np.abs(got["xseg_mask"].astype(float) - big)) < 8
    assert not [m for m, _ in _segments(ours.read_bytes())[0] if m == 0xEF]

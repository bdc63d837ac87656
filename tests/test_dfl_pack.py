"""DeepFaceLab's own faceset.pak opens like any faceset: its faces listed in DFL's order with their
DFL metadata, read by training, unpacked byte for byte; a hostile pak (code in its pickle, offsets
that leave the file, overlap or go backwards, names with folder parts, absurd lengths) is one
UserError naming it, before any face is read or written."""
from __future__ import annotations

import os
import pickle
import struct
import sys
import types
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from core.errors import UserError
from facelib.face_type import FaceType as OurFaceType
from faceset import pack_dfl
from faceset.dfl_pickle import restricted_loads
from faceset.face_file import load_aligned_face
from faceset.faceset import Faceset
from faceset.pack import PACK_NAME, list_packed
from mainscripts import util
from models.sample_set import load_faceset
from tests.conftest import run_cli
from tests.facesets import make_faceset


class SampleType(IntEnum):
    """DFL's samplelib.Sample.SampleType (the members a pack uses)."""

    IMAGE = 0
    FACE = 1


class FaceType(IntEnum):
    """DFL's facelib.FaceType.FaceType."""

    HALF = 0
    MID_FULL = 1
    FULL = 2
    FULL_NO_ALIGN = 3
    WHOLE_FACE = 4
    HEAD = 10
    HEAD_NO_ALIGN = 20
    MARK_ONLY = 100


SampleType.__module__, FaceType.__module__ = "samplelib.Sample", "facelib.FaceType"
DFL_FACE_TYPES = {"half_face": 0, "midfull_face": 1, "full_face": 2, "whole_face": 4, "head": 10}
POLY = np.array([[20, 20], [70, 22], [66, 75], [24, 70]], np.float32)


@contextmanager
def dfl_modules() -> Iterator[None]:
    """DFL's enum classes importable under DFL's module names, so pickle writes them as DFL does."""
    sample = types.ModuleType("samplelib.Sample")
    sample.SampleType = SampleType
    face_type = types.ModuleType("facelib.FaceType")
    face_type.FaceType = FaceType
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "samplelib", types.ModuleType("samplelib"))
        mp.setitem(sys.modules, "samplelib.Sample", sample)
        mp.setitem(sys.modules, "facelib.FaceType", face_type)
        yield


def _dfl_face(face: Path, polys: bool, mask: bool) -> tuple[bytes, dict]:
    """One of our faces as DFL's extractor writes it: re-encoded pixels, DFL's pickled dict (numpy 1.x
    names) in APP15, none of our segments. Returns (file bytes, DFL's dict)."""
    image, meta = load_aligned_face(face)
    d = {"face_type": meta.face_type.long_name, "landmarks": meta.landmarks.tolist(),
         "source_filename": meta.source_filename, "source_rect": np.array(meta.source_rect),
         "source_landmarks": meta.source_landmarks.tolist(), "image_to_face_mat": meta.image_to_face_mat,
         "eyebrows_expand_mod": 1.0}
    if polys:
        d["seg_ie_polys"] = {"polys": [{"type": 1, "pts": POLY}]}
    if mask:
        m = np.zeros(image.shape[:2], np.uint8)
        m[10:50, 16:40] = 255
        d["xseg_mask"] = cv2.imencode(".png", m)[1]
    payload = pickle.dumps(d, protocol=3).replace(b"numpy._core.", b"numpy.core.")
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return jpeg[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:], d


def _config(name: str, data: bytes, d: dict) -> dict:
    """DFL's Sample.get_config() for a face loaded by its SampleLoader."""
    h, w = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    polys = d.get("seg_ie_polys", {"polys": []})["polys"]
    return {"sample_type": SampleType.FACE, "filename": name, "face_type": FaceType(DFL_FACE_TYPES[d["face_type"]]),
            "shape": (h, w, 3), "landmarks": np.array(d["landmarks"]).tolist(),
            "seg_ie_polys": {"polys": [{"type": int(p["type"]), "pts": np.float32(p["pts"])} for p in polys]},
            "xseg_mask": None, "xseg_mask_compressed": d.get("xseg_mask"), "eyebrows_expand_mod": 1.0,
            "source_filename": d["source_filename"], "person_name": None}


def write_dfl_pak(pak: Path, configs: list[dict] | bytes, blobs: list[bytes],
                  offsets: list[int] | None = None, length: int | None = None) -> None:
    """A faceset.pak written the way DFL's PackedFaceset.pack writes it (uint64s, native little-endian
    on DFL's platforms; the last offset a position in the file), or with `offsets`/`length` forced."""
    if isinstance(configs, bytes):
        samples = configs
    else:
        with dfl_modules():
            samples = pickle.dumps(configs, 4)
    with open(pak, "wb") as of:
        of.write(struct.pack("<Q", 1))
        of.write(struct.pack("<Q", len(samples) if length is None else length))
        of.write(samples)
        table = of.tell()
        of.write(bytes(8 * (len(blobs) + 1)))
        data_start = of.tell()
        written = []
        for b in blobs:
            written.append(of.tell() - data_start)
            of.write(b)
        written.append(of.tell())
        of.seek(table)
        for offset in written if offsets is None else offsets:
            of.write(struct.pack("<Q", offset))


@pytest.fixture(scope="session")
def dfl_faces(tmp_path_factory) -> list[tuple[str, bytes, dict]]:
    """Three real faces as DFL files (the first with label polygons, the second with an XSeg mask), in
    an order that is not the names' order: (name, bytes, DFL dict)."""
    root = tmp_path_factory.mktemp("dflpack")
    files = make_faceset(["obama.jpg", "biden.jpg", "grace_hopper.jpg"], root, per_photo=1, size=96)
    faces = []
    for i, f in enumerate(files):
        data, d = _dfl_face(f, polys=i == 0, mask=i == 1)
        faces.append((f.name, data, d))
    return faces[::-1]


@pytest.fixture
def dfl_pack(dfl_faces, tmp_path) -> tuple[Path, Path]:
    """(folder, pak): a folder holding only DFL's faceset.pak of the three faces."""
    folder = tmp_path / "aligned"
    folder.mkdir()
    write_dfl_pak(folder / PACK_NAME, [_config(n, b, d) for n, b, d in dfl_faces], [b for _, b, _ in dfl_faces])
    return folder, folder / PACK_NAME


def test_faceset_open_lists_dfl_pack_faces_in_its_order_with_their_metadata(dfl_faces, dfl_pack):
    folder, pak = dfl_pack
    names = [n for n, _, _ in dfl_faces]
    assert names != sorted(names)  # the order comes from DFL's sample list, not from the names
    for path in (folder, pak):
        fs = Faceset.open(path)
        assert fs.is_pack and fs.where == pak
        assert [f.name for f in fs] == names
        for face, (name, data, d) in zip(fs, dfl_faces):
            assert face.read_bytes() == data
            image, meta = face.load()
            np.testing.assert_array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
            np.testing.assert_allclose(meta.landmarks, np.array(d["landmarks"]))
            assert meta.face_type.long_name == d["face_type"]
            assert meta.source_filename == d["source_filename"]
        assert [bool(f.meta().seg_ie_polys) for f in fs] == [False, False, True]
        assert [f.meta().xseg_mask is not None for f in fs] == [False, True, False]
        assert fs.check_one_face_type().long_name == "whole_face" and fs.image_size == 96


def test_a_pack_whose_last_offset_counts_from_the_data_reads_the_same(dfl_faces, dfl_pack, tmp_path):
    """The format as DFL's reader understands it (every offset from the data's start) reads the same."""
    sizes = np.cumsum([0] + [len(b) for _, b, _ in dfl_faces]).tolist()
    other = tmp_path / PACK_NAME
    write_dfl_pak(other, [_config(n, b, d) for n, b, d in dfl_faces], [b for _, b, _ in dfl_faces], offsets=sizes)
    assert list_packed(other) == list_packed(dfl_pack[1])


def test_training_reads_a_dfl_pack(dfl_faces, dfl_pack):
    records = load_faceset(dfl_pack[0], face_type=OurFaceType.FULL)
    assert [r.name for r in records] == [n for n, _, _ in dfl_faces]
    for rec, (_name, data, d) in zip(records, dfl_faces):
        assert rec.path == str(dfl_pack[1]) and rec.read_bytes() == data
        np.testing.assert_allclose(rec.landmarks, np.array(d["landmarks"]))


def test_util_unpacks_a_dfl_pack_byte_for_byte(dfl_faces, dfl_pack):
    folder, pak = dfl_pack
    result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
    assert result.returncode == 0, result.stderr
    assert not pak.exists()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {n: b for n, b, _ in dfl_faces}


def test_sort_on_a_dfl_pack_names_the_unpack_command(dfl_pack):
    folder, pak = dfl_pack
    before = pak.read_bytes()
    result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert str(pak) in result.error_lines[0] and "util --unpack-faceset" in result.error_lines[0]
    assert [p.name for p in folder.iterdir()] == [PACK_NAME] and pak.read_bytes() == before


# ---- hostile packs ------------------------------------------------------------------------------


class _Run:
    """Pickles as a call of `func(*args)`: what a hostile pack hides in its sample list."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile(variant: str, faces: list[tuple[str, bytes, dict]], marker: Path) -> dict:
    """write_dfl_pak's arguments for one kind of hostile pack."""
    configs = [_config(n, b, d) for n, b, d in faces]
    blobs = [b for _, b, _ in faces]
    sizes = [len(b) for b in blobs]
    starts = np.cumsum([0] + sizes).tolist()
    if variant == "os-system":
        configs[0]["shape"] = _Run(os.system, f"touch {marker}")
    elif variant == "other-global":
        configs[0]["shape"] = _Run(sys.modules["collections"].OrderedDict, [(1, 2)])
    elif variant == "enum-with-a-string":
        configs[0]["face_type"] = _Run(FaceType, "x" * 10)
    elif variant == "bare-enum-class":
        configs[0]["face_type"] = FaceType
    elif variant == "dotdot-name":
        configs[1]["filename"] = "../evil.jpg"
    elif variant == "pth-name":
        configs[1]["filename"] = "evil.pth"
    elif variant == "duplicate-name":
        configs[1]["filename"] = configs[0]["filename"]
    elif variant == "person-faceset":
        configs[2]["person_name"] = ".."
    elif variant == "not-a-list":
        configs = {"faces": configs}
    elif variant == "offset-past-end":
        return dict(configs=configs, blobs=blobs, offsets=starts[:2] + [starts[3] + (10 << 20), starts[3]])
    elif variant == "overlapping":  # two faces at one offset: the same bytes twice, a pack unpacking bigger
        return dict(configs=configs, blobs=blobs, offsets=[0, starts[1], starts[1], starts[3]])
    elif variant == "decreasing":
        return dict(configs=configs, blobs=blobs, offsets=[0, starts[2], starts[1], starts[3]])
    elif variant == "table-short-of-the-end":  # the table says the faces end before the file does
        return dict(configs=configs, blobs=blobs, offsets=starts[:3] + [starts[3] - 6])
    elif variant == "huge-length":
        return dict(configs=configs, blobs=blobs, length=1 << 62)
    elif variant == "length-past-the-end":
        return dict(configs=configs, blobs=blobs, length=sum(sizes) * 2)
    elif variant == "repeats":  # 1000 references to one list of 1000 values: a small pickle, a million values
        inner = list(range(1000))
        configs[0]["landmarks"] = [inner] * 1000
    else:
        raise AssertionError(variant)
    return dict(configs=configs, blobs=blobs)


HOSTILE = ["os-system", "other-global", "enum-with-a-string", "bare-enum-class", "dotdot-name", "pth-name",
           "duplicate-name", "person-faceset", "not-a-list", "offset-past-end", "overlapping", "decreasing",
           "table-short-of-the-end", "huge-length", "length-past-the-end", "repeats"]


@pytest.mark.parametrize("variant", HOSTILE)
def test_hostile_dfl_pack_is_one_error_naming_it_and_reads_nothing(dfl_faces, tmp_path, monkeypatch, variant):
    folder = tmp_path / "aligned"
    folder.mkdir()
    pak = folder / PACK_NAME
    marker = tmp_path / "pwned"
    write_dfl_pak(pak, **_hostile(variant, dfl_faces, marker))
    read = []
    for module in ("faceset.pack", "faceset.faceset"):
        monkeypatch.setattr(f"{module}.read_entry", lambda *a, **k: read.append(a) or b"")
    for call in (lambda: Faceset.open(folder), lambda: Faceset.open(pak), lambda: util.unpack_faceset(folder)):
        with pytest.raises(UserError) as err:
            call()
        assert err.value.path == pak and "\n" not in str(err.value)
    assert read == [] and not marker.exists()
    assert [p.name for p in folder.iterdir()] == [PACK_NAME] and not (tmp_path / "evil.jpg").exists()
    if variant in ("dotdot-name", "pth-name"):
        assert ("../evil.jpg" if variant == "dotdot-name" else "evil.pth") in err.value.problem


def test_hostile_dfl_pack_through_the_cli_is_one_line(dfl_faces, tmp_path):
    folder = tmp_path / "aligned"
    folder.mkdir()
    marker = tmp_path / "pwned"
    write_dfl_pak(folder / PACK_NAME, **_hostile("os-system", dfl_faces, marker))
    result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
    assert result.returncode == 1 and len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert str(folder / PACK_NAME) in line and ("posix.system" in line or "nt.system" in line)
    assert not marker.exists() and [p.name for p in folder.iterdir()] == [PACK_NAME]


def test_only_the_pack_reader_lets_dfl_enums_through(dfl_faces):
    """Face metadata (a JPEG's APP15) still refuses every global but numpy's, DFL's enums included."""
    with dfl_modules():
        blob = pickle.dumps({"face_type": FaceType.WHOLE_FACE}, 4)
    assert restricted_loads(blob, "pak", int_enums=pack_dfl.SAMPLE_ENUMS) == {"face_type": 4}
    with pytest.raises(UserError, match="facelib.FaceType.FaceType"):
        restricted_loads(blob, "face.jpg")

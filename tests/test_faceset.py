"""`Faceset.open`: one entry point for folders of aligned faces (ours and DFL's), old packs and zip
packs; every command that reads faces reads a pack or names the unpack command in one line; hostile
zips are refused before anything is written."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from facelib.face_type import FaceType
from faceset import pack
from faceset.dfl_pickle import dfl_dumps
from faceset.face_file import read_face_meta
from faceset.faceset import Faceset
from faceset.pack import INDEX_NAME, PACK_NAME, list_packed, read_packed, write_packed
from tests.conftest import run_cli
from tests.facesets import copy_faceset, make_faceset, write_legacy_pack

SIZE = 96


@pytest.fixture(scope="session")
def faceset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fs")
    make_faceset(["obama.jpg"], root, per_photo=3, size=SIZE, face_type="whole_face")
    return root / "aligned"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _dfl_bytes(data: bytes) -> bytes:
    """Our face file as DeepFaceLab writes one: its pickled dict in APP15, none of our segments."""
    meta = read_face_meta_bytes(data)
    d = {"face_type": meta.face_type.long_name, "landmarks": meta.landmarks, "source_filename": meta.source_filename,
         "source_rect": np.array(meta.source_rect, np.int64), "source_landmarks": meta.source_landmarks,
         "image_to_face_mat": meta.image_to_face_mat, "eyebrows_expand_mod": 1.0}
    payload = dfl_dumps(d)
    pos, kept = 2, []
    while data[pos + 1] != 0xDA:  # header segments up to SOS
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos + 1] not in (0xEB, 0xEF):
            kept.append(data[pos:pos + 2 + length])
        pos += 2 + length
    app15 = b"\xff\xef" + (len(payload) + 2).to_bytes(2, "big") + payload
    return b"\xff\xd8" + kept[0] + app15 + b"".join(kept[1:]) + data[pos:]


def read_face_meta_bytes(data: bytes):
    from faceset.face_file import meta_from_jpeg_bytes
    return meta_from_jpeg_bytes(data)


def _variants(faceset: Path, tmp_path: Path) -> dict[str, Path]:
    files = _files(faceset)
    out = {"ours": copy_faceset(faceset, tmp_path / "ours")}
    dfl = tmp_path / "dfl"
    dfl.mkdir()
    for name, data in files.items():
        (dfl / name).write_bytes(_dfl_bytes(data))
    out["dfl"] = dfl
    for kind, writer in (("old_pack", write_legacy_pack), ("zip_pack", write_packed)):
        folder = tmp_path / kind
        folder.mkdir()
        writer(folder / PACK_NAME, list(files.items()))
        out[kind] = folder
    out["pack_file"] = out["zip_pack"] / PACK_NAME
    return out


def test_every_kind_of_faceset_lists_the_same_faces_with_the_same_metadata(faceset, tmp_path):
    names = sorted(_files(faceset))
    reference = {n: read_face_meta(faceset / n) for n in names}
    for kind, path in _variants(faceset, tmp_path).items():
        fs = Faceset.open(path)
        assert [f.name for f in fs] == names, kind
        assert fs.is_pack == (kind in ("old_pack", "zip_pack", "pack_file")), kind
        assert fs.face_type is FaceType.WHOLE_FACE and fs.image_size == SIZE, kind
        assert fs.check_one_face_type() is FaceType.WHOLE_FACE
        for face in fs:
            meta, ref = face.meta(), reference[face.name]
            assert meta.face_type is FaceType.WHOLE_FACE and meta.source_filename == ref.source_filename, kind
            np.testing.assert_array_equal(meta.landmarks, ref.landmarks)
            np.testing.assert_array_equal(meta.source_landmarks, ref.source_landmarks)
            image, _ = face.load()
            assert image.shape == (SIZE, SIZE, 3)
        assert ("dfl" in fs.faces[0].meta().extra) == (kind == "dfl")


def test_zip_pack_is_an_ordinary_stored_zip_and_round_trips_byte_identical(faceset, tmp_path):
    folder = copy_faceset(faceset, tmp_path)
    before = _files(folder)
    assert run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--delete-originals").returncode == 0
    pak = folder / PACK_NAME
    with zipfile.ZipFile(pak) as zf:  # any zip tool opens it
        assert zf.testzip() is None
        assert zf.namelist() == [INDEX_NAME, *before]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert all(zf.read(n) == data for n, data in before.items())
        index = json.loads(zf.read(INDEX_NAME))
        assert [f["name"] for f in index["faces"]] == list(before)
    listing = subprocess.run(["unzip", "-l", str(pak)], capture_output=True, text=True, check=True).stdout
    assert all(name in listing for name in before)
    assert read_packed(pak) == list(before.items())
    first = pak.read_bytes()
    write_packed(tmp_path / "again.pak", list(before.items()))
    assert (tmp_path / "again.pak").read_bytes() == first  # same faces, same bytes
    assert run_cli("util", "--input-dir", str(folder), "--unpack-faceset").returncode == 0
    assert _files(folder) == before


def test_every_command_reads_a_pack_or_names_the_unpack_command(faceset, tmp_path):
    from mainscripts.evaluate import _dst_faces
    from merger.frames import collect_frames
    from models.sample_set import load_faceset
    folder = copy_faceset(faceset, tmp_path)
    names = sorted(_files(folder))
    assert run_cli("util", "--input-dir", str(folder), "--pack-faceset", "--delete-originals").returncode == 0
    packed = _files(folder)
    for args in (("sort", "--by", "blur"), ("facesettool", "resize", "--image-size", "64", "--face-type", "same",
                                              "--no-merge"),
                 ("util", "--recover-original-aligned-filename"), ("util", "--save-faceset-metadata")):
        cmd = list(args[:2]) if args[0] == "facesettool" else [args[0]]
        result = run_cli(*cmd, "--input-dir", str(folder), *args[len(cmd):])
        assert result.returncode == 1 and len(result.error_lines) == 1, (args, result.stderr)
        assert "util --unpack-faceset" in result.error_lines[0] and PACK_NAME in result.error_lines[0], args
        assert _files(folder) == packed
    # read-only commands work on the pack
    assert run_cli("util", "--input-dir", str(folder), "--add-landmarks-debug-images").returncode == 0
    assert len(list((tmp_path / f"{folder.name}_landmarks_debug").glob("*_debug.jpg"))) == len(names)
    records = load_faceset(folder)  # train's loader
    assert [r.name for r in records] == names and records[0].face_type is FaceType.WHOLE_FACE
    assert records[0].read_bytes() == read_packed(folder / PACK_NAME)[0][1]
    assert len(_dst_faces(folder)) == len({read_face_meta(faceset / n).source_filename for n in names})  # evaluate
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in faceset.parent.glob("*.png"):  # the frames the faces came from
        shutil.copy(p, frames)
    infos = collect_frames(frames, folder)  # merge
    assert sum(len(i.landmarks) for i in infos) == len(names)
    fs = Faceset.open(folder)
    with pytest.raises(UserError, match="util --unpack-faceset"):
        fs.write_meta(fs.faces[0], fs.faces[0].meta())
    assert _files(folder) == packed


def _face_zip(faces: list[tuple[str, bytes]], index: list | None = None, compress: int = zipfile.ZIP_STORED,
              extra: list[zipfile.ZipInfo] = ()) -> bytes:
    buf = io.BytesIO()
    if index is None:
        index = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in faces]
    with zipfile.ZipFile(buf, "w", compress) as zf:
        zf.writestr(INDEX_NAME, json.dumps({"format": pack.FORMAT_NAME, "version": 1, "count": len(index),
                                            "faces": index}))
        for name, data in faces:
            zf.writestr(name, data)
        for info in extra:  # central-directory entries pointing at bytes already written
            zf.filelist.append(info)
            zf.NameToInfo[info.filename] = info
    return buf.getvalue()


def _overlapping_zip(faces: list[tuple[str, bytes]]) -> bytes:
    """The second face's local header and bytes sit inside the first face's bytes: two names, one range."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("b.jpg", faces[0][1])
    inner_info = zipfile.ZipFile(io.BytesIO(inner.getvalue())).infolist()[0]
    local = inner.getvalue()[:inner_info.header_offset + 30 + len("b.jpg") + inner_info.file_size]
    outer = [("a.jpg", local)]
    index_len = len(json.dumps({"format": pack.FORMAT_NAME, "version": 1, "count": 2, "faces": [
        {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in outer + [("b.jpg", faces[0][1])]]}))
    inner_info.header_offset = 30 + len(INDEX_NAME) + index_len + 30 + len("a.jpg")
    index = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
             for n, d in outer + [("b.jpg", faces[0][1])]]
    return _face_zip(outer, index=index, extra=[inner_info])


@pytest.mark.parametrize("variant", ["compressed", "traversal", "journal", "pth", "overlap", "index-lies",
                                     "too-many", "too-large", "not-a-zip"])
def test_hostile_zip_is_refused_before_anything_is_written(faceset, tmp_path, variant, monkeypatch):
    from mainscripts import util
    faces = list(_files(faceset).items())
    folder = tmp_path / "aligned"
    folder.mkdir()
    pak = folder / PACK_NAME
    data = {
        "compressed": lambda: _face_zip(faces, compress=zipfile.ZIP_DEFLATED),
        "traversal": lambda: _face_zip(faces + [("../evil.jpg", b"x")]),
        "journal": lambda: _face_zip(faces + [(".rename_journal.json", b"{}")]),
        "pth": lambda: _face_zip(faces + [("evil.pth", b"import os")]),
        "overlap": lambda: _overlapping_zip(faces),
        "index-lies": lambda: _face_zip(faces, index=[{"name": faces[0][0], "size": 1, "sha256": "0" * 64}]),
        "too-many": lambda: _face_zip(faces),
        "too-large": lambda: _face_zip(faces),
        "not-a-zip": lambda: _face_zip(faces)[:-30],
    }[variant]()
    pak.write_bytes(data)
    if variant in ("too-many", "too-large"):  # the bounds, made small enough to test in process
        monkeypatch.setattr(pack, "MAX_ENTRIES" if variant == "too-many" else "MAX_ENTRY", 2 if variant == "too-many" else 100)
        with pytest.raises(UserError, match="refusing this packed faceset"):
            util.unpack_faceset(folder)
    else:
        result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
        assert result.returncode == 1 and len(result.error_lines) == 1, result.stderr
        assert str(pak) in result.error_lines[0]
        with pytest.raises(UserError):
            list_packed(pak)
    assert [p.name for p in folder.iterdir()] == [PACK_NAME]
    assert not (tmp_path / "evil.jpg").exists()


def test_damaged_dfl_faceset_pak_is_named(tmp_path):
    """DFL's pack is read (tests/test_dfl_pack.py); one whose offset table does not fit its data is refused."""
    pak = tmp_path / PACK_NAME
    pak.write_bytes((1).to_bytes(8, "little") + (10).to_bytes(8, "little") + b"\x80\x04]\x94." + b"\0" * 40)
    with pytest.raises(UserError, match="refusing this DeepFaceLab faceset.pak: its offset table") as err:
        Faceset.open(tmp_path)
    assert err.value.path == pak


def test_legacy_pack_digest_is_checked_when_a_face_is_read(faceset, tmp_path):
    files = list(_files(faceset).items())
    write_legacy_pack(tmp_path / PACK_NAME, files)
    raw = bytearray((tmp_path / PACK_NAME).read_bytes())
    raw[-10] ^= 0xFF
    (tmp_path / PACK_NAME).write_bytes(bytes(raw))
    fs = Faceset.open(tmp_path)
    assert len(fs) == len(files)
    with pytest.raises(UserError, match="SHA-256"):
        fs.faces[-1].read_bytes()
    shutil.rmtree(tmp_path)

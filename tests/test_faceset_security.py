"""Hostile facesets (they are shared as archives): rename journals that move files out of or into the
folder, packs that carry more than faces, and face metadata (DFL's pickle, our JSON) that is too deep,
too big or not plain data. Every attack must end in one line naming the file, with nothing moved,
written or run."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from core.rename_journal import JOURNAL_NAME, STAGING_NAME, finish_interrupted
from faceset.dfl_pickle import restricted_loads
from faceset.face_file import load_aligned_face, read_face_meta
from faceset.pack import PACK_NAME
from tests.conftest import run_cli
from tests.facesets import make_faceset


@pytest.fixture(scope="session")
def faceset(tmp_path_factory) -> Path:
    """Two real faces (96 px) extracted from two photos."""
    root = tmp_path_factory.mktemp("securityset")
    files = make_faceset(["obama.jpg", "biden.jpg"], root, per_photo=1, size=96)
    assert len(files) == 2
    return root / "aligned"


def _tree(root: Path) -> dict[str, object]:
    """Every path under `root` (links not followed) with its bytes, 'dir' or link target."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    return text


# ---- rename journals ----------------------------------------------------------------------------


def _scene(faceset: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """tmp/ws/aligned (the shared faceset, with a planted evil.pth), tmp/outside/secret.txt (a user's
    file) and tmp/site-packages (where a .pth file would run code at the next Python start)."""
    folder = tmp_path / "ws" / "aligned"
    shutil.copytree(faceset, folder)
    (folder / "evil.pth").write_text("import os; os.system('touch pwned')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the user's private file")
    site = tmp_path / "site-packages"
    site.mkdir()
    return folder, outside, site


def _plant_journal(folder: Path, moves: object, phase: str = "stage") -> Path:
    (folder / STAGING_NAME).mkdir(exist_ok=True)
    path = folder / JOURNAL_NAME
    path.write_text(json.dumps({"format": "facekit.rename_journal", "what": "sort by blur", "base": "parent",
                                "phase": phase, "moves": moves}))
    return path


def _attack_moves(folder: Path) -> list[dict[str, str]]:
    face = sorted(folder.glob("*.jpg"))[0].name
    return [
        # a legitimate-looking rename first: it must not happen either
        {"src": f"aligned/{face}", "stage": f"aligned/.renaming/000000_{face}", "dst": "aligned/00000.jpg"},
        # pull a file from outside into the faceset (then `pack` would ship it to the attacker)
        {"src": "../outside/secret.txt", "stage": "aligned/.renaming/000001_secret.txt", "dst": "aligned/secret.jpg"},
        # push a .pth file into site-packages: code runs at the next Python start
        {"src": "aligned/evil.pth", "stage": "aligned/.renaming/000002_evil.pth", "dst": "../site-packages/evil.pth"},
    ]


@pytest.mark.parametrize("command", [
    ["sort", "--input-dir", "DIR", "--by", "blur"],
    ["util", "--input-dir", "DIR", "--recover-original-aligned-filename"],
    ["facesettool", "resize", "--input-dir", "DIR", "--image-size", "64", "--face-type", "same", "--no-merge"],
], ids=["sort", "util", "facesettool"])
def test_crafted_journal_moves_nothing_through_the_cli(faceset, tmp_path, command):
    folder, outside, site = _scene(faceset, tmp_path)
    journal = _plant_journal(folder, _attack_moves(folder))
    before = _tree(tmp_path)

    result = run_cli(*[str(folder) if a == "DIR" else a for a in command])

    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert str(journal) in result.error_lines[0]
    assert "unexpected" not in result.stderr
    assert (outside / "secret.txt").is_file()          # (a) the file outside stayed where it was
    assert not (site / "evil.pth").exists()
    assert _tree(tmp_path) == before                    # (b) nothing moved (or was written) at all


def _variant(name: str, folder: Path, outside: Path, site: Path) -> tuple[Path, str]:
    """Plant one kind of hostile journal; returns its path and a word the refusal must contain."""
    faces = sorted(p.name for p in folder.glob("*.jpg"))
    if name == "absolute-dst":
        return _plant_journal(folder, [{"src": "aligned/evil.pth", "stage": "aligned/.renaming/000000_evil.pth",
                                        "dst": str(site / "evil.pth")}]), "outside"
    if name == "dotdot-inside-src":
        return _plant_journal(folder, [{"src": "aligned/../../outside/secret.txt",
                                        "stage": "aligned/.renaming/000000_secret.txt",
                                        "dst": "aligned/secret.jpg"}]), "outside"
    if name == "stage-outside":  # the destination exists, so the old code left the file in the 'stage'
        return _plant_journal(folder, [{"src": "aligned/evil.pth", "stage": "../site-packages/evil.pth",
                                        "dst": f"aligned/{faces[0]}"}]), "outside"
    if name == "staging-symlink-out":
        (folder / STAGING_NAME).symlink_to(outside, target_is_directory=True)
        return _plant_journal(folder, [{"src": f"aligned/{faces[0]}", "stage": "aligned/.renaming/secret.txt",
                                        "dst": "aligned/secret.jpg"}], phase="place"), "symbolic link"
    if name == "trash-symlink-out":
        (folder.parent / "aligned_trash").symlink_to(site, target_is_directory=True)
        return _plant_journal(folder, [{"src": "aligned/evil.pth", "stage": "aligned/.renaming/000000_evil.pth",
                                        "dst": "aligned_trash/evil.pth"}]), "symbolic link"
    if name == "journal-symlink":  # a harmless journal elsewhere; a link could as well point at /dev/zero
        elsewhere = outside / "j.json"
        elsewhere.write_text(json.dumps({"format": "facekit.rename_journal", "what": "x", "base": "parent",
                                         "phase": "stage", "moves": [
                                             {"src": f"aligned/{faces[0]}", "stage": f"aligned/.renaming/0_{faces[0]}",
                                              "dst": "aligned/00000.jpg"}]}))
        (folder / STAGING_NAME).mkdir()
        (folder / JOURNAL_NAME).symlink_to(elsewhere)
        return folder / JOURNAL_NAME, "regular file"
    if name == "wrong-types":
        return _plant_journal(folder, [{"src": ["aligned", faces[0]], "stage": "aligned/.renaming/0_x.jpg",
                                        "dst": "aligned/00000.jpg"}]), "src"
    if name == "deeply-nested":
        path = _plant_journal(folder, [])
        path.write_text('{"format": "facekit.rename_journal", "moves": ' + "[" * 100_000 + "]" * 100_000 + "}")
        return path, "nested"
    if name == "too-large":  # sparse: the size alone must refuse it, before it is read
        path = _plant_journal(folder, [])
        with open(path, "r+b") as f:
            f.truncate((64 << 20) + 1)
        return path, "too large"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["absolute-dst", "dotdot-inside-src", "stage-outside", "staging-symlink-out",
                                  "trash-symlink-out", "journal-symlink", "wrong-types", "deeply-nested",
                                  "too-large"])
def test_hostile_journal_is_refused_before_any_move(faceset, tmp_path, name):
    folder, outside, site = _scene(faceset, tmp_path)
    journal, word = _variant(name, folder, outside, site)
    before = _tree(tmp_path)
    with pytest.raises(UserError) as err:
        finish_interrupted(folder)
    assert err.value.path == journal
    assert word in _one_line(err, journal)
    assert _tree(tmp_path) == before
    assert not (site / "evil.pth").exists() and (outside / "secret.txt").is_file()


# ---- packed facesets ----------------------------------------------------------------------------


def _raw_pack(path: Path, files: list[tuple[str, bytes]], index: dict | None = None, blob: bytes | None = None) -> None:
    """A pack written byte by byte (the toolkit's writer refuses to make a hostile one)."""
    entries, offset = [], 0
    for name, data in files:
        entries.append({"name": name, "offset": offset, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        offset += len(data)
    if index is None:
        index = {"format": "facekit.packed_faceset", "version": 1, "count": len(entries), "entries": entries}
    raw = json.dumps(index).encode("ascii") if blob is None else blob
    path.write_bytes(b"FACEPAK\0" + struct.pack(">IQ", 1, len(raw)) + raw + b"".join(d for _, d in files))


@pytest.mark.parametrize("variant", ["journal", "pth", "overlap", "nested-index"])
def test_hostile_pack_is_refused_before_anything_is_written(faceset, tmp_path, variant):
    folder = tmp_path / "ws" / "aligned"
    folder.mkdir(parents=True)
    faces = [(p.name, p.read_bytes()) for p in sorted(faceset.glob("*.jpg"))]
    pak = folder / PACK_NAME
    bad = None
    if variant == "journal":  # unpacked, the next sort would 'finish' this rename
        bad = JOURNAL_NAME
        evil = json.dumps({"format": "facekit.rename_journal", "what": "x", "base": "parent", "phase": "place",
                           "moves": [{"src": "aligned/a.jpg", "stage": "aligned/.renaming/a.jpg",
                                      "dst": "../../x.pth"}]}).encode()
        _raw_pack(pak, faces + [(bad, evil)])
    elif variant == "pth":
        bad = "evil.pth"
        _raw_pack(pak, faces + [(bad, b"import os; os.system('touch pwned')\n")])
    elif variant == "overlap":  # many names for the same bytes: a small pack that unpacks to gigabytes
        bad = "copy.jpg"
        name, data = faces[0]
        entry = {"offset": 0, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        index = {"format": "facekit.packed_faceset", "version": 1, "count": 2,
                 "entries": [dict(entry, name=name), dict(entry, name=bad)]}
        _raw_pack(pak, faces[:1], index=index)
    else:
        _raw_pack(pak, faces, blob=b'{"format": "facekit.packed_faceset", "entries": ' + b"[" * 100_000
                  + b"]" * 100_000 + b"}")
    result = run_cli("util", "--input-dir", str(folder), "--unpack-faceset")
    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert str(pak) in line and "unexpected" not in line
    if bad:
        assert bad in line
    assert [p.name for p in folder.iterdir()] == [PACK_NAME]


# ---- face metadata: DFL's pickle and our JSON ---------------------------------------------------


def _with_app(face: Path, marker: int, payloads: list[bytes]) -> bytes:
    """The face's JPEG with our metadata removed and `payloads` inserted as APPn segments."""
    data = face.read_bytes()
    pos, segs = 2, []
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segs.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    segs = [(m, p) for m, p in segs if not (m == 0xEB and p.startswith(b"FACEKIT\0"))]
    segs = segs[:1] + [(marker, p) for p in payloads] + segs[1:]
    return b"\xff\xd8" + b"".join(struct.pack(">BBH", 0xFF, m, len(p) + 2) + p for m, p in segs) + data[pos:]


def _dfl_head(face: Path, landmarks: bool = True) -> bytes:
    """The face's DFL dict pickled as DFL does, without its final STOP, so that a test can append one
    more key (SETITEM) and STOP."""
    _, meta = load_aligned_face(face)
    d = {"face_type": meta.face_type.long_name, "source_filename": meta.source_filename}
    if landmarks:
        d["landmarks"] = meta.landmarks.tolist()
    return pickle.dumps(d, protocol=3)[:-1]


def _key(name: str) -> bytes:
    raw = name.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


_G = {  # pickle GLOBAL opcodes
    "reconstruct": b"cnumpy.core.multiarray\n_reconstruct\n",
    "ndarray": b"cnumpy\nndarray\n",
    "dtype": b"cnumpy\ndtype\n",
    "scalar": b"cnumpy.core.multiarray\nscalar\n",
}


def _hostile_dfl(kind: str, head: bytes) -> tuple[bytes, str]:
    """(APP15 payload, a word the refusal must contain)."""
    if kind == "nested-500":  # 3 KB: ends in a RecursionError wherever it is walked
        return head + _key("deep") + b"]" * 500 + b"a" * 499 + b"s.", "nested"
    if kind == "huge-array":  # `_reconstruct(ndarray, (2**24, 2), 'f4')`: 128 MB from a few bytes
        body = (_G["reconstruct"] + _G["ndarray"] + b"J" + struct.pack("<i", 1 << 24) + b"K\x02\x86"
                + b"X\x02\x00\x00\x00f4" + b"\x87R")
        return head + _key("landmarks") + body + b"s.", "too large"
    if kind == "shared-lists":  # a list of 1000 references to one list of 1000 floats: 1M elements
        inner = b"](" + b"G?\xf0\x00\x00\x00\x00\x00\x00" * 1000 + b"e" + b"r\xa0\x86\x01\x00"  # memo 100000
        outer = b"](" + b"j\xa0\x86\x01\x00" * 1000 + b"e"  # 1000 x LONG_BINGET 100000
        return head + _key("shared") + inner + b"0" + outer + b"s.", "too large"
    if kind == "mask-bomb":  # a 25 KB PNG that decodes to 5000x5000 pixels (100 MB as float32)
        mask = np.frombuffer(_png_gray(5000, 5000), np.uint8)
        return head + _key("xseg_mask") + pickle.dumps(mask, protocol=3)[2:-1] + b"s.", "too large"
    if kind == "infinite-rect":
        return head + _key("source_rect") + pickle.dumps((float("inf"), 0.0, 1.0, 1.0), protocol=3)[2:-1] + b"s.", \
            "source_rect"
    if kind == "nan-landmarks":
        return head + _key("landmarks") + pickle.dumps([[float("nan"), 0.0]] * 68, protocol=3)[2:-1] + b"s.", "finite"
    raise AssertionError(kind)


def _png_gray(width: int, height: int) -> bytes:
    """A valid all-black 8-bit PNG, compressed row by row (never held whole in memory)."""
    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["nested-500", "huge-array", "shared-lists", "mask-bomb", "infinite-rect",
                                  "nan-landmarks"])
def test_dfl_metadata_is_bounded(faceset, tmp_path, kind):
    face = sorted(faceset.glob("*.jpg"))[0]
    payload, word = _hostile_dfl(kind, _dfl_head(face, landmarks=kind not in ("huge-array", "nan-landmarks")))
    assert len(payload) < 0xFFF0
    path = tmp_path / "hostile.jpg"
    path.write_bytes(_with_app(face, 0xEF, [payload]))
    tracemalloc.start()
    try:
        for fn in (read_face_meta, load_aligned_face):
            with pytest.raises(UserError) as err:
                fn(path)
            assert err.value.path == path
            assert word in _one_line(err, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak


def test_deeply_nested_dfl_metadata_is_one_warning_naming_the_file(faceset, tmp_path):
    folder = tmp_path / "aligned"
    folder.mkdir()
    face = sorted(faceset.glob("*.jpg"))[0]
    payload, _ = _hostile_dfl("nested-500", _dfl_head(face))
    (folder / "deep.jpg").write_bytes(_with_app(face, 0xEF, [payload]))
    result = run_cli("util", "--input-dir", str(folder), "--save-faceset-metadata")
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert any("deep.jpg" in line and "nested" in line for line in result.stderr.splitlines()), result.stderr
    assert result.returncode == 1 and len(result.error_lines) == 1  # no face left to save


def test_our_json_metadata_is_bounded(faceset, tmp_path):
    face = sorted(faceset.glob("*.jpg"))[0]
    meta_json = json.loads(_our_json(face))

    big = dict(meta_json, extra={"blob": "x" * (9 << 20)})  # 9 MB: well past any real face's metadata
    nested = "[" * 100_000 + "]" * 100_000
    deep = json.dumps(dict(meta_json, extra={"deep": 0})).replace('"deep": 0', '"deep": ' + nested)
    for name, blob, word in (("big.jpg", json.dumps(big).encode(), "too large"), ("deep.jpg", deep.encode(), "nested")):
        path = tmp_path / name
        path.write_bytes(_with_app(face, 0xEB, _facekit_chunks(blob)))
        with pytest.raises(UserError) as err:
            read_face_meta(path)
        assert word in _one_line(err, path)


def _our_json(face: Path) -> bytes:
    data = face.read_bytes()
    pos, parts = 2, []
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        p = data[pos + 4:pos + 2 + length]
        if data[pos + 1] == 0xEB and p.startswith(b"FACEKIT\0"):
            parts.append(p[12:])
        pos += 2 + length
    return b"".join(parts)


def _facekit_chunks(blob: bytes) -> list[bytes]:
    size = 0xFFFF - 2 - 12
    chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
    return [b"FACEKIT\0" + struct.pack(">HH", i, len(chunks)) + c for i, c in enumerate(chunks)]


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_only_plain_data_is_loaded(tmp_path):
    marker = tmp_path / "pwned"
    hostile = {
        "os.system": pickle.dumps({"landmarks": _Reduce(os.system, (f"touch '{marker}'",))}),
        "builtins.eval": pickle.dumps({"landmarks": _Reduce(eval, (f"open('{marker}', 'w')",))}),
        # numpy callables with arguments that do not make a plain numeric array
        "ndarray-call": _G["ndarray"] + b"J" + struct.pack("<i", 1 << 20) + b"\x85X\x01\x00\x00\x00O\x86R",
        "object-dtype": _G["dtype"] + b"X\x01\x00\x00\x00O\x89\x88\x87R",
        "object-array": pickle.dumps(np.array([None, {}], dtype=object), protocol=3),
        "object-scalar": _G["scalar"] + _G["dtype"] + b"X\x01\x00\x00\x00O\x89\x88\x87R" + b"N\x86R",
        "structured": pickle.dumps(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), protocol=3),
        "set": pickle.dumps({"landmarks": {1, 2}}, protocol=4),
    }
    for name, body in hostile.items():
        payload = body if body.startswith(b"\x80") else b"\x80\x03" + body + b"."
        with pytest.raises(UserError) as err:
            restricted_loads(payload, tmp_path / f"{name}.jpg")
        assert str(tmp_path / f"{name}.jpg") in str(err.value) and "\n" not in str(err.value), name
    assert not marker.exists()
    with pytest.raises(UserError, match="too large"):  # a payload past the cap is refused unread
        restricted_loads(pickle.dumps({"x": b"\0" * (8 << 20)}, protocol=3), tmp_path / "big.jpg")


# ---- a shared faceset_metadata.json -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nested", "dot-file"])
def test_hostile_saved_metadata_file_is_refused_naming_it(faceset, tmp_path, kind):
    folder = tmp_path / "aligned"
    shutil.copytree(faceset, folder)
    meta_file = folder / "faceset_metadata.json"
    if kind == "nested":
        meta_file.write_text("[" * 100000 + "]" * 100000)
    else:  # an entry that would write a rename journal into the folder
        assert run_cli("util", "--input-dir", str(folder), "--save-faceset-metadata").returncode == 0
        saved = json.loads(meta_file.read_text())
        entry = next(iter(saved["faces"].values()))
        saved["faces"] = {JOURNAL_NAME: entry}
        meta_file.write_text(json.dumps(saved))
    before = _tree(folder)
    result = run_cli("util", "--input-dir", str(folder), "--restore-faceset-metadata")
    assert result.returncode != 0
    assert "unexpected" not in result.stderr and str(meta_file) in result.stderr, result.stderr
    assert not (folder / JOURNAL_NAME).exists()
    assert _tree(folder) == before

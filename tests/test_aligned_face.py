"""The aligned-face file: round trips, byte-exact rewrites, big metadata, DFL files, hostile files."""
from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import UserError
from facelib.face_type import FaceType
from faceset.face_file import (
    FaceMeta,
    load_aligned_face,
    read_face_meta,
    update_face_meta,
    write_aligned_face,
)

DATA = Path(__file__).parent / "data"


# ---- helpers (an independent JPEG walker, so tests do not trust the code under test) ----------


def _walk(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Header segments (marker, payload) and everything from SOS on."""
    assert data[:2] == b"\xff\xd8"
    pos, segs = 2, []
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        if marker == 0xDA:
            return segs, data[pos:]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segs.append((marker, data[pos + 4:pos + 2 + length]))
        pos += 2 + length


def _join(segs: list[tuple[int, bytes]], scan: bytes) -> bytes:
    out = b"\xff\xd8"
    for m, p in segs:
        out += struct.pack(">BBH", 0xFF, m, len(p) + 2) + p
    return out + scan


def _ours(segs):
    return [p for m, p in segs if m == 0xEB and p.startswith(b"FACEKIT\0")]


def _not_ours(segs):
    return [(m, p) for m, p in segs if not (m == 0xEB and p.startswith(b"FACEKIT\0"))]


@pytest.fixture(scope="module")
def face_bgr() -> np.ndarray:
    """A real face photo cut to a square around the face, as an extractor would store it."""
    img = cv2.imread(str(DATA / "faces" / "obama.jpg"))
    assert img is not None
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0:y0 + s, x0:x0 + s], (256, 256), interpolation=cv2.INTER_AREA)


def _plain_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    assert ok
    return buf.tobytes()


def _full_meta(rng: np.random.Generator, mask_size: int = 64, identity_len: int = 512) -> FaceMeta:
    return FaceMeta(
        face_type=FaceType.WHOLE_FACE,
        landmarks=rng.uniform(0, 256, (68, 2)).astype(np.float32),
        source_filename="00042.png",
        source_rect=(101, 57, 388, 349),
        source_landmarks=rng.uniform(0, 1920, (68, 2)).astype(np.float32),
        image_to_face_mat=rng.normal(size=(2, 3)),
        eyebrows_expand_mod=1.25,
        seg_ie_polys=[
            {"type": 1, "pts": rng.uniform(0, 256, (7, 2)).astype(np.float32)},
            {"type": 0, "pts": rng.uniform(0, 256, (4, 2)).astype(np.float32)},
        ],
        # values on the 8-bit grid survive the PNG storage exactly
        xseg_mask=(rng.integers(0, 256, (mask_size, mask_size)) / 255.0).astype(np.float32),
        identity=rng.normal(size=identity_len).astype(np.float32),
        extra={"person_name": "obama", "nested": {"a": [1, 2.5, None]}},
    )


def _assert_meta_equal(a: FaceMeta, b: FaceMeta) -> None:
    assert a.face_type == b.face_type
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.source_filename == b.source_filename
    assert a.source_rect == b.source_rect
    np.testing.assert_array_equal(a.source_landmarks, b.source_landmarks)
    np.testing.assert_array_equal(a.image_to_face_mat, b.image_to_face_mat)
    assert a.eyebrows_expand_mod == b.eyebrows_expand_mod
    assert len(a.seg_ie_polys) == len(b.seg_ie_polys)
    for pa, pb in zip(a.seg_ie_polys, b.seg_ie_polys):
        assert pa["type"] == pb["type"]
        np.testing.assert_array_equal(pa["pts"], pb["pts"])
    np.testing.assert_allclose(a.xseg_mask, b.xseg_mask, atol=1e-6)
    np.testing.assert_array_equal(a.identity, b.identity)
    assert a.extra == b.extra


# ---- our format -------------------------------------------------------------------------------


def test_round_trip_every_field(tmp_path, face_bgr):
    meta = _full_meta(np.random.default_rng(1))
    path = tmp_path / "00042_0.jpg"
    write_aligned_face(path, face_bgr, meta, jpeg_quality=95)

    image, back = load_aligned_face(path)
    assert image.shape == face_bgr.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - face_bgr.astype(int)).mean() < 3  # only JPEG loss
    _assert_meta_equal(meta, back)
    assert back.landmarks.dtype == np.float32 and back.image_to_face_mat.dtype == np.float64
    assert back.xseg_mask.dtype == np.float32 and back.xseg_mask.shape == (64, 64)
    _assert_meta_equal(meta, read_face_meta(path))
    # still an ordinary JPEG for every other tool
    assert cv2.imread(str(path)).shape == face_bgr.shape
    segs, _ = _walk(path.read_bytes())
    assert segs[0][0] == 0xE0 and segs[1][0] == 0xEB  # after JFIF, before the tables
    assert not list(tmp_path.glob("*.partial*"))


def test_minimal_meta_round_trip(tmp_path, face_bgr):
    meta = FaceMeta(face_type=FaceType.FULL, landmarks=np.zeros((68, 2)))
    path = tmp_path / "f.jpg"
    write_aligned_face(path, face_bgr, meta)
    back = read_face_meta(path)
    assert back.face_type.long_name == "full_face" and back.source_rect is None and back.xseg_mask is None
    assert back.seg_ie_polys is None and back.identity is None and back.extra == {}
    assert back.eyebrows_expand_mod == 1.0


def test_plain_jpeg_has_no_meta(tmp_path, face_bgr):
    path = tmp_path / "plain.jpg"
    path.write_bytes(_plain_jpeg(face_bgr))
    assert read_face_meta(path) is None
    with pytest.raises(UserError, match="no face metadata"):
        load_aligned_face(path)


def test_update_keeps_image_bytes(tmp_path, face_bgr):
    rng = np.random.default_rng(2)
    path = tmp_path / "f.jpg"
    write_aligned_face(path, face_bgr, _full_meta(rng, mask_size=32))
    before_segs, before_scan = _walk(path.read_bytes())

    new = _full_meta(rng, mask_size=200)
    new.face_type = FaceType.HEAD
    update_face_meta(path, new)

    after_segs, after_scan = _walk(path.read_bytes())
    assert after_scan == before_scan  # compressed image untouched
    assert _not_ours(after_segs) == _not_ours(before_segs)  # tables, JFIF: untouched
    _assert_meta_equal(new, read_face_meta(path))
    assert not list(tmp_path.glob("*.partial*"))


def test_update_is_atomic(tmp_path, face_bgr, monkeypatch):
    path = tmp_path / "f.jpg"
    write_aligned_face(path, face_bgr, _full_meta(np.random.default_rng(3)))
    original = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("core.fileio.os.replace", boom)
    with pytest.raises(UserError, match="(cannot|could not) write"):
        update_face_meta(path, FaceMeta(face_type=FaceType.HEAD, landmarks=np.ones((68, 2))))
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["f.jpg"]


def test_large_meta_spans_segments(tmp_path, face_bgr):
    rng = np.random.default_rng(4)
    meta = _full_meta(rng, mask_size=384, identity_len=30000)  # noise mask: PNG hardly compresses
    path = tmp_path / "big.jpg"
    write_aligned_face(path, face_bgr, meta)
    segs, _ = _walk(path.read_bytes())
    ours = _ours(segs)
    assert len(ours) >= 4
    assert all(len(p) + 2 <= 0xFFFF for p in ours)
    image, back = load_aligned_face(path)
    _assert_meta_equal(meta, back)
    assert image.shape == face_bgr.shape

    # the pieces are re-joined by sequence number, not by file order
    first = next(i for i, (m, p) in enumerate(segs) if m == 0xEB)
    n = len(ours)
    shuffled = segs[:first] + segs[first:first + n][::-1] + segs[first + n:]
    path.write_bytes(_join(shuffled, _walk(path.read_bytes())[1]))
    _assert_meta_equal(meta, read_face_meta(path))

    # a lost piece is reported, not silently mis-joined
    segs, scan = _walk(path.read_bytes())
    path.write_bytes(_join(segs[:first + 1] + segs[first + 2:], scan))
    with pytest.raises(UserError, match="missing"):
        read_face_meta(path)


def test_other_tools_app11_is_ignored_and_kept(tmp_path, face_bgr):
    segs, scan = _walk(_plain_jpeg(face_bgr))
    jumbf = b"JP\x00\x01" + b"\xff\x00not ours" * 10
    path = tmp_path / "f.jpg"
    path.write_bytes(_join(segs[:1] + [(0xEB, jumbf)] + segs[1:], scan))
    assert read_face_meta(path) is None
    update_face_meta(path, FaceMeta(face_type=FaceType.FULL, landmarks=np.zeros((68, 2))))
    new_segs, new_scan = _walk(path.read_bytes())
    assert (0xEB, jumbf) in new_segs and new_scan == scan
    assert read_face_meta(path).face_type.long_name == "full_face"


# ---- broken files -----------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text and path.name in text
    return text


def test_truncated_jpeg(tmp_path, face_bgr):
    good = tmp_path / "good.jpg"
    write_aligned_face(good, face_bgr, _full_meta(np.random.default_rng(5)))
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 2, 40, 3):
        bad = tmp_path / f"cut{cut}.jpg"
        bad.write_bytes(data[:cut])
        for fn in (read_face_meta, load_aligned_face):
            with pytest.raises(UserError) as err:
                fn(bad)
            assert "truncated" in _one_line(err, bad) or "not a JPEG" in str(err.value)


def test_not_a_jpeg_and_missing(tmp_path, face_bgr):
    png = tmp_path / "face.png"
    cv2.imwrite(str(png), face_bgr)
    with pytest.raises(UserError, match="not a JPEG"):
        read_face_meta(png)
    with pytest.raises(UserError, match="not found"):
        read_face_meta(tmp_path / "nope.jpg")


def test_corrupt_our_segment(tmp_path, face_bgr):
    path = tmp_path / "f.jpg"
    segs, scan = _walk(_plain_jpeg(face_bgr))
    bad = b"FACEKIT\0" + struct.pack(">HH", 0, 1) + b'{"format": "facekit.face_meta", "versi'
    path.write_bytes(_join(segs[:1] + [(0xEB, bad)] + segs[1:], scan))
    with pytest.raises(UserError) as err:
        read_face_meta(path)
    assert "corrupt face metadata" in _one_line(err, path)


# ---- DeepFaceLab files ------------------------------------------------------------------------


def _dfl_jpeg(image: np.ndarray, app15_payload: bytes) -> bytes:
    """A JPEG with APP15 after the last APPn segment, where DFL puts it."""
    segs, scan = _walk(_plain_jpeg(image))
    last_app = max(i for i, (m, _) in enumerate(segs) if m & 0xF0 == 0xE0)
    return _join(segs[:last_app + 1] + [(0xEF, app15_payload)] + segs[last_app + 1:], scan)


def _dfl_dict(rng: np.random.Generator, legacy_polys: bool) -> dict:
    mask = (rng.uniform(size=(96, 96)) > 0.5).astype(np.uint8) * 255
    mask[10:20, 10:20] = 128
    pts = rng.uniform(0, 256, (5, 2)).astype(np.float32)
    polys = [(1, pts)] if legacy_polys else {"polys": [{"type": 1, "pts": pts}]}
    return {
        "face_type": "whole_face",
        "landmarks": rng.uniform(0, 256, (68, 2)).astype(np.float32),
        "source_filename": "00042.png",
        "source_rect": (np.int64(101), np.int64(57), 388, 349),
        "source_landmarks": rng.uniform(0, 1920, (68, 2)).astype(np.float32),
        "image_to_face_mat": rng.normal(size=(2, 3)),
        "eyebrows_expand_mod": 1.5,
        "seg_ie_polys": polys,
        "xseg_mask": cv2.imencode(".png", mask)[1],  # DFL keeps the encoded buffer as an ndarray
        "relighted": False,
    }


@pytest.mark.parametrize("variant", ["numpy2-proto4", "numpy1-proto3-legacy-polys", "proto5"])
def test_dfl_file_loads(tmp_path, face_bgr, variant):
    d = _dfl_dict(np.random.default_rng(6), legacy_polys="legacy" in variant)
    if variant.startswith("numpy1"):
        # what DFL on numpy 1.x writes: the module is spelled numpy.core
        payload = pickle.dumps(d, protocol=3).replace(b"numpy._core.", b"numpy.core.")
        assert b"numpy.core.multiarray" in payload
    else:
        payload = pickle.dumps(d, protocol=5 if variant == "proto5" else 4)
    path = tmp_path / "00042_0.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, payload))

    image, meta = load_aligned_face(path)
    assert image.shape == face_bgr.shape
    assert meta.face_type.long_name == "whole_face"
    np.testing.assert_array_equal(meta.landmarks, d["landmarks"])
    assert meta.source_filename == "00042.png"
    assert meta.source_rect == (101, 57, 388, 349)
    np.testing.assert_array_equal(meta.source_landmarks, d["source_landmarks"])
    np.testing.assert_array_equal(meta.image_to_face_mat, d["image_to_face_mat"])
    assert meta.eyebrows_expand_mod == 1.5
    assert len(meta.seg_ie_polys) == 1 and meta.seg_ie_polys[0]["type"] == 1
    np.testing.assert_array_equal(meta.seg_ie_polys[0]["pts"], d["seg_ie_polys"][0][1] if "legacy" in variant
                                  else d["seg_ie_polys"]["polys"][0]["pts"])
    expected_mask = cv2.imdecode(d["xseg_mask"], cv2.IMREAD_UNCHANGED) / 255.0
    np.testing.assert_allclose(meta.xseg_mask, expected_mask, atol=1e-6)
    assert meta.extra == {"dfl": {"relighted": False}}


def test_dfl_file_keeps_its_dfl_segment_on_update(tmp_path, face_bgr):
    path = tmp_path / "f.jpg"
    original = pickle.dumps(_dfl_dict(np.random.default_rng(7), False))
    path.write_bytes(_dfl_jpeg(face_bgr, original))
    _, scan = _walk(path.read_bytes())
    meta = read_face_meta(path)
    meta.extra["original_name"] = "f.jpg"  # only our keys change: DFL's bytes are kept verbatim
    update_face_meta(path, meta)
    segs, new_scan = _walk(path.read_bytes())
    assert new_scan == scan
    assert [p for m, p in segs if m == 0xEF] == [original]
    assert read_face_meta(path).extra["original_name"] == "f.jpg"

    meta.eyebrows_expand_mod = 2.0  # a DFL field changes: DFL's dict is rewritten, as DFL reads it
    update_face_meta(path, meta)
    (payload,) = [p for m, p in _walk(path.read_bytes())[0] if m == 0xEF]
    d = pickle.loads(payload)
    assert d["eyebrows_expand_mod"] == 2.0 and d["relighted"] is False
    np.testing.assert_array_equal(d["landmarks"], meta.landmarks)
    assert read_face_meta(path).eyebrows_expand_mod == 2.0


def test_dfl_edit_after_ours_is_read(tmp_path, face_bgr):
    """DFL (its XSeg editor) rewrites a face we wrote: its APP15 changes, our JSON stays; DFL's fields win."""
    path = tmp_path / "f.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, pickle.dumps(_dfl_dict(np.random.default_rng(9), False))))
    meta = read_face_meta(path)
    meta.extra["original_name"] = "f.jpg"
    meta.eyebrows_expand_mod = 1.25
    update_face_meta(path, meta)
    segs, scan = _walk(path.read_bytes())
    d = pickle.loads([p for m, p in segs if m == 0xEF][0])
    d["seg_ie_polys"] = {"polys": [{"type": 0, "pts": np.array([[1, 2], [3, 4], [5, 7]], np.float32)}]}
    path.write_bytes(_join([(m, pickle.dumps(d) if m == 0xEF else p) for m, p in segs], scan))
    back = read_face_meta(path)
    assert back.seg_ie_polys[0]["type"] == 0 and back.seg_ie_polys[0]["pts"][2, 1] == 7
    assert back.eyebrows_expand_mod == 1.25 and back.extra["original_name"] == "f.jpg"


def test_dfl_old_file_without_face_type_defaults_to_full(tmp_path, face_bgr):
    d = {"landmarks": np.zeros((68, 2), np.float32), "source_filename": "1.png", "seg_ie_polys": None}
    path = tmp_path / "f.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, pickle.dumps(d)))
    meta = read_face_meta(path)
    assert meta.face_type.long_name == "full_face" and meta.seg_ie_polys is None and meta.image_to_face_mat is None


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_malicious_pickle_is_refused(tmp_path, face_bgr):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"face_type": "full_face", "landmarks": _Evil(marker)})
    path = tmp_path / "evil.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, payload))

    for fn in (read_face_meta, load_aligned_face):
        with pytest.raises(UserError) as err:
            fn(path)
        text = _one_line(err, path)
        assert "refusing to load" in text and "system" in text
    assert not marker.exists()

    # the payload is armed: a plain unpickler would have run it (proves the test means something)
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("obj", [
    __import__("collections").OrderedDict(a=1),
    np.load,
    {"x": __import__("datetime").date(2020, 1, 1)},
])
def test_other_globals_are_refused(tmp_path, face_bgr, obj):
    path = tmp_path / "f.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, pickle.dumps(obj)))
    with pytest.raises(UserError, match=r"refusing to load .*\(global "):
        read_face_meta(path)


@pytest.mark.parametrize("payload", [
    bytes(np.random.default_rng(8).integers(0, 256, 300, dtype=np.uint8)),
    b"Adobe\x00d\x00\x00\x00\x00\x01",
    b"\x80\x04\x95garbage that is not a pickle",
    pickle.dumps([1, 2, 3]),
])
def test_garbage_app15(tmp_path, face_bgr, payload):
    if payload[:1] == b"\x80" and payload[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and b"garbage" not in payload:
        expected = "not a dict"
    elif payload[:1] == b"\x80" and payload[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        expected = "corrupt DFL metadata"
    else:
        expected = "APP15"
    path = tmp_path / "f.jpg"
    path.write_bytes(_dfl_jpeg(face_bgr, payload))
    with pytest.raises(UserError) as err:
        read_face_meta(path)
    assert expected in _one_line(err, path)

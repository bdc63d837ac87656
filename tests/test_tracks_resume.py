"""Face tracks survive an interrupted `extract`: the resumed run continues the tracks of the frames
done before (issue 17), and the one-pass tracking (faces written as they are found, track ids added
after linking) writes what the two-pass one (frames read again to write) does.

The clip: two real photos in motion, one after the other (a scene cut between them), 5 + 5 frames.
The run is interrupted the way a kill does it: after frame 3's faces are on disk, before the journal
records it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from faceset.face_file import read_face_meta
from mainscripts import extract_stages as st
from mainscripts.extractor import ExtractSettings, extract
from tests.facesets import make_frames

pytestmark = pytest.mark.usefixtures("no_terminal")

SETTINGS = dict(detector="centerface", face_type="wf", image_size=64, workers=0)
SHOT = 5  # frames per shot


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "frames"
    first = make_frames("obama.jpg", folder / "a", count=SHOT, seed=3)
    second = make_frames("grace_hopper.jpg", folder / "b", count=SHOT, seed=4)
    for n, p in enumerate(first + second, start=1):
        p.rename(folder / f"{n:05d}.png")
    (folder / "a").rmdir()
    (folder / "b").rmdir()
    return folder


@pytest.fixture(scope="module")
def straight(clip, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("straight") / "aligned"
    mp = pytest.MonkeyPatch()
    try:
        from core import interact
        mp.setattr(interact, "is_interactive", lambda: False)
        stats = extract(clip, out, ExtractSettings(**SETTINGS))
    finally:
        mp.undo()
    return out, stats


def _ids(folder: Path) -> dict[str, int | None]:
    return {p.name: read_face_meta(p).track_id for p in sorted(folder.glob("*.jpg"))}


def test_a_straight_run_gives_one_track_per_shot(straight):
    out, stats = straight
    ids = _ids(out)
    assert set(ids) == {f"{n:05d}_0.jpg" for n in range(1, 2 * SHOT + 1)}
    assert {ids[f"{n:05d}_0.jpg"] for n in range(1, SHOT + 1)} == {0}
    assert {ids[f"{n:05d}_0.jpg"] for n in range(SHOT + 1, 2 * SHOT + 1)} == {1}
    assert stats["tracks"] == 2 and stats["cuts"] == 1


def test_an_interrupted_run_resumes_with_the_same_track_ids(clip, straight, tmp_path, monkeypatch):
    out = tmp_path / "aligned"
    real_record = st.Journal.record
    recorded: list[str] = []

    def record(self, frame, faces):  # killed after frame 4's faces are written, before it is journalled
        if len(recorded) == 3:
            raise KeyboardInterrupt
        recorded.append(frame)
        real_record(self, frame, faces)
    monkeypatch.setattr(st.Journal, "record", record)
    with pytest.raises(KeyboardInterrupt):
        extract(clip, out, ExtractSettings(**SETTINGS))
    assert recorded == ["00001.png", "00002.png", "00003.png"]  # the journal is written in time order
    monkeypatch.setattr(st.Journal, "record", real_record)

    stats = extract(clip, out, ExtractSettings(**SETTINGS, resume=True))
    assert _ids(out) == _ids(straight[0])  # track 0 goes on across the interruption; the next shot is 1
    assert stats["tracks"] == 2 and stats["faces"] == 2 * SHOT and stats["cuts"] == 1


def test_one_pass_tracking_writes_what_the_two_pass_one_does(clip, straight, tmp_path):
    """With --output-debug the frames are read again after linking (the track ids are drawn on them):
    the faces must be the same, byte for byte in the image, whichever way they were written."""
    out = tmp_path / "aligned"
    extract(clip, out, ExtractSettings(**SETTINGS, output_debug=True))
    one_pass = straight[0]
    assert _ids(out) == _ids(one_pass)
    for p in out.glob("*.jpg"):
        other = one_pass / p.name
        assert _scan(p.read_bytes()) == _scan(other.read_bytes()), p.name
        assert read_face_meta(p).source_rect == read_face_meta(other).source_rect


def _scan(data: bytes) -> bytes:
    """A JPEG's compressed image (from its start-of-scan marker on): what metadata updates leave alone."""
    return data[data.index(b"\xff\xda"):]


def test_one_pass_tracking_fills_a_miss_and_drops_a_ghost(tmp_path, monkeypatch):
    """The faces the detection pass wrote are renumbered when a detection joins no track (the ghost is
    removed) and a missed face is cut from its frame after linking (test_tracks' clip, without debug
    images: the one-pass way)."""
    from tests.test_tracks import GHOST, GONE, MISSED, _wrap_worker
    frames = tmp_path / "frames"
    shots = make_frames("obama.jpg", frames / "a", count=10, seed=3) + make_frames("grace_hopper.jpg", frames / "b",
                                                                                 count=10, seed=4)
    for n, p in enumerate(shots, start=1):
        p.unlink() if n == GONE else p.rename(frames / f"frame_{n}.png")
    _wrap_worker(monkeypatch, {})
    out = tmp_path / "aligned"
    stats = extract(frames, out, ExtractSettings(**SETTINGS))
    assert stats["tracks"] == 2 and stats["filled"] == 1 and stats["untracked"] == 1
    ids = _ids(out)
    assert set(ids) == {f"frame_{n}_0.jpg" for n in range(1, 21) if n != GONE}  # no ghost left behind
    assert {ids[f"frame_{n}_0.jpg"] for n in range(1, 11) if n != GONE} == {0}
    assert {ids[f"frame_{n}_0.jpg"] for n in range(11, 21)} == {1}
    assert MISSED.replace(".png", "_0.jpg") in ids and GHOST.replace(".png", "_1.jpg") not in ids

"""Face tracks in `extract` on a video's frames, and `sort --by track`.

The video: two real photos in motion, one after the other (a scene cut between them), with file names
that do not sort in time order as plain text (frame_9.png, frame_10.png), one frame missing from the
numbering, a frame where the detector "misses" the face and one where it "finds" a face in the
background (both made by wrapping the real worker, so everything else is the real pipeline).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from facelib.detected_face import DetectedFace
from facelib.landmarks import inter_ocular
from facelib.tracks import find_cuts, frame_numbers, frame_signature, link, tracks_from_sources
from faceset.face_file import update_face_meta
from faceset.faceset import Face as StoredFace
from tests.facesets import make_frames

pytestmark = pytest.mark.usefixtures("no_terminal")

MISSED = "frame_4.png"  # the detector misses the face here: the gap is filled
GHOST = "frame_15.png"  # the detector fires on the background here, in this frame only: dropped
GONE = 7  # no frame_7.png: a gap in the numbering


def _face(x: float, y: float, size: float = 60.0) -> DetectedFace:
    return DetectedFace(rect=(x - size / 2, y - size / 2, x + size / 2, y + size / 2), score=0.9)


# --- units --------------------------------------------------------------------------------------


def test_a_folder_is_a_video_when_every_name_is_a_number_with_one_prefix():
    assert frame_numbers([Path("frame_10.png"), Path("frame_9.png"), Path("frame_11.png")]) == [10, 9, 11]
    assert frame_numbers([Path("00001.png"), Path("00002.png"), Path("00005.png")]) == [1, 2, 5]
    assert frame_numbers([Path("a1.png"), Path("b2.png"), Path("a3.png")]) is None  # two prefixes
    assert frame_numbers([Path("cat.jpg"), Path("dog.jpg"), Path("x1.jpg")]) is None  # photos
    assert frame_numbers([Path("1.png"), Path("2.png")]) is None  # too few to be a video
    assert frame_numbers([Path("1.png"), Path("01.png"), Path("2.png")]) is None  # one number twice


def test_two_faces_keep_their_tracks_across_a_gap_and_a_lone_detection_stays_alone():
    numbers = [1, 2, 3, 6, 7, 8]  # frames 4 and 5 missing (within the gap a track may bridge)
    frames = [[_face(100 + 8 * n, 100), _face(300 - 8 * n, 110)] for n in numbers]
    frames[2].append(_face(500, 400, 40))  # a one-frame detection far from both
    tracks = link(numbers, frames)
    long = [t for t in tracks if len(t.faces) > 1]
    assert len(long) == 2 and len(tracks) == 3
    for t in long:
        xs = [f.face.centre[0] for f in t.faces]
        assert np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0)  # each track is one face's path


def test_a_track_ends_at_a_cut_and_after_a_long_gap():
    numbers = [1, 2, 3, 4, 20, 21]
    frames = [[_face(100, 100)] for _ in numbers]
    assert len(link(numbers, frames)) == 2  # 15 missing frames: too long to bridge
    assert len(link([1, 2, 3, 4, 5, 6], frames, cuts=[False, False, False, True, False, False])) == 2


def test_dfl_facesets_get_tracks_from_source_names_and_rects():
    items = [(f"{n:05d}.png", (100 + 5 * n, 100, 160 + 5 * n, 160)) for n in (3, 1, 2)]
    items += [(f"{n:05d}.png", (400, 300, 460, 360)) for n in (1, 2, 3)]
    items.append(("", None))
    ids = tracks_from_sources(items)
    assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5] and ids[0] != ids[3] and ids[6] is None


# --- the video ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tracked") / "frames"
    first = make_frames("obama.jpg", folder / "a", count=10, seed=3)
    second = make_frames("grace_hopper.jpg", folder / "b", count=10, seed=4)
    for n, p in enumerate(first + second, start=1):
        if n == GONE:
            p.unlink()
        else:
            p.rename(folder / f"frame_{n}.png")
    (folder / "a").rmdir()
    (folder / "b").rmdir()
    return folder


def _wrap_worker(monkeypatch, truth: dict):
    """The real worker, except that it misses the face in MISSED and sees a ghost face in GHOST;
    the real detection of MISSED is kept in `truth`."""
    from mainscripts import extract_stages as st

    real = st.FrameExtractor.__call__

    def call(self, job):
        out = real(self, job)
        if job.detect_only and job.path.name == MISSED:
            truth["missed"] = out.faces
            out = dataclasses.replace(out, faces=[])
        if job.detect_only and job.path.name == GHOST and out.faces:
            ghost = dataclasses.replace(out.faces[0], landmarks=out.faces[0].landmarks + (-120.0, 60.0))
            l, t, r, b = ghost.rect
            ghost.rect = (l - 120, t + 60, r - 120, b + 60)
            out = dataclasses.replace(out, faces=out.faces + [ghost])
        return out
    monkeypatch.setattr(st.FrameExtractor, "__call__", call)


@pytest.fixture(scope="module")
def tracked(video_frames, tmp_path_factory):
    from mainscripts.extractor import ExtractSettings, extract
    mp = pytest.MonkeyPatch()
    truth: dict = {}
    try:
        from core import interact
        mp.setattr(interact, "is_interactive", lambda: False)
        _wrap_worker(mp, truth)
        out = tmp_path_factory.mktemp("tracked_out") / "aligned"
        stats = extract(video_frames, out, ExtractSettings(detector="centerface", face_type="wf", image_size=96,
                                                           workers=0, output_debug=True))
    finally:
        mp.undo()
    return out, stats, truth


def _metas(folder: Path) -> dict[str, object]:
    return {p.name: StoredFace(p.name, p).meta() for p in sorted(folder.glob("*.jpg"))}


def test_tracks_split_at_the_cut_fill_the_miss_and_drop_the_ghost(tracked):
    out, stats, truth = tracked
    metas = _metas(out)
    assert stats["tracks"] == 2 and stats["cuts"] == 1 and stats["filled"] == 1 and stats["untracked"] == 1
    expected = {f"frame_{n}_0.jpg" for n in range(1, 21) if n != GONE}
    assert set(metas) == expected  # one face per frame: the miss filled, the ghost gone
    ids = {name: m.track_id for name, m in metas.items()}
    assert {ids[f"frame_{n}_0.jpg"] for n in range(1, 11) if n != GONE} == {0}
    assert {ids[f"frame_{n}_0.jpg"] for n in range(11, 21)} == {1}
    filled = metas["frame_4_0.jpg"].source_landmarks
    real = truth["missed"][0].landmarks
    assert np.linalg.norm(filled - real, axis=1).mean() < 0.1 * inter_ocular(real)
    debug = out.parent / "aligned_debug"
    assert {p.name for p in debug.glob("*.jpg")} == {f"frame_{n}.jpg" for n in range(1, 21) if n != GONE}


def test_frame_signatures_see_the_cut(video_frames):
    from core.image_io import read_image
    names = sorted(video_frames.glob("*.png"), key=lambda p: int(p.stem.split("_")[1]))
    cuts = find_cuts([frame_signature(read_image(p)) for p in names])
    assert [p.name for p, c in zip(names, cuts) if c] == ["frame_11.png"]


def test_sort_by_track_keeps_the_largest_or_the_chosen_track(tracked, tmp_path):
    import shutil

    from mainscripts.sorter import sort_faceset
    out, _, _ = tracked
    for track, expect in ((-1, 1), (0, 0)):
        folder = tmp_path / f"t{track}"
        shutil.copytree(out, folder)
        summary = sort_faceset(folder, "track", track=track, workers=0)
        kept = [StoredFace(p.name, p).meta() for p in summary.kept]
        assert {m.track_id for m in kept} == {expect}
        assert len(summary.kept) == (10 if expect == 1 else 9) and len(summary.trashed) == 19 - len(summary.kept)
        frames = [int(Path(m.source_filename).stem.split("_")[1]) for m in kept]
        assert frames == sorted(frames)  # in time order, although frame_10 < frame_9 as text


def test_sort_by_track_rebuilds_tracks_of_faces_without_ids(tracked, tmp_path):
    import shutil

    from mainscripts.sorter import sort_faceset
    out, _, _ = tracked
    folder = tmp_path / "dfl"
    shutil.copytree(out, folder)
    for p in folder.glob("*.jpg"):
        meta = StoredFace(p.name, p).meta()
        meta.track_id = None
        update_face_meta(p, meta)
    summary = sort_faceset(folder, "track", workers=0)
    kept = {Path(StoredFace(p.name, p).meta().source_filename).name for p in summary.kept}
    assert kept == {f"frame_{n}.png" for n in range(11, 21)}


@pytest.mark.slow  # the identity model: ~15 s
def test_reference_face_decides_per_track(video_frames, tmp_path):
    from mainscripts.extractor import ExtractSettings, extract
    out = tmp_path / "aligned"
    stats = extract(video_frames, out, ExtractSettings(
        detector="centerface", face_type="wf", image_size=64, workers=0,
        reference_faces=(Path(__file__).parent / "data" / "faces" / "obama.jpg",)))
    sources = {StoredFace(p.name, p).meta().source_filename for p in out.glob("*.jpg")}
    assert sources == {f"frame_{n}.png" for n in range(1, 11) if n != GONE}  # the whole obama track, only it
    assert stats["identity_rejected"] == 10 and stats["tracks"] == 1


def test_numbered_photos_that_are_no_video_keep_every_face(tmp_path):
    from core.image_io import read_image, write_image
    from mainscripts.extractor import ExtractSettings, extract
    folder = tmp_path / "photos"
    folder.mkdir()
    for n, name in enumerate(["obama.jpg", "grace_hopper.jpg", "biden.jpg", "astronaut.jpg"], start=1):
        write_image(folder / f"{n:05d}.jpg", read_image(Path(__file__).parent / "data" / "faces" / name))
    stats = extract(folder, tmp_path / "aligned", ExtractSettings(detector="centerface", face_type="wf",
                                                                   image_size=64, workers=0))
    assert stats["faces"] == 4 and "tracks" not in stats
    assert all(StoredFace(p.name, p).meta().track_id is None for p in (tmp_path / "aligned").glob("*.jpg"))


def test_track_id_round_trips_and_old_metadata_still_reads():
    import json

    from core.errors import UserError
    from facelib.face_type import FaceType
    from faceset.meta import FaceMeta, meta_from_json, meta_to_json
    meta = FaceMeta(FaceType.WHOLE_FACE, np.zeros((68, 2)), "00001.png", track_id=7)
    assert meta_from_json(meta_to_json(meta), "x.jpg").track_id == 7
    old = json.loads(meta_to_json(FaceMeta(FaceType.WHOLE_FACE, np.zeros((68, 2)))))
    assert "track_id" not in old and meta_from_json(json.dumps(old).encode(), "x.jpg").track_id is None
    for bad in (-1, "3", 2.5, True, 2**40):
        with pytest.raises(UserError, match="track_id"):
            meta_from_json(json.dumps({**old, "track_id": bad}).encode(), "x.jpg")

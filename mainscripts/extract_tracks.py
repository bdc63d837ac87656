"""The tracking side of `extract` on a video's frames (mainscripts/extractor.py, facelib.tracks): the
detection pass that links faces into tracks, writing each frame's faces as it finds them (one read of a
frame, one worker pool) and `finish_staged`, which gives them their track ids after linking; the tracks an
earlier run wrote, so that a resumed run continues them (`written_context`); and the track ids of faces
placed by hand in the manual window (`ManualTracks`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from core import log
from core.errors import UserError
from core.fileio import atomic_write_bytes, disk_error
from core.image_io import read_image
from core.workers import run_pool
from facelib.detected_face import DetectedFace
from faceset.face_file import write_aligned_face
from faceset.faceset import Face
from faceset.meta import FaceMeta
from mainscripts.extract_stages import (
    FrameExtractor,
    FrameJob,
    FrameOutcome,
    FrameSettings,
    Journal,
    PlacedFace,
    existing_faces,
    make_worker,
)


@dataclass
class Tracked:
    """What the tracking pass decided: per frame (index in the frames given) its faces and their track
    ids, and what it counted. `staged`: the detection pass already wrote each frame's detected faces
    (`staged_count[i]` of them, in the order it found them) and `finish_staged` completes them."""

    faces: dict[int, list[DetectedFace]]
    track_ids: dict[int, list[int | None]]
    tracks: int = 0
    filled: int = 0  # faces added where the detector missed them
    untracked: int = 0  # detections dropped because they joined no track
    identity_rejected: int = 0  # faces of tracks the identity filter rejected
    implausible: int = 0
    cuts: int = 0
    video: bool = True  # False: numbered frames that did not look like a video (no tracks made)
    staged: bool = False
    order: list[int] = field(default_factory=list)  # the frames read, in time order
    found: dict[int, list[DetectedFace]] = field(default_factory=dict)  # staged: the faces written, in file order
    failed: dict[int, str] = field(default_factory=dict)  # frames the detection pass could not read


@dataclass
class Written:
    """A frame finished by an earlier run, next to frames still to do: its faces on disk and their track
    ids, so that a resumed or manual pass continues the tracks instead of starting new ones."""

    path: Path
    number: int
    faces: list[DetectedFace]
    ids: list[int | None]


CONTEXT_FRAMES = 11  # finished frames read on each side of the frames to do (>= MAX_GAP + 1 and CUT_WINDOW + 1)


def written_context(frames: list[Path], numbers: list[int], todo: list[Path], out_dir: Path,
                    skip: set[str] | None = None) -> list[Written]:
    """The finished frames within CONTEXT_FRAMES frames (in time order) of a frame to do, with the faces
    written for them (metadata only; `skip`: frame names whose faces do not count, e.g. being replaced)."""
    todo_names = {f.name for f in todo}
    timeline = sorted(range(len(frames)), key=lambda i: numbers[i])
    near: set[int] = set()
    for pos, i in enumerate(timeline):
        if frames[i].name in todo_names:
            near.update(timeline[max(0, pos - CONTEXT_FRAMES):pos + CONTEXT_FRAMES + 1])
    wanted = {frames[i].stem for i in near if frames[i].name not in todo_names | (skip or set())}
    files: dict[str, list[tuple[int, Path]]] = {}
    for p in existing_faces(out_dir):  # one listing of the folder, however many frames are near
        stem, _, n = p.stem.rpartition("_")
        if stem in wanted and n.isdigit():
            files.setdefault(stem, []).append((int(n), p))
    out = []
    for i in sorted(near, key=lambda i: numbers[i]):
        if frames[i].name in todo_names:
            continue
        faces, ids = [], []
        for _n, path in sorted(files.get(frames[i].stem, [])):
            try:
                meta = Face(path.name, path).meta()
            except UserError:
                continue
            face = None if meta is None else _written_face(meta)
            if face is not None:
                faces.append(face)
                ids.append(meta.track_id)
        out.append(Written(frames[i], numbers[i], faces, ids))
    return out


def _written_face(meta: FaceMeta) -> DetectedFace | None:
    """A written face as the linker sees it: its box and landmarks in the frame."""
    if meta.source_landmarks is None or len(meta.source_landmarks) != 68:
        return None
    rect = meta.source_rect or (*meta.source_landmarks.min(axis=0), *meta.source_landmarks.max(axis=0))
    return DetectedFace(rect=tuple(float(v) for v in rect), landmarks=meta.source_landmarks.astype(np.float64))


def _signature_of(path: Path) -> np.ndarray | None:
    from facelib.tracks import frame_signature
    try:
        return frame_signature(read_image(path))
    except UserError:
        return None


def detect_and_track(frames: list[Path], numbers: list[int], settings: FrameSettings, workers: int, debug: bool,
                     envs: list[dict[str, str]] | None = None, smooth: bool = False,
                     first_id: int = 0, context: list[Written] | None = None, stage: bool = False) -> Tracked:
    """First pass for a video's frames: find faces in every frame, link them into tracks (facelib.tracks),
    fill short gaps, drop faces that join no track, decide --reference-face per track (median distance
    of its detected faces), optionally smooth each track's landmarks. New track ids start at `first_id`;
    `context` (finished frames around these, `written_context`) carries the tracks of an earlier run on:
    a face that continues one gets its id. `stage`: the detection pass also writes the faces it finds
    (one read of each frame, one pool; `finish_staged` completes them); else a write pass follows."""
    from facelib import tracks as tr

    factory = functools.partial(make_worker, settings)
    outcomes: dict[int, FrameOutcome] = {}
    failed: dict[int, str] = {}
    for result in run_pool(factory, [FrameJob(f, detect_only=True, stage=stage) for f in frames], workers=workers,
                           name_of=lambda j: j.path.name, desc="Finding faces", unit="frame",
                           worker_envs=envs, debug=debug):
        if not result.ok:
            failed[result.index] = result.error
        elif result.value.write_error is not None:  # disk full or the like: stop (this frame is not journalled)
            raise UserError(result.value.write_error)
        else:
            outcomes[result.index] = result.value
    order = [i for i in sorted(range(len(frames)), key=lambda i: numbers[i]) if i in outcomes]
    implausible = sum(o.rejected_implausible for o in outcomes.values())
    # the timeline: these frames (int: index in `frames`) and the finished ones around them (Written)
    seq: list[int | Written] = sorted([*order, *(context or [])],
                                      key=lambda x: x.number if isinstance(x, Written) else numbers[x])
    nums = [x.number if isinstance(x, Written) else numbers[x] for x in seq]
    sigs = [_signature_of(x.path) if isinstance(x, Written) else outcomes[x].signature for x in seq]
    faces = [x.faces if isinstance(x, Written) else outcomes[x].faces for x in seq]
    known = [x.ids if isinstance(x, Written) else [None] * len(outcomes[x].faces) for x in seq]
    base = dict(order=order, failed=failed, staged=stage, implausible=implausible,
                found={i: outcomes[i].faces for i in order} if stage else {})
    if not tr.looks_like_video(sigs) and not any(k is not None for ids in known for k in ids):
        log.info("The frames are numbered but do not look like a video (neighbouring frames differ): "
                 "no tracks, every face found is kept")
        out = Tracked({i: list(outcomes[i].faces) for i in order}, {i: [None] * len(outcomes[i].faces) for i in order},
                      video=False, **base)
        if settings.reference_faces:  # no tracks to decide for: face by face
            for i in order:
                d = outcomes[i].distances or [0.0] * len(out.faces[i])
                keep = [k for k in range(len(d)) if d[k] <= settings.identity_threshold]
                out.identity_rejected += len(d) - len(keep)
                out.faces[i], out.track_ids[i] = [out.faces[i][k] for k in keep], [None] * len(keep)
        return out
    cuts = tr.find_cuts(sigs)
    tracks = tr.link(nums, faces, cuts, known=known)
    out = Tracked({i: [] for i in order}, {i: [] for i in order}, **base)
    out.cuts = sum(c for x, c in zip(seq, cuts) if not isinstance(x, Written))
    kept = []
    for track in tracks:
        new = [f for f in track.faces if not isinstance(seq[f.frame], Written)]
        if not new:  # finished frames only: nothing to write
            continue
        if track.known is None and len(track.faces) < tr.MIN_TRACK:
            out.untracked += len(new)
            continue
        if track.known is None and settings.reference_faces:  # a known track was kept by the earlier run
            d = [outcomes[seq[f.frame]].distances[_index_of(faces[f.frame], f.face)] for f in new]
            if float(np.median(d)) > settings.identity_threshold:
                out.identity_rejected += len(new)
                continue
        kept.append(track)
    checker = FrameExtractor(replace(settings, detector="manual", reference_faces=())) if kept else None

    def read(t: int) -> np.ndarray | None:
        try:
            return read_image(seq[t].path if isinstance(seq[t], Written) else frames[seq[t]])
        except UserError:
            return None
    if kept:
        from facelib.landmarks import landmarks
        # linking ends every track at a cut, so no gap spans one
        out.filled = tr.fill_gaps(kept, nums, read, landmarks, checker.face_like)
    if smooth:
        from facelib.smoothing import smooth_track
        for track in kept:
            points = smooth_track(np.stack([f.face.landmarks for f in track.faces]))
            for f, p in zip(track.faces, points):
                f.face.landmarks = p
    fresh = first_id
    for track in sorted(kept, key=lambda t: t.faces[0].frame):
        if track.known is None:
            track_id, fresh = fresh, fresh + 1
        else:
            track_id = track.known
        for f in track.faces:
            if isinstance(seq[f.frame], Written):
                out.filled -= f.filled  # a finished frame is not written again
                continue
            out.faces[seq[f.frame]].append(f.face)
            out.track_ids[seq[f.frame]].append(track_id)
    for i in order:  # largest first in each frame, as the detector gives them (face index 0 = largest)
        pairs = sorted(zip(out.faces[i], out.track_ids[i]), key=lambda p: -p[0].area)
        out.faces[i], out.track_ids[i] = [p[0] for p in pairs], [p[1] for p in pairs]
    out.tracks = len(kept)
    return out


def _index_of(faces: list[DetectedFace], face: DetectedFace) -> int:
    return next(j for j, f in enumerate(faces) if f is face)


def finish_staged(frames: list[Path], tracked: Tracked, settings: FrameSettings, journal: Journal,
                  stats: dict[str, int]) -> list[Path]:
    """The write pass of a staged tracking pass, without reading the frames again: each frame's faces
    (written by the detection pass) get their track ids, in the metadata only (the JPEG is not
    re-encoded); dropped faces are removed, faces filled in by following a track are written (their
    frames are read), and each frame is journalled, in time order. Returns the frames with no face."""
    writer = FrameExtractor(replace(settings, detector="manual", reference_faces=(), debug_dir=None))
    no_face: list[Path] = []
    for i, error in sorted(tracked.failed.items()):  # as run_jobs reports them
        stats["skipped"] += 1
        log.warning(error if str(frames[i]) in error else f"{frames[i].name}: {error}")
    for i in tracked.order:
        path = frames[i]
        found = tracked.found.get(i, [])
        faces, ids = tracked.faces[i], tracked.track_ids[i]
        if settings.max_faces:
            faces, ids = faces[: settings.max_faces], ids[: settings.max_faces]
        staged = [settings.output_dir / f"{path.stem}_{j}.jpg" for j in range(len(found))]
        try:
            _finish_frame(writer, path, staged, found, faces, ids)
        except OSError as e:  # disk full or the like: stop; this frame stays undone (not journalled)
            raise disk_error(e, e.filename or path) from None
        stats["faces"] += len(faces)
        if not faces:
            no_face.append(path)
        journal.record(path.name, len(faces))
    return no_face


def _finish_frame(writer: FrameExtractor, path: Path, staged: list[Path], found: list[DetectedFace],
                  faces: list[DetectedFace], ids: list[int | None]) -> None:
    """One frame of `finish_staged`: its final faces as <stem>_0.jpg ... in order, from the staged files."""
    from faceset.face_file import jpeg_bytes_with_meta, meta_from_jpeg_bytes

    source = [next((j for j, f in enumerate(found) if f is face), None) for face in faces]
    if source == list(range(len(found))):  # the usual case: the same faces in the same files
        for j, track_id in enumerate(ids):
            if track_id is not None:
                data = staged[j].read_bytes()
                meta = meta_from_jpeg_bytes(data, staged[j])
                meta.track_id = track_id
                atomic_write_bytes(staged[j], jpeg_bytes_with_meta(data, meta, staged[j]))
        return
    blobs = {j: staged[j].read_bytes() for j in source if j is not None}
    image = read_image(path) if None in source else None  # a face filled in: cut from the frame
    for p in staged:
        p.unlink(missing_ok=True)
    for n, (face, j, track_id) in enumerate(zip(faces, source, ids)):
        target = writer.s.output_dir / f"{path.stem}_{n}.jpg"
        if j is None:
            placed = PlacedFace(face, writer.spec.of(face.landmarks))
            write_aligned_face(target, placed.crop.warp(image), writer.meta(path, placed, track_id),
                               writer.s.jpeg_quality)
        else:
            meta = meta_from_jpeg_bytes(blobs[j], staged[j])
            meta.track_id = track_id
            atomic_write_bytes(target, jpeg_bytes_with_meta(blobs[j], meta, target))


def next_track_id(out_dir: Path) -> int:
    """One more than the largest track id among the faces already in `out_dir` (0 for none), so a resumed
    extraction never gives a new track the id of an old one."""
    top = -1
    for p in existing_faces(out_dir):
        try:
            meta = Face(p.name, p).meta()
        except UserError:
            continue
        if meta is not None and meta.track_id is not None:
            top = max(top, meta.track_id)
    return top + 1


class ManualTracks:
    """Track ids for faces placed by hand in a video's frames (`--detector manual`, `--manual-fix`,
    `--manual-output-debug-fix`): a face takes the id of the track it continues (the faces written in
    the frames around it, or faces placed by hand next to it; facelib.tracks.continue_ids), else a new
    id. Nothing placed by hand is dropped or filled. `enabled` is False when the frames are no video's
    (names not numbered): the faces then get no id."""

    def __init__(self, frames: list[Path], todo: list[Path], out_dir: Path, skip: set[str] | None = None):
        from facelib.tracks import frame_numbers
        numbers = frame_numbers(frames)
        self.enabled = numbers is not None and bool(todo)
        self.todo = list(todo)
        self._sigs: dict[Path, np.ndarray | None] = {}
        if not self.enabled:
            return
        by_name = {f.name: n for f, n in zip(frames, numbers)}
        self.todo_numbers = [by_name[f.name] for f in self.todo]
        self.context = written_context(frames, numbers, self.todo, out_dir, skip)
        self.first_id = next_track_id(out_dir)

    def ids(self, placed: dict[int, list[DetectedFace]]) -> dict[int, list[int]]:
        """{index in todo: a track id per face} for the frames with faces in `placed` (same keys)."""
        if not self.enabled:
            return {}
        timeline = self._timeline(placed)
        ids = self._continue(timeline)
        return {item[4]: ids[t] for t, item in enumerate(timeline) if item[4] is not None and item[2]}

    def label(self, index: int, face: DetectedFace, others: Mapping[int, DetectedFace]) -> int | None:
        """The window's live guess for a face at todo frame `index` (other frames' faces placed so far):
        the id of the written track it continues, or None for a new track. Looks only at the frames
        around it, so it stays quick."""
        placed = {i: [f] for i, f in others.items()}
        placed[index] = [face]
        timeline = self._timeline(placed)
        here = next(t for t, item in enumerate(timeline) if item[4] == index)
        timeline = timeline[max(0, here - CONTEXT_FRAMES):here + CONTEXT_FRAMES + 1]
        track_id = self._continue(timeline)[next(t for t, item in enumerate(timeline) if item[4] == index)][0]
        return track_id if track_id < self.first_id else None

    def _timeline(self, placed: Mapping[int, list[DetectedFace]]) -> list[tuple]:
        """(number, path, faces, known ids, todo index or None) for the written and the todo frames, in time order."""
        items = [(c.number, c.path, c.faces, c.ids, None) for c in self.context]
        items += [(n, f, list(placed.get(i, [])), [None] * len(placed.get(i, [])), i)
                  for i, (f, n) in enumerate(zip(self.todo, self.todo_numbers))]
        return sorted(items, key=lambda item: item[0])

    def _continue(self, timeline: list[tuple]) -> list[list[int]]:
        from facelib.tracks import continue_ids, find_cuts
        for item in timeline:
            if item[1] not in self._sigs:
                self._sigs[item[1]] = _signature_of(item[1])
        cuts = find_cuts([self._sigs[item[1]] for item in timeline])
        return continue_ids([item[0] for item in timeline], [item[2] for item in timeline],
                            [item[3] for item in timeline], self.first_id, cuts)

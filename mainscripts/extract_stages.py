"""The stages of `extract` (mainscripts/extractor.py): the per-frame worker, the resume journal, starting
over, running frame jobs on the pool, and the two-pass modes (manual window, smoothed landmarks). The
tracking pass of a video's frames is mainscripts/extract_tracks.py.

Every face file is written atomically and every finished frame is appended to the journal, so a killed
run resumes exactly where it stopped (frames with no face included) and never leaves a truncated JPEG.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import disk_error, is_partial
from core.image_io import read_image, write_image
from core.workers import run_pool
from facelib.crop import Crop, CropSpec
from facelib.detected_face import DetectedFace
from facelib.draw import BLUE, RED, draw_crop_square, draw_landmarks, draw_rect, draw_track_id
from facelib.face_type import FaceType
from facelib.identity import DEFAULT_THRESHOLD
from facelib.plausibility import DEFAULT_THRESHOLD as DEFAULT_PLAUSIBILITY
from faceset.face_file import write_aligned_face
from faceset.faceset import Face
from faceset.meta import FaceMeta

if TYPE_CHECKING:
    from mainscripts.extract_tracks import ManualTracks

AUTO_DETECTORS = ("centerface", "dlib-hog")
JOURNAL_NAME = ".extract_journal.jsonl"
DEBUG_JPEG_QUALITY = 50
MAX_CROP_TO_RECT_AREA = 4.0  # DFL's sanity filter: a crop far larger than the detector box is a bad fit


@dataclass(frozen=True)
class FrameSettings:
    """Everything a worker needs to turn a frame into aligned faces (picklable, sent once per worker)."""

    output_dir: Path
    detector: str = "centerface"
    face_type: str = "whole_face"  # a FaceType name or short code
    image_size: int = 512
    jpeg_quality: int = 90
    max_faces: int = 0  # 0 = all
    min_face: int = 32
    debug_dir: Path | None = None
    reference_faces: tuple[Path, ...] = ()
    identity_threshold: float = DEFAULT_THRESHOLD
    plausibility_threshold: float = DEFAULT_PLAUSIBILITY  # OFF_PLAUSIBILITY or lower: no check


@dataclass
class FrameJob:
    """One frame to process; `faces` given means detection already happened (smoothing, manual)."""

    path: Path
    faces: list[DetectedFace] | None = None
    detect_only: bool = False
    track_ids: list[int | None] | None = None  # per face of `faces` (tracked video frames)
    identity_checked: bool = False  # the identity filter already decided (per track): do not check again
    stage: bool = False  # detect_only: write the faces now (`finish_staged` adds their track ids), so that
    # the frame is decoded once and one pool does the whole run


@dataclass
class FrameOutcome:
    frame: str
    faces_written: int = 0
    faces: list[DetectedFace] = field(default_factory=list)  # filled for detect_only jobs
    rejected_identity: int = 0
    rejected_implausible: int = 0  # detections whose landmark fit does not look like a face
    write_error: str | None = None  # a face or debug image could not be written (disk full ...)
    signature: np.ndarray | None = None  # detect_only: the frame's colour signature (cut detection)
    distances: list[float] | None = None  # detect_only with an identity filter: per face, to the references
    staged: int = 0  # stage jobs: faces written as <stem>_<n>.jpg, n in the order of `faces`


# --- worker side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlacedFace:
    """A face found in a frame and its crop, computed once: the written face, its metadata's
    image_to_face_mat and the debug drawing all use this one crop."""

    face: DetectedFace
    crop: Crop


class FrameExtractor:
    """Per-process state: the detector, the identity filter and the settings, loaded once."""

    def __init__(self, settings: FrameSettings):
        self.s = settings
        self.face_type = FaceType.from_string(settings.face_type)
        self.spec = CropSpec(settings.image_size, self.face_type)
        self.detector = None
        if settings.detector in AUTO_DETECTORS:
            from facelib.detectors import get_detector
            self.detector = get_detector(settings.detector, min_face=settings.min_face,
                                         max_faces=settings.max_faces or None)
        self.identity = None
        if settings.reference_faces:
            from facelib.identity import IdentityFilter
            self.identity = IdentityFilter(list(settings.reference_faces), threshold=settings.identity_threshold)

    def __call__(self, job: FrameJob) -> FrameOutcome:
        image = read_image(job.path)
        rejected = 0
        if job.faces is not None:
            found = [PlacedFace(f, self.spec.of(f.landmarks)) for f in job.faces]
        else:
            found, rejected = self.find_faces(image)
        if job.detect_only:
            from facelib.tracks import frame_signature
            distances = None
            if self.identity is not None:
                distances = [self.identity.distance(image, p.face.landmarks) for p in found]
            outcome = FrameOutcome(job.path.name, faces=[p.face for p in found], rejected_implausible=rejected,
                                   signature=frame_signature(image), distances=distances)
            if job.stage:
                outcome.write_error = self._try_write(job.path, image, found, None)
                outcome.staged = 0 if outcome.write_error else len(found)
            return outcome
        outcome = self.write_faces(job.path, image, found, job.track_ids, job.identity_checked)
        outcome.rejected_implausible = rejected
        return outcome

    def find_faces(self, image: np.ndarray) -> tuple[list[PlacedFace], int]:
        """The plausible faces in a frame, each with its crop (computed once, reused for writing),
        and how many detections were dropped as not face-like (facelib.plausibility)."""
        from facelib.landmarks import landmarks
        if self.detector is None:
            return [], 0
        faces = self.detector.detect(image)
        for face in faces:
            face.landmarks = landmarks(image, face)
        placed = [PlacedFace(f, self.spec.of(f.landmarks)) for f in faces]
        placed = [p for p in placed if self._plausible(p)]
        kept = [p for p in placed if self.face_like(image, p.face.landmarks)]
        return kept, len(placed) - len(kept)

    def face_like(self, image: np.ndarray, points: np.ndarray) -> bool:
        """The second-stage check (facelib.plausibility) unless it is switched off."""
        from facelib.plausibility import OFF, score
        return self.s.plausibility_threshold <= OFF or score(image, points) >= self.s.plausibility_threshold

    def _plausible(self, placed: PlacedFace) -> bool:
        """DFL's sanity check: for face types up to full, the crop must not dwarf the detector box."""
        face = placed.face
        if self.face_type > FaceType.FULL_NO_ALIGN or face.area <= 0:
            return True
        crop_area = (placed.crop.size / placed.crop.pixel_scale) ** 2
        return crop_area <= MAX_CROP_TO_RECT_AREA * face.area

    def write_faces(self, frame_path: Path, image: np.ndarray, faces: list[PlacedFace],
                    track_ids: list[int | None] | None = None, identity_checked: bool = False) -> FrameOutcome:
        outcome = FrameOutcome(frame_path.name)
        ids = list(track_ids) if track_ids is not None else [None] * len(faces)
        kept, kept_ids = [], []
        for placed, track_id in zip(faces, ids):
            if not identity_checked and self.identity is not None \
                    and not self.identity.matches(image, placed.face.landmarks):
                outcome.rejected_identity += 1
                continue
            kept.append(placed)
            kept_ids.append(track_id)
        if self.s.max_faces:
            kept, kept_ids = kept[: self.s.max_faces], kept_ids[: self.s.max_faces]
        outcome.write_error = self._try_write(frame_path, image, kept, kept_ids)
        if outcome.write_error is None:
            outcome.faces_written = len(kept)
        return outcome

    def _try_write(self, frame_path: Path, image: np.ndarray, kept: list[PlacedFace],
                   track_ids: list[int | None] | None) -> str | None:
        """`_write`, with a failure to write (not a bad frame: the run cannot go on, see run_jobs) as its message."""
        try:
            self._write(frame_path, image, kept, track_ids)
        except (UserError, OSError) as e:
            return str(e) if isinstance(e, UserError) else str(disk_error(e, e.filename or frame_path))
        return None

    def meta(self, frame_path: Path, placed: PlacedFace, track_id: int | None) -> FaceMeta:
        """The metadata of one written face."""
        face, crop = placed.face, placed.crop
        return FaceMeta(face_type=self.face_type, landmarks=crop.to_face(face.landmarks),
                        source_filename=frame_path.name, source_rect=tuple(int(round(v)) for v in face.rect),
                        source_landmarks=face.landmarks, image_to_face_mat=crop.mat, track_id=track_id)

    def _write(self, frame_path: Path, image: np.ndarray, kept: list[PlacedFace],
               track_ids: list[int | None] | None = None) -> None:
        debug = image.copy() if self.s.debug_dir is not None else None
        ids = track_ids if track_ids is not None else [None] * len(kept)
        for idx, (placed, track_id) in enumerate(zip(kept, ids)):
            face, crop = placed.face, placed.crop
            write_aligned_face(self.s.output_dir / f"{frame_path.stem}_{idx}.jpg", crop.warp(image),
                               self.meta(frame_path, placed, track_id), self.s.jpeg_quality)
            if debug is not None:
                draw_landmarks(debug, face.landmarks)
                draw_rect(debug, face.rect, BLUE)
                draw_crop_square(debug, crop.inverse, crop.size, RED)
                if track_id is not None:
                    draw_track_id(debug, face.rect, track_id)
        if debug is not None:
            write_image(self.s.debug_dir / f"{frame_path.stem}.jpg", debug, DEBUG_JPEG_QUALITY)


def make_worker(settings: FrameSettings) -> FrameExtractor:
    cv2.setNumThreads(1)  # parallelism comes from the worker processes; avoid oversubscribing cores
    return FrameExtractor(settings)


# --- resume journal ----------------------------------------------------------------------------

class Journal:
    """Append-only record of finished frames (`{"frame": name, "faces": n}` per line).

    A line is written only after all of a frame's faces are on disk, so a frame in the journal is
    complete; a torn last line from a kill is ignored.
    """

    def __init__(self, output_dir: Path):
        self.path = output_dir / JOURNAL_NAME

    def done_frames(self) -> dict[str, int]:
        done: dict[str, int] = {}
        if not self.path.exists():
            return done
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                done[entry["frame"]] = int(entry["faces"])
            except (ValueError, KeyError, TypeError):
                continue
        return done

    def record(self, frame: str, faces: int) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"frame": frame, "faces": faces}) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise disk_error(e, self.path) from None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def existing_faces(output_dir: Path) -> list[Path]:
    """Files named like faces (`*.jpg`); whether they are faces is `_is_face`'s question."""
    return [p for p in output_dir.glob("*.jpg") if p.is_file() and not is_partial(p)]


def is_face(path: Path) -> bool:
    """An aligned face (our metadata or DFL's): the only kind of file extract ever removes or moves."""
    try:
        return Face(path.name, path).meta() is not None
    except UserError:  # unreadable, not a JPEG, damaged metadata: not ours to touch
        return False


def remove_faces_of(output_dir: Path, frame_stems: set[str]) -> None:
    """Faces a killed run wrote for frames it never finished (so those frames are redone cleanly)."""
    for p in existing_faces(output_dir):
        if p.stem.rpartition("_")[0] in frame_stems and is_face(p):
            p.unlink()


def frames_to_do(frames: list[Path], out_dir: Path, journal: Journal) -> list[Path]:
    """Frames not finished by an earlier run. Without a journal (a faceset made by another tool or
    an older version), a frame that has faces in the folder counts as done."""
    if journal.path.exists():
        done = journal.done_frames()
        return [f for f in frames if f.name not in done]
    stems_with_faces = {p.stem.rpartition("_")[0] for p in existing_faces(out_dir)}
    return [f for f in frames if f.stem not in stems_with_faces]


def trash_dir(out_dir: Path) -> Path:
    return out_dir.parent / f"{out_dir.name}_trash"  # DFL's <dir>_trash, shared with sort


def start_over(out_dir: Path, journal: Journal, debug_dir: Path | None, frames: list[Path]) -> None:
    """--force: move the earlier run's faces to `<dir>_trash/extract_<time>/` and delete its debug
    images. Each face moves by one rename, so a kill leaves it in one place or the other; files
    that are not aligned faces (and debug-folder files not named after a frame) are never touched."""
    journal.clear()  # first: a journal must never claim frames whose faces were moved away
    faces = [p for p in existing_faces(out_dir) if is_face(p)]
    moved = set(faces)
    others = [p for p in out_dir.iterdir() if p.is_file() and p not in moved
              and not p.name.startswith(".") and not is_partial(p)]
    if faces:
        trash = new_trash_folder(trash_dir(out_dir))
        for p in faces:
            try:
                shutil.move(p, trash / p.name)
            except OSError as e:
                raise disk_error(e, trash / p.name) from None
        log.info(f"Moved {len(faces)} faces of the previous extraction to {trash}")
    if debug_dir is not None and debug_dir.is_dir():
        stems = {f.stem for f in frames}
        for p in debug_dir.glob("*.jpg"):
            if p.stem in stems and p.is_file():
                p.unlink()
            elif p.is_file():
                others.append(p)
    if others:
        log.info(f"{len(others)} other files (not written by extract) were left alone, e.g. {others[0]}")


def new_trash_folder(trash_root: Path) -> Path:
    stamp = time.strftime("extract_%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = trash_root / (stamp if n == 0 else f"{stamp}_{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise disk_error(e, folder) from None
    raise UserError("could not make a new trash folder", trash_root)


def run_jobs(factory, jobs: list[FrameJob], workers: int, journal: Journal, stats: dict[str, int],
              debug: bool, desc: str, envs: list[dict[str, str]] | None = None) -> list[Path]:
    """Run frame jobs on the pool, journal each finished frame, count; returns frames with no face."""
    no_face: list[Path] = []
    for result in run_pool(factory, jobs, workers=workers, name_of=lambda j: j.path.name,
                           desc=desc, unit="frame", worker_envs=envs, debug=debug):
        if not result.ok:
            stats["skipped"] += 1
            log.warning(result.error if str(jobs[result.index].path) in result.error else f"{result.name}: {result.error}")
            continue
        outcome: FrameOutcome = result.value
        if outcome.write_error is not None:  # disk full or the like: stop, and leave the frame undone
            raise UserError(outcome.write_error)
        stats["faces"] += outcome.faces_written
        stats["identity_rejected"] += outcome.rejected_identity
        stats["implausible"] = stats.get("implausible", 0) + outcome.rejected_implausible
        if outcome.faces_written == 0:
            no_face.append(jobs[result.index].path)
        journal.record(outcome.frame, outcome.faces_written)
    return no_face


def manual_faces(frames: list[Path], window_size: int,
                 initial: dict[int, DetectedFace] | None = None,
                 tracks: ManualTracks | None = None) -> dict[int, list[DetectedFace]]:
    """Run the manual window; returns {frame index: [face]} for accepted frames ([] when skipped).
    `initial` pre-places a locked rect on some frames (their earlier face); `tracks` (a video's frames)
    shows the track id a face would get, live, over the rect."""
    from core.display import display_problem
    from mainscripts import manual_extract
    problem = display_problem()
    if problem is not None:
        raise UserError(f"manual extraction opens a window: run it in a desktop session ({problem})")
    track_of = tracks.label if tracks is not None and tracks.enabled else None
    decided = manual_extract.run_manual_pass(frames, window_size=window_size, initial=initial, track_of=track_of)
    return {i: ([face] if face is not None else []) for i, face in decided.items()}


def detect_and_smooth(frames: list[Path], settings: FrameSettings, workers: int, debug: bool,
                       envs: list[dict[str, str]] | None = None) -> dict[int, list[DetectedFace]]:
    """First pass of --smooth-landmarks: landmarks for every frame, then smoothed across frames."""
    from facelib.smoothing import smooth_sequence
    factory = functools.partial(make_worker, settings)
    found: dict[int, list[DetectedFace]] = {}
    for result in run_pool(factory, [FrameJob(f, detect_only=True) for f in frames], workers=workers,
                           name_of=lambda j: j.path.name, desc="Finding landmarks", unit="frame",
                           worker_envs=envs, debug=debug):
        if result.ok:
            found[result.index] = result.value.faces
    # Unreadable frames break tracks like a frame without a face; they are reported in the write pass.
    sequence = [[f.landmarks for f in found.get(i, [])] for i in range(len(frames))]
    smoothed = smooth_sequence(sequence)
    for i, faces in found.items():
        for face, points in zip(faces, smoothed[i]):
            face.landmarks = points
    return found


def deleted_debug_frames(frames: list[Path], out_dir: Path, debug_dir: Path, journal: Journal) -> list[Path]:
    """Frames that were extracted (in the journal, or with faces in `out_dir`) but whose debug image is
    gone: the ones the user deleted as badly aligned (DFL's --manual-output-debug-fix)."""
    done = set(journal.done_frames()) if journal.path.exists() else set()
    with_faces = {p.stem.rpartition("_")[0] for p in existing_faces(out_dir)}
    have_debug = {p.stem for p in debug_dir.glob("*.jpg")}
    return [f for f in frames if (f.name in done or f.stem in with_faces) and f.stem not in have_debug]


def _old_faces(out_dir: Path, frame: Path) -> list[tuple[Path, FaceMeta]]:
    """The aligned faces written for one frame (`<stem>_<n>.jpg` with metadata), in face-index order."""
    found = []
    for p in sorted(out_dir.glob(f"{glob_escape(frame.stem)}_*.jpg")):
        if p.stem.rpartition("_")[0] != frame.stem or not p.stem.rpartition("_")[2].isdigit():
            continue
        try:
            meta = Face(p.name, p).meta()
        except UserError:
            continue
        if meta is not None:
            found.append((p, meta))
    return found


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def _face_from_meta(meta: FaceMeta) -> DetectedFace | None:
    """An earlier face as a pre-placed manual rect: the predictor's box around its brows-to-chin points."""
    if meta.source_landmarks is None or len(meta.source_landmarks) != 68:
        return None
    pts = meta.source_landmarks.astype(np.float64)
    lo, hi = pts[17:].min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2.0, float(max(hi - lo)) / 2.0
    rect = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    return DetectedFace(rect=tuple(float(v) for v in rect), landmarks=pts, score=1.0, detector="manual")


def reextract_deleted_debug(frames: list[Path], out_dir: Path, debug_dir: Path, journal: Journal, factory,
                            window_size: int, debug: bool, envs: list[dict[str, str]] | None,
                            with_tracks: bool = True) -> dict[str, int]:
    """--manual-output-debug-fix: the frames whose debug image was deleted go through the manual window
    (their earlier face pre-placed); for each frame decided there, its old faces move to the trash and
    the new face and debug image are written. Frames left undecided (q) keep their old faces.
    `with_tracks` (a video's frames): a new face takes the track id of the track it continues in the
    frames around it (ManualTracks), else a new one."""
    if not debug_dir.is_dir():
        raise UserError("no debug folder to compare with: run extract with --output-debug first", debug_dir)
    todo = deleted_debug_frames(frames, out_dir, debug_dir, journal)
    stats = {"images": len(frames), "faces": 0, "skipped": 0, "no_face": 0, "identity_rejected": 0,
             "implausible": 0, "reextracted": 0}
    if not todo:
        log.info(f"Every extracted frame still has its image in {debug_dir}: nothing to re-extract")
        return stats
    log.info(f"Re-extracting by hand the {len(todo)} frames whose debug image was deleted")
    old = {i: _old_faces(out_dir, f) for i, f in enumerate(todo)}
    initial = {i: face for i, faces in old.items() if faces and (face := _face_from_meta(faces[0][1])) is not None}
    from mainscripts.extract_tracks import ManualTracks
    tracks = ManualTracks(frames, todo, out_dir, skip={f.name for f in todo}) if with_tracks else None
    decided = manual_faces(todo, window_size, initial, tracks)
    ids = tracks.ids(decided) if tracks is not None else {}
    old_paths = [p for i in decided for p, _ in old[i]]
    if old_paths:
        trash = new_trash_folder(trash_dir(out_dir))
        for p in old_paths:
            try:
                shutil.move(p, trash / p.name)
            except OSError as e:
                raise disk_error(e, trash / p.name) from None
        log.info(f"Moved {len(old_paths)} faces of the re-extracted frames to {trash}")
    jobs = [FrameJob(todo[i], faces, track_ids=ids.get(i)) for i, faces in sorted(decided.items())]
    no_face = run_jobs(factory, jobs, 0, journal, stats, debug, "Writing re-extracted faces", envs)
    stats["no_face"] = len(no_face)
    stats["reextracted"] = len(jobs)
    return stats

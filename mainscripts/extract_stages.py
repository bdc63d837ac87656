"""The stages of `extract` (mainscripts/extractor.py): the per-frame worker, the resume journal, starting
over, running frame jobs on the pool, and the two-pass modes (manual window, smoothed landmarks).

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

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import disk_error, is_partial
from core.image_io import read_image, write_image
from core.workers import run_pool
from facelib.crop import Crop, CropSpec
from facelib.detected_face import DetectedFace
from facelib.draw import BLUE, RED, draw_crop_square, draw_landmarks, draw_rect
from facelib.face_type import FaceType
from facelib.identity import DEFAULT_THRESHOLD
from faceset.face_file import write_aligned_face
from faceset.faceset import Face
from faceset.meta import FaceMeta

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


@dataclass
class FrameJob:
    """One frame to process; `faces` given means detection already happened (smoothing, manual)."""

    path: Path
    faces: list[DetectedFace] | None = None
    detect_only: bool = False


@dataclass
class FrameOutcome:
    frame: str
    faces_written: int = 0
    faces: list[DetectedFace] = field(default_factory=list)  # filled for detect_only jobs
    rejected_identity: int = 0
    write_error: str | None = None  # a face or debug image could not be written (disk full ...)


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
        if job.faces is not None:
            found = [PlacedFace(f, self.spec.of(f.landmarks)) for f in job.faces]
        else:
            found = self.find_faces(image)
        if job.detect_only:
            return FrameOutcome(job.path.name, faces=[p.face for p in found])
        return self.write_faces(job.path, image, found)

    def find_faces(self, image: np.ndarray) -> list[PlacedFace]:
        """The plausible faces in a frame, each with its crop (computed once, reused for writing)."""
        from facelib.landmarks import landmarks
        if self.detector is None:
            return []
        faces = self.detector.detect(image)
        for face in faces:
            face.landmarks = landmarks(image, face)
        placed = [PlacedFace(f, self.spec.of(f.landmarks)) for f in faces]
        return [p for p in placed if self._plausible(p)]

    def _plausible(self, placed: PlacedFace) -> bool:
        """DFL's sanity check: for face types up to full, the crop must not dwarf the detector box."""
        face = placed.face
        if self.face_type > FaceType.FULL_NO_ALIGN or face.area <= 0:
            return True
        crop_area = (placed.crop.size / placed.crop.pixel_scale) ** 2
        return crop_area <= MAX_CROP_TO_RECT_AREA * face.area

    def write_faces(self, frame_path: Path, image: np.ndarray, faces: list[PlacedFace]) -> FrameOutcome:
        outcome = FrameOutcome(frame_path.name)
        kept = []
        for placed in faces:
            if self.identity is not None and not self.identity.matches(image, placed.face.landmarks):
                outcome.rejected_identity += 1
                continue
            kept.append(placed)
        if self.s.max_faces:
            kept = kept[: self.s.max_faces]
        try:
            self._write(frame_path, image, kept)
        except (UserError, OSError) as e:  # not a bad frame: the run cannot go on (see run_jobs)
            outcome.write_error = str(e) if isinstance(e, UserError) else str(disk_error(e, e.filename or frame_path))
            return outcome
        outcome.faces_written = len(kept)
        return outcome

    def _write(self, frame_path: Path, image: np.ndarray, kept: list[PlacedFace]) -> None:
        debug = image.copy() if self.s.debug_dir is not None else None
        for idx, (face, crop) in enumerate((p.face, p.crop) for p in kept):
            meta = FaceMeta(
                face_type=self.face_type,
                landmarks=crop.to_face(face.landmarks),
                source_filename=frame_path.name,
                source_rect=tuple(int(round(v)) for v in face.rect),
                source_landmarks=face.landmarks,
                image_to_face_mat=crop.mat,
            )
            write_aligned_face(self.s.output_dir / f"{frame_path.stem}_{idx}.jpg", crop.warp(image), meta,
                               self.s.jpeg_quality)
            if debug is not None:
                draw_landmarks(debug, face.landmarks)
                draw_rect(debug, face.rect, BLUE)
                draw_crop_square(debug, crop.inverse, crop.size, RED)
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
        if outcome.faces_written == 0:
            no_face.append(jobs[result.index].path)
        journal.record(outcome.frame, outcome.faces_written)
    return no_face


def manual_faces(frames: list[Path], window_size: int) -> dict[int, list[DetectedFace]]:
    """Run the manual window; returns {frame index: [face]} for accepted frames ([] when skipped)."""
    from core.display import display_problem
    from mainscripts.manual_extract import run_manual_pass
    problem = display_problem()
    if problem is not None:
        raise UserError(f"manual extraction opens a window: run it in a desktop session ({problem})")
    decided = run_manual_pass(frames, window_size=window_size)
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

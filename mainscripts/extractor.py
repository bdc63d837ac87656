"""`extract`: frames in, aligned faceset out (detect -> 68 landmarks -> align -> JPEG with FaceMeta).

The settings are declared once (EXTRACT_OPTIONS): each has a flag, a DFL-style prompt asked when the flag
is missing and stdin is a terminal, and a default used without one. `extract` runs in stages (see
mainscripts/extract_stages.py, and mainscripts/extract_tracks.py for a video's frames): check the folders,
complete the settings, plan the frames from the resume journal, find faces first where a pass needs them
(manual window, smoothed landmarks, and the face tracks of a video's frames, which also writes them),
run the worker pool that writes the faces, an optional manual pass over frames without a face, and the
report. Resumed runs and faces placed by hand continue the tracks already written. `--manual-output-debug-fix` is DFL's clean-up
loop instead: only the frames whose debug image the user deleted, by hand (extract_stages).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from core import interact, log
from core.devices import DeviceChoice
from core.display import WINDOW_WIDTH
from core.errors import UserError
from core.fileio import ensure_writable_dir, list_images, require_dir
from core.settings import Option, never, parse_flags, resolve
from core.workers import default_worker_count
from facelib.face_type import SHORT_NAMES, FaceType
from facelib.identity import DEFAULT_THRESHOLD
from facelib.plausibility import DEFAULT_THRESHOLD as DEFAULT_PLAUSIBILITY
from facelib.plausibility import OFF as PLAUSIBILITY_OFF
from mainscripts.extract_stages import (
    AUTO_DETECTORS,
    FrameJob,
    FrameSettings,
    Journal,
    detect_and_smooth,
    existing_faces,
    frames_to_do,
    is_face,
    make_worker,
    manual_faces,
    reextract_deleted_debug,
    remove_faces_of,
    run_jobs,
    start_over,
    trash_dir,
)
from mainscripts.extract_tracks import (
    ManualTracks,
    Tracked,
    detect_and_track,
    finish_staged,
    next_track_id,
    written_context,
)

DETECTORS = (*AUTO_DETECTORS, "manual")
EXTRACT_FACE_TYPES = tuple(FaceType.from_string(code).long_name for code in SHORT_NAMES)


def _face_type_code(text: str) -> str:
    """A face type's short code from its code or long name (full_face -> f); ValueError when not one."""
    code = FaceType.from_string(text).short_name
    if code is None:
        raise ValueError(text)
    return code


def _at_least_zero(value: int, _others: Mapping[str, Any]) -> str | None:
    return "0 or more" if value < 0 else None


# DFL's questions, in DFL's order; the last ones have a flag but no prompt.
EXTRACT_OPTIONS: tuple[Option, ...] = (
    Option("detector", "centerface", "Face detector. centerface: fast and accurate. dlib-hog: classic HOG. "
           "manual: place each face yourself in a window.", "Choose detector", choices=DETECTORS, argparse_choices=True),
    Option("face_type", "wf", "How much of the head the aligned face covers: half, mid-full, full, whole face, head "
           "(long names such as whole_face accepted).", "Face type", choices=SHORT_NAMES, normalize=_face_type_code),
    Option("max_faces", 0, "Keep the N largest faces of each frame; 0 keeps all.", "Max number of faces from image",
           "int", flag_name="--max-faces-from-image", check=_at_least_zero),
    Option("image_size", lambda o: 768 if o.get("face_type") == "head" else 512,
           "Side of the aligned face images in pixels (default 512, 768 for head).", "Image size", "int",
           valid_range=(64, 4096)),
    Option("jpeg_quality", 90, "JPEG quality of the aligned faces.", "Jpeg quality", "int", valid_range=(1, 100)),
    Option("output_debug", False, "Also write <output-dir>_debug/<frame>.jpg with landmarks, detector box and crop drawn.",
           "Write debug images to aligned_debug?", "bool", switch=True),
    Option("workers", None, "Worker processes (default: one per CPU core, at most 8; 0 = in this process).",
           kind="int", ask_if=never, check=_at_least_zero),
    Option("resume", None, "Continue a partly extracted folder (asked when it holds faces, default yes).",
           "Continue extraction", "bool", ask_if=never, switch=True, negative="--force",
           negative_help="Start over: move the faces already in the output folder to <output-dir>_trash "
                         "(other files stay)."),
    Option("reference_faces", (), "Keep only faces of the person in these photos (identity filter).", kind="paths",
           ask_if=never, flag_name="--reference-face"),
    Option("identity_threshold", DEFAULT_THRESHOLD, "Max face-embedding distance to the reference photos "
           "(lower = stricter).", kind="float", valid_range=(0.0, 2.0), ask_if=never),
    Option("smooth_landmarks", False, "Smooth landmarks across consecutive video frames (removes jitter, no lag).",
           kind="bool", ask_if=never, switch=True),
    Option("manual_fix", False, "After the automatic pass, place faces by hand in frames where none was found.",
           kind="bool", ask_if=never, switch=True),
    Option("manual_window_size", WINDOW_WIDTH, "Width of the manual window in pixels.", kind="int",
           valid_range=(320, 8192), ask_if=never),
    Option("tracks", True, "On a video's frames (every file name a number with one shared prefix, e.g. 00001.png, "
           "and most neighbouring frames alike): "
           "link faces across frames into tracks (id in each face's metadata), fill gaps of up to 5 frames where "
           "the detector missed the face, drop faces found in one frame only, end tracks at scene cuts, and "
           "apply --reference-face per track; a resumed run and faces placed by hand continue the tracks already "
           "written.", kind="bool", ask_if=never, switch=True, negative="--no-tracks",
           negative_help="Treat every frame on its own, even for a video's frames."),
    Option("plausibility_threshold", DEFAULT_PLAUSIBILITY, "Drop detections whose landmark fit does not look like "
           f"a face (score of facelib.plausibility; higher = stricter; {PLAUSIBILITY_OFF:g} or lower turns the "
           "check off).", kind="float", valid_range=(-10.0, 10.0), ask_if=never),
    Option("manual_output_debug_fix", False, "DFL's dst clean-up: re-extract by hand the frames whose image you "
           "deleted from <output-dir>_debug (their old faces move to <output-dir>_trash), and write their debug "
           "images again.", kind="bool", ask_if=never, switch=True),
)


@dataclass(frozen=True)
class ExtractSettings:
    """extract's settings, one field per EXTRACT_OPTIONS entry; None = not given (asked, or the default)."""

    detector: str | None = None
    face_type: str | None = None  # a short code (wf) once parsed
    max_faces: int | None = None
    image_size: int | None = None
    jpeg_quality: int | None = None
    output_debug: bool | None = None
    workers: int | None = None
    resume: bool | None = None  # None: ask when the folder already holds faces
    reference_faces: tuple[Path, ...] | None = None
    identity_threshold: float | None = None
    smooth_landmarks: bool | None = None
    manual_fix: bool | None = None
    manual_window_size: int | None = None
    tracks: bool | None = None
    plausibility_threshold: float | None = None
    manual_output_debug_fix: bool | None = None

    @classmethod
    def from_flags(cls, given: Mapping[str, Any]) -> ExtractSettings:
        """The settings given on the command line (core.settings.flags_given), each checked by its declaration."""
        return cls(**parse_flags(EXTRACT_OPTIONS, given))

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def complete(self) -> ExtractSettings:
        """Every setting decided: what was given, else the prompt on a terminal, else the default."""
        return replace(self, **resolve(EXTRACT_OPTIONS, None, self.given(), ask_overrides=False))

    def frame_settings(self, out_dir: Path, debug_dir: Path | None) -> FrameSettings:
        return FrameSettings(output_dir=out_dir, detector=self.detector, face_type=self.long_face_type,
                             image_size=self.image_size, jpeg_quality=self.jpeg_quality, max_faces=self.max_faces,
                             debug_dir=debug_dir, reference_faces=tuple(self.reference_faces),
                             identity_threshold=self.identity_threshold,
                             plausibility_threshold=self.plausibility_threshold)

    @property
    def long_face_type(self) -> str:
        return FaceType.from_string(self.face_type).long_name


if {f.name for f in fields(ExtractSettings)} != {o.key for o in EXTRACT_OPTIONS}:
    raise RuntimeError("ExtractSettings' fields must be exactly EXTRACT_OPTIONS' keys")


@dataclass
class _Run:
    """One extraction: where from and to, the decided settings, and what is left to do."""

    in_dir: Path
    out_dir: Path
    settings: ExtractSettings
    frames: list[Path]
    journal: Journal
    debug_dir: Path | None
    debug: bool
    envs: list[dict[str, str]] | None
    todo: list[Path] = None  # type: ignore[assignment]
    tracked: Tracked | None = None  # the tracking pass's result, for a video's frames
    manual_ids: dict[int, list[int]] | None = None  # --detector manual on a video's frames: the faces' track ids

    @property
    def workers(self) -> int:
        return default_worker_count() if self.settings.workers is None else self.settings.workers


def extract(input_dir: str | Path, output_dir: str | Path, settings: ExtractSettings | None = None, *,
            debug: bool = False, device: DeviceChoice | None = None) -> dict[str, int]:
    """Extract aligned faces from every image in `input_dir` into `output_dir`; returns the counts.

    Settings left None are asked on a terminal (defaults without one) once the folders check out.
    `device` (from --cpu-only / --force-gpu-idxs) is handed to every worker process as its
    environment; None leaves the workers this process's environment."""
    run = _prepare(input_dir, output_dir, settings or ExtractSettings(), debug, device)
    s = run.settings
    if s.manual_output_debug_fix:
        factory = functools.partial(make_worker, s.frame_settings(run.out_dir, run.debug_dir))
        stats = reextract_deleted_debug(run.frames, run.out_dir, run.debug_dir, run.journal, factory,
                                        s.manual_window_size, run.debug, run.envs, with_tracks=bool(s.tracks))
        _report(run, stats)
        return stats
    _plan(run)
    log.info(f"Extracting {s.long_face_type} faces at {s.image_size}px with {s.detector} from {len(run.todo)} frames "
             f"({run.workers or 'no'} worker processes{', CPU only' if device is not None and device.cpu_only else ''})")
    factory = functools.partial(make_worker, s.frame_settings(run.out_dir, run.debug_dir))
    given = _faces_found_first(run, factory)
    stats = _write_faces(run, factory, given)
    _report(run, stats)
    return stats


def _prepare(input_dir: str | Path, output_dir: str | Path, settings: ExtractSettings, debug: bool,
             device: DeviceChoice | None) -> _Run:
    """Stage 1: check the folders, then decide every setting (prompts come after the folders check out)."""
    in_dir = require_dir(input_dir, "frame folder")
    frames = list_images(in_dir)
    if not frames:
        raise UserError("no images in this folder", in_dir)
    out_dir = ensure_writable_dir(output_dir)
    if out_dir.resolve() == in_dir.resolve():
        raise UserError("the output folder must differ from the input folder", out_dir)
    if settings.manual_output_debug_fix:
        settings = _like_the_faceset(out_dir, settings)
    settings = settings.complete()
    if settings.long_face_type not in EXTRACT_FACE_TYPES:  # defensive: the declaration only offers these
        raise UserError(f"--face-type must be one of {', '.join(EXTRACT_FACE_TYPES)}, got '{settings.face_type}'")
    for ref in settings.reference_faces:
        if not ref.is_file():
            raise UserError("reference face image not found", ref)
    wants_debug = settings.output_debug or settings.manual_output_debug_fix
    debug_dir = out_dir.parent / f"{out_dir.name}_debug" if wants_debug else None
    envs = [device.env()] if device is not None else None
    return _Run(in_dir, out_dir, settings, frames, Journal(out_dir), debug_dir, debug, envs)


def _like_the_faceset(out_dir: Path, settings: ExtractSettings) -> ExtractSettings:
    """Re-extracted faces must match the faces around them: face type and size not given are taken
    from a face already in the folder."""
    from PIL import Image

    from faceset.faceset import Face
    for p in sorted(existing_faces(out_dir)):
        try:
            meta = Face(p.name, p).meta()
        except UserError:
            continue
        if meta is None:
            continue
        with Image.open(p) as im:
            size = im.size[0]
        return replace(settings, face_type=settings.face_type or meta.face_type.short_name,
                       image_size=settings.image_size or size)
    return settings


def _plan(run: _Run) -> None:
    """Stage 2: the frames to do — resume from the journal, or start over (the old faces to the trash)."""
    if _decide_resume(run.out_dir, run.journal, run.settings.resume):
        run.todo = frames_to_do(run.frames, run.out_dir, run.journal)
        if len(run.todo) < len(run.frames):
            log.info(f"Resuming: {len(run.frames) - len(run.todo)} of {len(run.frames)} frames already done")
        # faces a killed run wrote for frames it never finished: those frames are redone cleanly (first,
        # since the tracking pass writes faces as it finds them)
        remove_faces_of(run.out_dir, {f.stem for f in run.todo})
    else:
        start_over(run.out_dir, run.journal, run.debug_dir, run.frames)
        run.todo = list(run.frames)
    if run.debug_dir is not None:
        ensure_writable_dir(run.debug_dir)


def _decide_resume(output_dir: Path, journal: Journal, resume: bool | None) -> bool:
    """True to continue a previous run, False to start over (moving its faces to the trash)."""
    if not journal.path.exists() and not any(is_face(p) for p in existing_faces(output_dir)):
        return True
    if resume is not None:
        return resume
    return interact.ask_bool(
        f"{output_dir} already holds faces. Continue extraction", True,
        help_text=f"y: keep them and process only the frames not done yet. n: move them to {trash_dir(output_dir)} "
                  "and start over (other files stay where they are).")


def _faces_found_first(run: _Run, factory) -> dict[int, list]:
    """Stage 3: faces decided before the write pass — placed by hand (manual detector), found for a
    video's frames and linked into tracks (--tracks), or found for the whole sequence and smoothed
    across frames (--smooth-landmarks). {index in run.todo: faces}."""
    s = run.settings
    if s.detector == "manual":
        tracks = ManualTracks(run.frames, run.todo, run.out_dir) if s.tracks else None
        decided = manual_faces(run.todo, s.manual_window_size, tracks=tracks)  # undecided (q): still to do
        ids = tracks.ids(decided) if tracks is not None else {}
        order = sorted(decided)
        run.todo = [run.todo[i] for i in order]
        run.manual_ids = {new: ids[old] for new, old in enumerate(order) if old in ids}
        return {new: decided[old] for new, old in enumerate(order)}
    numbers = _video_numbers(run)
    if numbers is not None:
        # a resumed run continues the tracks of the frames done before (their faces' ids)
        context = None
        if len(run.todo) < len(run.frames):
            from facelib.tracks import frame_numbers
            context = written_context(run.frames, frame_numbers(run.frames), run.todo, run.out_dir)
        # one read of each frame: the detection pass writes the faces, unless they change after it
        # (smoothed landmarks) or the debug images need the track ids drawn on the frame
        stage = not s.smooth_landmarks and run.debug_dir is None
        run.tracked = detect_and_track(run.todo, numbers, factory.args[0], run.workers, run.debug, run.envs,
                                       smooth=bool(s.smooth_landmarks), first_id=next_track_id(run.out_dir),
                                       context=context, stage=stage)
        return run.tracked.faces
    if s.smooth_landmarks:
        return detect_and_smooth(run.todo, factory.args[0], run.workers, run.debug, run.envs)
    return {}


def _video_numbers(run: _Run) -> list[int] | None:
    """Frame numbers of the frames to do when tracking applies (a video's frames, --tracks on), else None."""
    from facelib.tracks import frame_numbers
    if not run.settings.tracks or run.settings.detector == "manual" or not run.todo:
        return None
    numbers = frame_numbers(run.frames)
    if numbers is None:
        log.info("Not a video's frames (names are not numbers with one prefix): each frame is treated on its own")
        return None
    by_name = {f.name: n for f, n in zip(run.frames, numbers)}
    return [by_name[f.name] for f in run.todo]


def _write_faces(run: _Run, factory, given: dict[int, list]) -> dict[str, int]:
    """Stage 4: the worker pool writes every frame's faces (journalled); then the --manual-fix pass."""
    todo_names = {f.name for f in run.todo}
    previous = run.journal.done_frames()
    stats = {"images": len(run.frames), "faces": sum(n for name, n in previous.items() if name not in todo_names),
             "skipped": 0, "no_face": 0, "identity_rejected": 0, "implausible": 0}
    tracked = run.tracked
    if tracked is not None and not tracked.video:
        stats.update(implausible=tracked.implausible)
    elif tracked is not None:
        stats.update(tracks=tracked.tracks, filled=tracked.filled, untracked=tracked.untracked,
                     identity_rejected=tracked.identity_rejected, implausible=tracked.implausible, cuts=tracked.cuts)
    if tracked is not None and tracked.staged:
        no_face = finish_staged(run.todo, tracked, factory.args[0], run.journal, stats)
    else:
        ids = tracked.track_ids if tracked is not None else run.manual_ids or {}
        jobs = [FrameJob(f, given.get(i), track_ids=ids.get(i), identity_checked=tracked is not None)
                for i, f in enumerate(run.todo)]
        no_face = run_jobs(factory, jobs, run.workers, run.journal, stats, run.debug, "Extracting faces", run.envs)
    if run.settings.manual_fix and no_face:
        log.info(f"Manual pass over the {len(no_face)} frames where no face was found")
        # the faces placed by hand join the tracks of the frames around them
        tracks = ManualTracks(run.frames, no_face, run.out_dir) if run.settings.tracks else None
        fixed = manual_faces(no_face, run.settings.manual_window_size, tracks=tracks)
        ids = tracks.ids(fixed) if tracks is not None else {}
        fix_jobs = [FrameJob(no_face[i], faces, track_ids=ids.get(i)) for i, faces in sorted(fixed.items()) if faces]
        fixed_paths = {j.path for j in fix_jobs}
        still_missing = run_jobs(factory, fix_jobs, 0, run.journal, stats, run.debug, "Writing manual faces", run.envs)
        no_face = [p for p in no_face if p not in fixed_paths or p in still_missing]
    stats["no_face"] = len(no_face)
    return stats


def _report(run: _Run, stats: dict[str, int]) -> None:
    """Stage 5: the counts, DFL style; an error when no frame at all could be read."""
    log.info("-------------------------")
    log.info(f"Images found:        {stats['images']}")
    log.info(f"Faces detected:      {stats['faces']}")
    if stats["no_face"]:
        log.info(f"Frames without face: {stats['no_face']}")
    if "tracks" in stats:
        log.info(f"Face tracks:         {stats['tracks']} ({stats['cuts']} scene cuts)")
        log.info(f"Faces filled in:     {stats['filled']} (missed by the detector, followed from the frame before)")
        if stats["untracked"]:
            log.info(f"Faces in no track:   {stats['untracked']} (found in one frame only; not kept)")
    if stats.get("implausible"):
        log.info(f"Not face-like:       {stats['implausible']} detections dropped (--plausibility-threshold)")
    if stats["identity_rejected"]:
        log.info(f"Faces of other people skipped (identity filter): {stats['identity_rejected']}")
    if stats["skipped"]:
        log.warning(f"Skipped files:       {stats['skipped']} (see the messages above)")
    log.info("-------------------------")
    if run.todo and stats["skipped"] == len(run.todo):
        raise UserError(f"none of the {len(run.todo)} images could be processed", run.in_dir)

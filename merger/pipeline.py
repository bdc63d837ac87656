"""Batch merging: the model predicts in batches in this process while a pool of workers composites
and writes PNGs (DFL's split, without its stalls: the model's loop runs in a thread, a batch ahead
of the frames the pool asks for, so the model and the workers run at the same time).
"""
from __future__ import annotations

import collections.abc
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import disk_error, ensure_writable_dir
from core.image_io import read_image, write_image
from core.workers import run_pool
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from merger import temporal
from merger.compose import FacePrediction, Motion, compose_frame, crop_for_model
from merger.config import MergeConfig
from merger.frames import FrameInfo
from merger.xseg_masks import BakedMask, Masker, XSegNeed, fill_xseg


@dataclass
class MergeJob:
    """Everything a worker needs to merge one frame (picklable, no model)."""

    index: int
    frame_path: Path
    out_path: Path
    mask_path: Path
    cfg: MergeConfig
    crop: CropSpec  # the model's crop: its resolution and face type
    motion: Motion = field(default_factory=Motion)
    frame: np.ndarray | None = None  # decoded already when the frame has faces
    faces: list[FacePrediction] = field(default_factory=list)


def output_paths(frame: Path, output_dir: Path, mask_dir: Path) -> tuple[Path, Path]:
    """merged/<frame stem>.png and merged_mask/<frame stem>.png."""
    return output_dir / f"{frame.stem}.png", mask_dir / f"{frame.stem}.png"


@dataclass(frozen=True)
class WriteFailure:
    """A merged frame that could not be written (disk full, read-only, folder gone): the next frames
    would fail the same way, so it ends the run instead of counting as one failed frame."""

    message: str
    path: str


def merge_job(job: MergeJob) -> float | WriteFailure:
    """Composite one frame and write both PNGs atomically; returns this process's peak memory (MB),
    or a WriteFailure naming the file that could not be written."""
    frame = job.frame if job.frame is not None else read_image(job.frame_path)
    image, mask = compose_frame(frame, job.faces, job.cfg, job.crop.size, job.crop.face_type, job.motion)
    for path, data in ((job.out_path, image), (job.mask_path, mask)):
        try:
            write_image(path, data)
        except UserError as e:  # atomic_path's disk-full / read-only error, naming the file
            return WriteFailure(e.problem, str(e.path or path))
        except OSError as e:
            err = disk_error(e, path)
            return WriteFailure(err.problem, str(path))
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (0 where the platform does not say).

    Linux's VmHWM, not ru_maxrss: a spawned worker's ru_maxrss still counts the parent's memory
    from before its exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def merge_worker() -> Callable[[MergeJob], float]:
    """Pool factory: one OpenCV thread per worker process (the pool is the parallelism)."""
    cv2.setNumThreads(1)
    return merge_job


def model_crop(predictor) -> CropSpec:
    """The crop the model was trained on: the faces it is given are cut this way."""
    return CropSpec(int(predictor.resolution), FaceType(predictor.face_type))


def _run_model(predictor, crops: list[np.ndarray], morphs: list[float], crop_lms: list[np.ndarray],
               R: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(faces, src masks, dst masks) of every crop. A predictor with `has_morph` gets morph= (one call per
    distinct value: frames of one batch may differ), one with `needs_landmarks` gets landmarks=(N, 68, 2) in
    crop pixels (models/predictor.py)."""
    n = len(crops)
    has_morph = bool(getattr(predictor, "has_morph", False))
    needs_lms = bool(getattr(predictor, "needs_landmarks", False))
    groups: dict[float | None, list[int]] = {}
    for j in range(n):
        groups.setdefault(float(morphs[j]) if has_morph else None, []).append(j)
    face = np.zeros((n, R, R, 3), np.float32)
    src_mask, dst_mask = np.zeros((n, R, R), np.float32), np.zeros((n, R, R), np.float32)
    for morph, idx in groups.items():
        extra: dict = {}
        if morph is not None:
            extra["morph"] = morph
        if needs_lms:
            extra["landmarks"] = np.stack([crop_lms[j] for j in idx]).astype(np.float32)
        pred = predictor.predict(np.stack([crops[j] for j in idx]), **extra)
        m = len(idx)
        got = np.asarray(pred.face, np.float32)
        if got.shape != (m, R, R, 3):
            raise ValueError(f"the model returned faces of shape {got.shape}, expected {(m, R, R, 3)}")
        face[idx] = got
        src_mask[idx] = np.asarray(pred.src_mask, np.float32).reshape(m, R, R)
        dst_mask[idx] = np.asarray(pred.dst_mask, np.float32).reshape(m, R, R)
    return face, src_mask, dst_mask


def predict_faces(predictor, frame: np.ndarray | list[np.ndarray], landmarks: list[list[np.ndarray]] | list[np.ndarray],
                  xseg: Masker | None = None, need: XSegNeed = XSegNeed(),
                  baked: list[list[BakedMask | None]] | list[BakedMask | None] | None = None,
                  morph: float | list[float] | None = None) -> list[list[FacePrediction]]:
    """Run the model once over every face of one or several frames; predictions grouped per frame.

    With `need`, the XSeg masks it names are made too (`merger.xseg_masks.fill_xseg`, one `xseg` call per
    kind for all faces); `baked`: each face's baked mask or None, grouped like `landmarks`. `morph`: the
    frame's (or each frame's) MergeConfig.morph_factor, for predictors with `has_morph` (default: the
    config's default). Predictors with `needs_landmarks` get each face's landmarks mapped into its crop."""
    frames = frame if isinstance(frame, list) else [frame]
    lms = landmarks if isinstance(frame, list) else [landmarks]
    bakes = (baked if isinstance(frame, list) else [baked]) if baked is not None else [[] for _ in frames]
    if morph is None:
        morph = MergeConfig().morph_factor
    morphs_of = list(morph) if isinstance(morph, (list, tuple)) else [morph] * len(frames)
    needs_lms = bool(getattr(predictor, "needs_landmarks", False))
    spec = model_crop(predictor)
    R = spec.size
    crops, owners, face_morphs, crop_lms = [], [], [], []
    for k, (img, face_lms, face_bakes) in enumerate(zip(frames, lms, bakes)):
        for j, lm in enumerate(face_lms):
            crops.append(crop_for_model(img, lm, R, spec.face_type))
            owners.append((k, lm, face_bakes[j] if j < len(face_bakes) else None))
            face_morphs.append(morphs_of[k])
            if needs_lms:  # the same crop as crop_for_model's: the frame landmarks in its pixels
                crop_lms.append(spec.to_face(np.asarray(lm, np.float64)))
    out: list[list[FacePrediction]] = [[] for _ in frames]
    if not crops:
        return out
    face, src_mask, dst_mask = _run_model(predictor, crops, face_morphs, crop_lms, R)
    faces = [FacePrediction(lm, face[j], src_mask[j], dst_mask[j]) for j, (_, lm, _) in enumerate(owners)]
    if need:
        fill_xseg(faces, [frames[k] for k, _, _ in owners], [b for _, _, b in owners], xseg, need, spec)
    for fp, (k, _, _) in zip(faces, owners):
        out[k].append(fp)
    return out


def predict_batches(infos: list[FrameInfo], cfg_of: Callable[[int], MergeConfig], predictor, output_dir: Path,
                    mask_dir: Path, batch: int = 8, xseg: Masker | None = None) -> Iterator[list[MergeJob]]:
    """The merge jobs, `batch` frames at a time: read the frames that have faces, run the model once
    over all their faces (`predict_faces`, with the XSeg masks the batch's mask modes need), and yield
    the batch's jobs in frame order."""
    output_dir, mask_dir = Path(output_dir), Path(mask_dir)
    spec = model_crop(predictor)
    # Decoding releases the GIL: a couple of threads keep a large-frame decode from stalling the pool.
    with ThreadPoolExecutor(2, thread_name_prefix="frame-reader") as readers:
        for start in range(0, len(infos), max(1, batch)):
            idx = list(range(start, min(len(infos), start + max(1, batch))))
            frames = list(readers.map(lambda k: read_image(infos[k].path) if infos[k].landmarks else None, idx))
            with_faces = [n for n, f in enumerate(frames) if f is not None]
            need = XSegNeed.of(cfg_of(idx[n]).mask_mode for n in with_faces)
            preds = predict_faces(predictor, [frames[n] for n in with_faces], [infos[idx[n]].landmarks for n in with_faces],
                                  xseg, need, [infos[idx[n]].baked_masks for n in with_faces],
                                  morph=[cfg_of(idx[n]).morph_factor for n in with_faces])
            faces_of = dict(zip(with_faces, preds))
            jobs = []
            for n, k in enumerate(idx):
                info = infos[k]
                out, mask = output_paths(info.path, output_dir, mask_dir)
                jobs.append(MergeJob(k, info.path, out, mask, cfg_of(k), spec, info.motion, frames[n],
                                     faces_of.get(n, [])))
            yield jobs


def stabilised_batches(batches: Iterator[list[MergeJob]], infos: list[FrameInfo], cfg_of: Callable[[int], MergeConfig],
                       runs: list[list[temporal.FaceKey]]) -> Iterator[list[MergeJob]]:
    """The temporal merge's second stage (merger.temporal): each job is held back until the model has
    predicted `temporal` frames past it, then its tracked faces get the mask and colour statistics averaged
    over their neighbours. Each face's sample is taken once, under its own frame's settings, and dropped
    once no later frame can reach it."""
    index = temporal.run_index(runs)
    reach = max((cfg_of(k).temporal for k in range(len(infos))), default=0)
    held: dict[int, MergeJob] = {}
    samples: dict[temporal.FaceKey, temporal.FaceSample] = {}
    next_out = 0
    try:
        for jobs in batches:
            for job in jobs:
                held[job.index] = job
                for j, fp in enumerate(job.faces):
                    if (job.index, j) in index and job.frame is not None:
                        samples[(job.index, j)] = temporal.face_sample(job.frame, fp, job.cfg, job.crop)
            last = max(held) if held else next_out - 1
            ready = []
            while next_out in held and next_out + reach <= last:
                ready.append(_stabilised(held.pop(next_out), samples, index))
                next_out += 1
            for key in [key for key in samples if key[0] < next_out - reach]:
                del samples[key]
            if ready:
                yield ready
        rest = [_stabilised(held.pop(k), samples, index) for k in sorted(held)]
        if rest:
            yield rest
    finally:
        batches.close()


def _stabilised(job: MergeJob, samples: dict, index: dict) -> MergeJob:
    """The job with each tracked face averaged over the samples within its frame's `temporal` window."""
    r = job.cfg.temporal
    if r <= 0:
        return job
    faces = []
    for j, fp in enumerate(job.faces):
        if (job.index, j) in index:
            run, pos = index[(job.index, j)]
            fp = temporal.stabilise(fp, [(samples[key], w) for key, w in temporal.window(run, pos, r) if key in samples])
        faces.append(fp)
    job.faces = faces
    return job


class JobFeed(collections.abc.Sequence):
    """The merge jobs as the pool takes them, by index: filled in order by `feed_jobs` (the model's
    loop, in a background thread, so prediction overlaps compositing); reading a job waits until it
    is there. The feed runs at most `ahead` jobs past the latest one asked for, and drops a job's
    frame once `release` says its result is in."""

    def __init__(self, n: int, ahead: int):
        self._n, self._ahead = n, max(1, ahead)
        self._jobs: dict[int, MergeJob] = {}
        self._filled = 0  # jobs [0, filled) have been put
        self._asked = -1  # the highest index read so far
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        with self._cond:
            if i > self._asked:
                self._asked = i
                self._cond.notify_all()
            while i >= self._filled and self._error is None:
                self._cond.wait(0.1)
            if self._error is not None:
                raise self._error
            if i not in self._jobs:
                raise RuntimeError(f"merge job {i} was asked for after its result was in")
            return self._jobs[i]

    def wait_for_room(self, start: int) -> bool:
        """Block until the pool is within `ahead` jobs of `start`; False once the feed is closed."""
        with self._cond:
            while not self._closed and start > self._asked + self._ahead:
                self._cond.wait(0.1)
            return not self._closed

    def put(self, jobs: list[MergeJob]) -> None:
        with self._cond:
            for job in jobs:
                self._jobs[job.index] = job
            self._filled = max([self._filled] + [job.index + 1 for job in jobs])
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """The model loop failed: every wait raises `error` in the pool's thread."""
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def release(self, i: int) -> None:
        with self._cond:
            self._jobs.pop(i, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def feed_jobs(feed: JobFeed, batches: Iterator[list[MergeJob]], batch: int) -> None:
    """The model's loop: predict one batch of frames (`predict_batches`) whenever the pool comes
    within reach of it, and put its jobs in the feed; a failure is handed to the feed."""
    try:
        start = 0
        while feed.wait_for_room(start):
            jobs = next(batches, None)
            if jobs is None:
                return
            feed.put(jobs)
            start = max([start] + [job.index + 1 for job in jobs])
    except BaseException as e:  # noqa: BLE001 - re-raised in the pool's thread by the feed
        feed.fail(e)
    finally:
        batches.close()


@dataclass
class MergeSummary:
    merged: int
    failed: list[tuple[str, str]]  # (frame name, reason)
    worker_peak_mb: float = 0.0  # the largest compositing process's peak memory


def run_merge(infos: list[FrameInfo], cfg: MergeConfig | Sequence[MergeConfig], predictor, output_dir: Path,
              mask_dir: Path, workers: int, batch: int = 8, progress: bool = True, debug: bool = False,
              on_done: Callable[[int], None] | None = None, worker_envs: Sequence[dict] | None = None,
              xseg: Masker | None = None) -> MergeSummary:
    """Merge every frame of `infos` with `cfg` (one for all, or one per frame) into the folders.

    `xseg`: the XSeg model, needed when a config's mask mode is an XSeg one (run here, beside the model).

    `workers=0` composites in this process. Failed frames are reported by name and the rest go on,
    except a frame that cannot be written: that raises a UserError naming the file (the disk is full).
    `on_done(index)` is called for each frame written, in order (sessions track progress with it).
    """
    ensure_writable_dir(output_dir)
    ensure_writable_dir(mask_dir)
    cfg_of = (lambda k: cfg) if isinstance(cfg, MergeConfig) else (lambda k: cfg[k])
    batch = max(1, batch)
    feed = JobFeed(len(infos), ahead=batch)
    runs = temporal.track_runs(infos) if any(cfg_of(k).temporal > 0 for k in range(len(infos))) else []
    if runs:  # temporal merge: smoothed crops first, then masks and colours averaged as predictions come in
        infos = temporal.smooth_landmarks(infos, lambda k: cfg_of(k).temporal, runs)
        batches = stabilised_batches(predict_batches(infos, cfg_of, predictor, output_dir, mask_dir, batch, xseg),
                                     infos, cfg_of, runs)
    else:
        batches = predict_batches(infos, cfg_of, predictor, output_dir, mask_dir, batch, xseg)
    model_loop = threading.Thread(target=feed_jobs, name="merge-predict", daemon=True, args=(feed, batches, batch))
    model_loop.start()
    merged, failed, peak = 0, [], 0.0
    results = run_pool(merge_worker, feed, workers=workers, name_of=lambda j: j.frame_path.name,
                       desc="Merging", unit="frame", progress=progress, debug=debug, worker_envs=worker_envs)
    try:
        for result in results:
            feed.release(result.index)
            if result.ok and isinstance(result.value, WriteFailure):
                raise UserError(result.value.message, result.value.path)
            if result.ok:
                merged += 1
                peak = max(peak, float(result.value or 0.0))
                if on_done is not None:
                    on_done(result.index)
            else:
                failed.append((result.name, result.error or "failed"))
                log.error(f"{result.name}: {result.error}")
    finally:
        results.close()  # stops the pool now, not when the generator is collected
        feed.close()
        model_loop.join(timeout=60)  # at most the batch being predicted
    return MergeSummary(merged, failed, peak)

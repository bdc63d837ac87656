"""Batch merging: the model predicts in batches in this process while a pool of workers composites
and writes PNGs (DFL's split, without its stalls: predictions are made lazily, a batch ahead of the
frames the pool asks for, so the model and the workers run at the same time).
"""
from __future__ import annotations

import collections.abc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import disk_error, ensure_writable_dir
from core.image_io import read_image, write_image
from core.workers import run_pool
from facelib.face_type import FaceType
from merger.compose import FacePrediction, Motion, compose_frame, crop_for_model
from merger.config import MergeConfig
from merger.frames import FrameInfo


@dataclass
class MergeJob:
    """Everything a worker needs to merge one frame (picklable, no model)."""

    index: int
    frame_path: Path
    out_path: Path
    mask_path: Path
    cfg: MergeConfig
    resolution: int
    face_type: int
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
    image, mask = compose_frame(frame, job.faces, job.cfg, job.resolution, FaceType(job.face_type), job.motion)
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


def predict_faces(predictor, frame: np.ndarray | list[np.ndarray], landmarks: list[list[np.ndarray]] | list[np.ndarray],
                  ) -> list[list[FacePrediction]]:
    """Run the model once over every face of one or several frames; predictions grouped per frame."""
    frames = frame if isinstance(frame, list) else [frame]
    lms = landmarks if isinstance(frame, list) else [landmarks]
    R, ft = int(predictor.resolution), FaceType(predictor.face_type)
    crops, owners = [], []
    for k, (img, face_lms) in enumerate(zip(frames, lms)):
        for lm in face_lms:
            crops.append(crop_for_model(img, lm, R, ft))
            owners.append((k, lm))
    out: list[list[FacePrediction]] = [[] for _ in frames]
    if not crops:
        return out
    pred = predictor.predict(np.stack(crops))
    n = len(crops)
    face = np.asarray(pred.face, np.float32)
    src_mask = np.asarray(pred.src_mask, np.float32).reshape(n, R, R)
    dst_mask = np.asarray(pred.dst_mask, np.float32).reshape(n, R, R)
    if face.shape != (n, R, R, 3):
        raise ValueError(f"the model returned faces of shape {face.shape}, expected {(n, R, R, 3)}")
    for j, (k, lm) in enumerate(owners):
        out[k].append(FacePrediction(lm, face[j], src_mask[j], dst_mask[j]))
    return out


class PredictedJobs(collections.abc.Sequence):
    """The merge jobs as a sequence whose items are predicted on first access, `batch` frames at a
    time; run_pool asks for them in order, so the model works one batch ahead of the workers."""

    def __init__(self, infos: list[FrameInfo], cfg_of: Callable[[int], MergeConfig], predictor,
                 output_dir: Path, mask_dir: Path, batch: int = 8, keep: int = 64):
        self.infos, self.cfg_of, self.predictor = infos, cfg_of, predictor
        self.output_dir, self.mask_dir = Path(output_dir), Path(mask_dir)
        self.batch, self.keep = max(1, batch), keep
        self._cache: dict[int, MergeJob] = {}
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="frame-reader")

    def __len__(self) -> int:
        return len(self.infos)

    def close(self) -> None:
        self._readers.shutdown(wait=True)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i not in self._cache:
            self._fill(i)
        return self._cache[i]

    def _fill(self, start: int) -> None:
        for k in [k for k in self._cache if k < start - self.keep]:
            del self._cache[k]
        idx = list(range(start, min(len(self), start + self.batch)))
        # Decoding releases the GIL: a couple of threads keep a large-frame decode from stalling the pool.
        frames = list(self._readers.map(lambda k: read_image(self.infos[k].path) if self.infos[k].landmarks else None, idx))
        lms = [self.infos[k].landmarks for k in idx]
        with_faces = [n for n, f in enumerate(frames) if f is not None]
        preds = predict_faces(self.predictor, [frames[n] for n in with_faces], [lms[n] for n in with_faces])
        faces_of = dict(zip(with_faces, preds))
        R, ft = int(self.predictor.resolution), int(self.predictor.face_type)
        for n, k in enumerate(idx):
            info = self.infos[k]
            out, mask = output_paths(info.path, self.output_dir, self.mask_dir)
            self._cache[k] = MergeJob(k, info.path, out, mask, self.cfg_of(k), R, ft, info.motion,
                                      frames[n], faces_of.get(n, []))


@dataclass
class MergeSummary:
    merged: int
    failed: list[tuple[str, str]]  # (frame name, reason)
    worker_peak_mb: float = 0.0  # the largest compositing process's peak memory


def run_merge(infos: list[FrameInfo], cfg: MergeConfig | Sequence[MergeConfig], predictor, output_dir: Path,
              mask_dir: Path, workers: int, batch: int = 8, progress: bool = True, debug: bool = False,
              on_done: Callable[[int], None] | None = None, worker_envs: Sequence[dict] | None = None) -> MergeSummary:
    """Merge every frame of `infos` with `cfg` (one for all, or one per frame) into the folders.

    `workers=0` composites in this process. Failed frames are reported by name and the rest go on,
    except a frame that cannot be written: that raises a UserError naming the file (the disk is full).
    `on_done(index)` is called for each frame written, in order (sessions track progress with it).
    """
    ensure_writable_dir(output_dir)
    ensure_writable_dir(mask_dir)
    cfg_of = (lambda k: cfg) if isinstance(cfg, MergeConfig) else (lambda k: cfg[k])
    jobs = PredictedJobs(infos, cfg_of, predictor, output_dir, mask_dir, batch=batch)
    merged, failed, peak = 0, [], 0.0
    results = run_pool(merge_worker, jobs, workers=workers, name_of=lambda j: j.frame_path.name,
                       desc="Merging", unit="frame", progress=progress, debug=debug, worker_envs=worker_envs)
    try:
        for result in results:
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
        jobs.close()
    return MergeSummary(merged, failed, peak)

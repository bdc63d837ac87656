"""Training samples: a faceset's faces as augmented batches, produced ahead in background processes.

DFL's samplelib in three parts:
- `load_faceset` reads every face's metadata once (a folder of aligned JPEGs, ours or DFL's, or a
  `faceset.pak`) into light `FaceRecord`s: where the bytes are, face type, landmarks;
- `BatchStream` runs worker processes that decode each face once at the model's resolution
  (re-cropped when the faceset's face type is wider than the model's), keep it in a per-worker
  cache, and turn random draws into `Batch`es: the network input (random warp + affine + flip +
  HSV), the target (same affine and flip, no warp), the face mask and the eyes+mouth mask;
- `preview_batch` gives the same outputs without augmentation, for the trainer's preview rows.

Batches travel through shared memory (one slot per prefetched batch), so the trainer's process pays
one copy per batch, not a pickle round trip of tens of megabytes.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import TEMP_MARK
from core.warp import gen_warp_params, warp_image
from core.workers import default_worker_count, exit_when_parent_dies, run_pool
from facelib.align import FIT_INDICES, MEAN_FACE_UNIT, estimate_averaged_yaw, transform_points, umeyama
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from facelib.masks import eyes_mouth_mask, face_mask
from faceset.face_file import meta_from_jpeg_bytes
from faceset.faceset import Face, Faceset, one_face_type

CT_MODES = ("rct", "lct", "mkl", "idt", "sot")
YAW_BINS = 128  # uniform_yaw: DFL's bin count
POOL_THRESHOLD = 2000  # more face files than this: metadata is read on a process pool
DEFAULT_CACHE_MB = 1024  # decoded faces kept per stream (split across its workers)
MASK_CUTOFF = 0.5  # the eyes+mouth mask is kept where the face mask is above this


@dataclass(frozen=True)
class SampleSpec:
    """What one side (src or dst) of a model trains on, and how its inputs are augmented."""

    resolution: int
    face_type: str  # long name ("full_face") or short code ("f")
    random_warp: bool = True
    random_flip: bool = False
    random_hsv_power: float = 0.0  # input only: hue ±360·a/2, saturation and value ±a/2
    ct_mode: str | None = None  # colour-transfer each face towards a random ct_source face
    scale_range: tuple[float, float] = (-0.05, 0.05)  # SAEHD and AMP use (-0.15, 0.15)
    uniform_yaw: bool = False
    eyes_mouth: bool = True  # produce em_mask (zeros when off)

    def __post_init__(self) -> None:
        if int(self.resolution) < 16:
            raise ValueError(f"resolution must be at least 16 px, got {self.resolution}")
        FaceType.from_string(self.face_type)
        if self.ct_mode is not None and self.ct_mode not in CT_MODES:
            raise ValueError(f"unknown ct_mode {self.ct_mode!r} (choose from {', '.join(CT_MODES)} or None)")
        if not 0.0 <= float(self.random_hsv_power) <= 1.0:
            raise ValueError(f"random_hsv_power must be in 0..1, got {self.random_hsv_power}")

    @property
    def target_face_type(self) -> FaceType:
        return FaceType.from_string(self.face_type)


@dataclass
class Batch:
    """N training samples at resolution R; float32, BGR, 0..1."""

    warped: np.ndarray  # (N, R, R, 3): the network input (random warp + affine + flip + HSV)
    target: np.ndarray  # (N, R, R, 3): the same affine and flip, no warp
    mask: np.ndarray  # (N, R, R, 1): the face mask in target geometry
    em_mask: np.ndarray  # (N, R, R, 1): eyes and mouth inside the face mask, each sample's max is 1

    def __len__(self) -> int:
        return int(self.warped.shape[0])


def _empty_batch(n: int, res: int) -> Batch:
    return Batch(np.zeros((n, res, res, 3), np.float32), np.zeros((n, res, res, 3), np.float32),
                 np.zeros((n, res, res, 1), np.float32), np.zeros((n, res, res, 1), np.float32))


# ---- loading a faceset ------------------------------------------------------------------------


@dataclass(eq=False)
class FaceRecord:
    """One face of a faceset: where its bytes are, and the metadata needed before decoding it."""

    name: str  # the face file's name
    path: str  # the face file, or the faceset.pak holding it
    face_type: FaceType
    landmarks: np.ndarray  # 68x2, pixels of the stored face image
    eyebrows_expand_mod: float = 1.0
    source_filename: str = ""
    offset: int = -1  # byte range inside a pack; -1 for a plain file
    length: int = -1

    @property
    def where(self) -> str:
        """How errors name this face: the file, or `pack:name`."""
        return f"{self.path}:{self.name}" if self.offset >= 0 else self.path

    def read_bytes(self) -> bytes:
        try:
            if self.offset < 0:
                return Path(self.path).read_bytes()
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.length)
        except OSError as e:
            raise UserError(f"cannot read this face ({e.strerror or e})", self.where) from None
        if len(data) != self.length:
            raise UserError("the packed faceset changed or was truncated while training", self.where)
        return data


_LightMeta = tuple[FaceType, np.ndarray, float, str]  # face_type, landmarks, eyebrows_expand_mod, source_filename


def _light(meta: Any) -> _LightMeta | None:
    if meta is None:
        return None
    return meta.face_type, meta.landmarks, meta.eyebrows_expand_mod, meta.source_filename


def _read_light(face: Face) -> _LightMeta | None:
    return _light(face.meta())


def _light_reader():
    """run_pool factory: the per-face metadata reader (returns only what a FaceRecord keeps)."""
    return _read_light


def load_faceset(path: str | Path, face_type: str | None = None) -> list[FaceRecord]:
    """The faces of a faceset (a folder, its `faceset.pak` when there is one, or a pack), metadata only.

    With `face_type`, also checks that the faces can be cropped to it (see `check_face_type`).
    """
    faceset = Faceset.open(path)
    faces = [f for f in faceset if f.is_jpeg and TEMP_MARK not in f.name]
    if not faces:
        raise UserError("no aligned faces (.jpg) here; extract faces first", faceset.where)
    if len(faces) > POOL_THRESHOLD:
        metas = []
        for result in run_pool(_light_reader, faces, workers=default_worker_count(), name_of=lambda f: f.name,
                               desc="Loading faces", unit="faces"):
            if not result.ok:
                raise UserError(str(result.error))
            metas.append(result.value)
    else:
        metas = [_read_light(f) for f in faces]
    missing = [f for f, m in zip(faces, metas) if m is None]
    if missing:
        raise UserError(f"{len(missing)} of {len(faces)} images have no face metadata (not aligned faces; "
                        "remove them or extract faces again)", missing[0].where)
    records = [_record(f, m) for f, m in zip(faces, metas)]
    one_face_type(((r.name, r.face_type) for r in records), faceset.where)
    if face_type is not None:
        check_face_type(records, face_type)
    return records


def _record(face: Face, meta: _LightMeta) -> FaceRecord:
    face_type, landmarks, brows, source = meta
    if landmarks.shape != (68, 2):
        raise UserError(f"the face has {len(landmarks)} landmarks; training needs the 68-point set", face.where)
    entry = face.entry
    return FaceRecord(face.name, str(face.path), face_type, landmarks, brows, source,
                      -1 if entry is None else entry.offset, -1 if entry is None else entry.size)


def check_face_type(records: Sequence[FaceRecord], face_type: str) -> None:
    """Refuse faces narrower than the model's face type: a crop can be re-cropped smaller, never wider."""
    target = FaceType.from_string(face_type)
    seen: set[FaceType] = set()
    for rec in records:
        ft = rec.face_type
        if ft in seen:
            continue
        seen.add(ft)
        if ft < target:
            raise UserError(f"this face is {ft.long_name} but the model trains on {target.long_name}, which covers "
                            f"more of the head; extract the faces as {target.long_name} (or wider)", rec.where)


def face_yaw(landmarks: np.ndarray) -> float:
    """DFL's averaged yaw of a face, measured in the mean-face unit square so crop size does not matter."""
    lm = np.asarray(landmarks, np.float64)
    to_unit = umeyama(lm[FIT_INDICES], MEAN_FACE_UNIT)[:2]
    return estimate_averaged_yaw(transform_points(lm, to_unit))


# ---- one face at the model's resolution --------------------------------------------------------


@dataclass
class _Face:
    image: np.ndarray  # (R, R, 3) uint8 BGR
    masks: np.ndarray | None  # (R, R, 2) uint8: face mask, eyes+mouth mask (0..255)

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + (0 if self.masks is None else self.masks.nbytes)


def _load_face(rec: FaceRecord, target: FaceType, res: int, masks: bool, eyes_mouth: bool) -> _Face:
    """Decode a face and bring it to `res` px of the `target` face type: resized when its type is the
    target's, re-cropped from its landmarks otherwise (DFL's rule)."""
    data = rec.read_bytes()
    meta = meta_from_jpeg_bytes(data, rec.where)
    if meta is None:
        raise UserError("the face lost its metadata while training", rec.where)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise UserError("corrupt JPEG (OpenCV cannot decode the image)", rec.where)
    h, w = image.shape[:2]
    stack = None
    if masks:
        full = face_mask((h, w), meta)
        if eyes_mouth:
            em = eyes_mouth_mask((h, w), meta.landmarks) * (full > MASK_CUTOFF)
        else:
            em = np.zeros_like(full)
        stack = np.rint(np.dstack([full, em]) * 255.0).astype(np.uint8)

    if meta.face_type == target:
        shrink = cv2.INTER_AREA if res < min(h, w) else cv2.INTER_CUBIC
        image = cv2.resize(image, (res, res), interpolation=shrink)
        if stack is not None:
            stack = cv2.resize(stack, (res, res), interpolation=cv2.INTER_LINEAR)
    else:
        crop = CropSpec(res, target).of(meta.landmarks)
        if stack is not None:
            stack = crop.warp(stack, cv2.INTER_LINEAR)
        mat, scale = crop.mat, crop.pixel_scale
        if scale < 0.5:  # shrink most of the way by area averaging, so the crop does not alias
            f = 2.0 * scale
            small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            mat = mat.copy()
            mat[:, :2] /= np.array([small.shape[1] / w, small.shape[0] / h])
            image = small
        image = cv2.warpAffine(image, mat, (res, res), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return _Face(np.ascontiguousarray(image), stack)


def _to_float(img_u8: np.ndarray) -> np.ndarray:
    return np.multiply(img_u8, np.float32(1.0 / 255.0), dtype=np.float32)


def _hsv_shift(img: np.ndarray, rng: np.random.Generator, power: float) -> np.ndarray:
    """Random hue (±360·a/2 degrees), saturation and value (±a/2) shift of a float32 BGR 0..1 image."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # float32: H in 0..360, S and V in 0..1
    hue = rng.uniform(-180.0 * power, 180.0 * power)
    sat, val = rng.uniform(-power / 2, power / 2, size=2)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(hue), np.float32(360.0))
    hsv[..., 1] = np.clip(hsv[..., 1] + np.float32(sat), 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + np.float32(val), 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), 0.0, 1.0)


# ---- drawing samples -------------------------------------------------------------------------


class _Order:
    """Endless shuffled epochs over some indices; with yaws, a shuffled round of yaw bins first."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator, yaws: np.ndarray | None = None):
        self.rng = rng
        if yaws is None or len(indices) < 2 or np.ptp(yaws) == 0:
            self.bins = [np.asarray(indices)]
        else:
            edges = np.linspace(yaws.min(), yaws.max(), YAW_BINS + 1)
            which = np.clip(np.digitize(yaws, edges[1:-1]), 0, YAW_BINS - 1)
            self.bins = [np.asarray(indices)[which == b] for b in range(YAW_BINS) if np.any(which == b)]
        self.cycles: list[deque] = [deque() for _ in self.bins]
        self.bin_cycle: deque = deque()

    def next(self) -> int:
        b = 0
        if len(self.bins) > 1:
            if not self.bin_cycle:
                self.bin_cycle.extend(self.rng.permutation(len(self.bins)).tolist())
            b = self.bin_cycle.popleft()
        cycle = self.cycles[b]
        if not cycle:
            cycle.extend(self.rng.permutation(self.bins[b]).tolist())
        return cycle.popleft()


class _Producer:
    """Makes batches from some faces; owns the decoded-face cache (one per process)."""

    def __init__(self, records: Sequence[FaceRecord], spec: SampleSpec, batch_size: int, seed: Any,
                 ct_source: Sequence[FaceRecord] | None, cache_bytes: int):
        self.records = list(records)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.target = spec.target_face_type
        self.rng = np.random.default_rng(seed)
        yaws = np.array([face_yaw(r.landmarks) for r in self.records]) if spec.uniform_yaw else None
        self.order = _Order(np.arange(len(self.records)), self.rng, yaws)
        self.ct_source = list(ct_source or []) if spec.ct_mode else []
        self.cache: dict[int, _Face] = {}
        self.ct_cache: dict[int, _Face] = {}
        self.cache_left = int(cache_bytes)
        self._color_transfer = None
        if self.ct_source:
            from core.color_transfer import color_transfer  # imported only when a model uses ct_mode
            self._color_transfer = color_transfer

    def _cached(self, cache: dict[int, _Face], rec: FaceRecord, i: int, masks: bool) -> _Face:
        face = cache.get(i)
        if face is None:
            face = _load_face(rec, self.target, self.spec.resolution, masks, self.spec.eyes_mouth)
            if face.nbytes <= self.cache_left:  # uniform random access: any full cache is as good as LRU
                cache[i] = face
                self.cache_left -= face.nbytes
        return face

    def fill(self, out: Batch) -> None:
        for k in range(len(out)):
            self._sample_into(out, k)

    def next_batch(self) -> Batch:
        out = _empty_batch(self.batch_size, self.spec.resolution)
        self.fill(out)
        return out

    def _sample_into(self, out: Batch, k: int) -> None:
        spec = self.spec
        i = self.order.next()
        face = self._cached(self.cache, self.records[i], i, masks=True)
        # One seed per sample: input and target share the affine and flip; only the input is warped.
        rng = np.random.default_rng(int(self.rng.integers(1 << 63)))
        img = _to_float(face.image)
        if self._color_transfer is not None:
            j = int(rng.integers(len(self.ct_source)))
            ref = self._cached(self.ct_cache, self.ct_source[j], j, masks=False)
            img = np.clip(self._color_transfer(spec.ct_mode, img, _to_float(ref.image)), 0.0, 1.0).astype(np.float32)
        params = gen_warp_params(spec.resolution, rng, flip=spec.random_flip, scale_range=spec.scale_range)
        warped = warp_image(img, params, warp=spec.random_warp, transform=True, border_replicate=True)
        np.clip(warped, 0.0, 1.0, out=warped)
        if spec.random_hsv_power > 0:
            warped = _hsv_shift(warped, rng, spec.random_hsv_power)
        out.warped[k] = warped
        target = warp_image(img, params, warp=False, transform=True, border_replicate=True)
        np.clip(target, 0.0, 1.0, out=out.target[k])
        masks = _to_float(warp_image(face.masks, params, warp=False, transform=True, border_replicate=False,
                                     interpolation=cv2.INTER_LINEAR))
        out.mask[k, ..., 0] = masks[..., 0]
        _put_em(out.em_mask[k, ..., 0], masks[..., 1])


def _put_em(dst: np.ndarray, em: np.ndarray) -> None:
    """The eyes+mouth mask renormalised to a maximum of 1 (after warping, as DFL does)."""
    peak = float(em.max())
    if peak > 0:
        np.multiply(em, np.float32(1.0 / peak), out=dst)
    else:
        dst[...] = 0.0


def preview_batch(records: Sequence[FaceRecord], spec: SampleSpec, n: int, seed: int = 0) -> Batch:
    """`n` faces (chosen by `seed`) at the model's resolution and face type, with no augmentation:
    `warped` and `target` are the same image. For the trainer's preview rows."""
    records = list(records)
    if not records:
        raise UserError("no faces for the preview")
    check_face_type(records, spec.face_type)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=int(n), replace=len(records) < n)
    out = _empty_batch(int(n), spec.resolution)
    for k, i in enumerate(picks):
        face = _load_face(records[int(i)], spec.target_face_type, spec.resolution, True, spec.eyes_mouth)
        out.target[k] = _to_float(face.image)
        masks = _to_float(face.masks)
        out.mask[k, ..., 0] = masks[..., 0]
        _put_em(out.em_mask[k, ..., 0], masks[..., 1])
    out.warped[...] = out.target
    return out


# ---- background processes ---------------------------------------------------------------------


def _batch_views(buffer: Any, n: int, res: int) -> Batch:
    """A Batch whose arrays live in a shared-memory slot."""
    flat = np.frombuffer(buffer, dtype=np.float32)
    img, msk = n * res * res * 3, n * res * res
    return Batch(flat[:img].reshape(n, res, res, 3), flat[img:2 * img].reshape(n, res, res, 3),
                 flat[2 * img:2 * img + msk].reshape(n, res, res, 1),
                 flat[2 * img + msk:2 * img + 2 * msk].reshape(n, res, res, 1))


def _slot_bytes(n: int, res: int) -> int:
    return 4 * n * res * res * 8  # two BGR images and two masks per sample, float32


def _worker_main(wid: int, records: list[FaceRecord], spec: SampleSpec, batch_size: int, seed: Any,
                 ct_source: list[FaceRecord] | None, cache_bytes: int, slots: list, free_q, ready_q, stop) -> None:
    """A sample process: fill a free slot with a batch, announce it, repeat until told to stop or
    the parent is gone."""
    exit_when_parent_dies()  # a killed trainer (kill -9, a crash) cannot close us: end with it, at once
    # Ctrl+C, and SIGTERM/SIGHUP sent to the whole process group (systemd, a closed terminal), are the
    # trainer's to handle: it saves with the batches we make, then closes us.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    cv2.setNumThreads(1)  # parallelism comes from the processes; do not fight the trainer for cores
    parent = multiprocessing.parent_process()
    try:
        producer = _Producer(records, spec, batch_size, seed, ct_source, cache_bytes)
        views = [_batch_views(s, batch_size, spec.resolution) for s in slots]
        while not stop.is_set():
            try:
                slot = free_q.get(timeout=0.25)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
            producer.fill(views[slot])
            ready_q.put(("batch", wid, slot))
    except UserError as e:
        ready_q.put(("user_error", wid, e.problem, None if e.path is None else str(e.path)))
    except BaseException:
        ready_q.put(("error", wid, traceback.format_exc()))


def _shutdown(procs: list, stop, queues: list) -> None:
    """Stop the sample processes: ask, wait a little, then terminate; never leave one behind."""
    stop.set()
    deadline = time.monotonic() + 3.0
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join()
    for q in queues:
        q.cancel_join_thread()
        q.close()


def _split(n: int, parts: int, min_part: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each worker's share of the faces: disjoint shards when every shard is still big enough for
    varied batches (halves each worker's cache), else everything for everyone."""
    if parts > 1 and n >= parts * min_part:
        perm = rng.permutation(n)
        return [np.sort(perm[k::parts]) for k in range(parts)]
    return [np.arange(n)] * max(parts, 1)


class BatchStream:
    """Endless augmented batches of one faceset, produced ahead by `workers` background processes.

    `workers=0` produces in the calling thread (debugging, tiny tests). Use as a context manager (or
    call `close`): closing stops every worker process, also when the consumer raised.
    """

    def __init__(self, records_or_path: Sequence[FaceRecord] | str | os.PathLike, spec: SampleSpec, batch_size: int,
                 *, workers: int = 1, prefetch: int = 2, seed: int | None = None,
                 ct_source: Sequence[FaceRecord] | None = None, cache_mb: int = DEFAULT_CACHE_MB):
        if isinstance(records_or_path, (str, os.PathLike)):
            records = load_faceset(records_or_path)
        else:
            records = list(records_or_path)
        if not records:
            raise UserError("no faces to train on")
        if int(batch_size) < 1 or int(workers) < 0 or int(prefetch) < 1:
            raise ValueError(f"need batch_size >= 1, workers >= 0, prefetch >= 1 "
                             f"(got {batch_size}, {workers}, {prefetch})")
        check_face_type(records, spec.face_type)
        ct = list(ct_source or []) if spec.ct_mode else []
        if spec.ct_mode:
            if not ct:
                raise UserError(f"ct_mode {spec.ct_mode} needs the dst faces to take colours from")
            check_face_type(ct, spec.face_type)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.face_count = len(records)
        self._closed = False
        self._batches = 0
        self._startup_s = 0.0
        self._wait_s = 0.0
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._created_at = time.perf_counter()
        seeds = np.random.SeedSequence(seed).spawn(max(self.workers, 1) + 1)
        cache_bytes = int(cache_mb) * (1 << 20) // max(self.workers, 1)
        self._producer: _Producer | None = None
        self._procs: list = []
        if self.workers == 0:
            self._producer = _Producer(records, spec, self.batch_size, seeds[0], ct, cache_bytes)
            self._finalizer = weakref.finalize(self, lambda: None)
            return

        ctx = multiprocessing.get_context("spawn")
        split_rng = np.random.default_rng(seeds[-1])
        shards = _split(len(records), self.workers, 2 * self.batch_size, split_rng)
        ct_shards = _split(len(ct), self.workers, 2 * self.batch_size, split_rng) if ct else [None] * self.workers
        nbytes = _slot_bytes(self.batch_size, spec.resolution)
        self._stop = ctx.Event()
        self._ready = ctx.Queue()
        self._free = [ctx.Queue() for _ in range(self.workers)]
        self._views = []
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._stop, [self._ready, *self._free])
        try:
            for k in range(self.workers):
                slots = [ctx.RawArray("b", nbytes) for _ in range(int(prefetch))]
                self._views.append([_batch_views(s, self.batch_size, spec.resolution) for s in slots])
                for s in range(int(prefetch)):
                    self._free[k].put(s)
                ct_part = None if ct_shards[k] is None else [ct[int(i)] for i in ct_shards[k]]
                proc = ctx.Process(target=_worker_main, name=f"samples-{k}", daemon=True,
                                   args=(k, [records[int(i)] for i in shards[k]], spec, self.batch_size, seeds[k],
                                         ct_part, cache_bytes, slots, self._free[k], self._ready, self._stop))
                proc.start()
                self._procs.append(proc)
        except BaseException:
            self.close()
            raise
        log.debug(f"sample workers: {self.workers} processes, {int(prefetch)} batches ahead each")

    # -- consuming --

    def next(self) -> Batch:
        """The next batch (waits for one when none is ready)."""
        if self._closed:
            raise RuntimeError("this BatchStream is closed")
        t0 = time.perf_counter()
        batch = self._producer.next_batch() if self._producer is not None else self._receive()
        t1 = time.perf_counter()
        if self._first_at is None:
            self._startup_s = t1 - self._created_at
            self._first_at = t1
        else:
            self._wait_s += t1 - t0
        self._last_at = t1
        self._batches += 1
        return batch

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        return self.next()

    def _receive(self) -> Batch:
        dead: list = []
        while True:
            try:
                msg = self._ready.get(timeout=1.0)
            except queue.Empty:
                if dead:  # still nothing from it after another wait: it died without a word
                    raise RuntimeError(f"sample process {dead[0].name} died (exit code {dead[0].exitcode})") from None
                dead = [p for p in self._procs if not p.is_alive()]  # its last message may be on its way
                continue
            kind, wid = msg[0], msg[1]
            if kind == "batch":
                view = self._views[wid][msg[2]]
                batch = Batch(view.warped.copy(), view.target.copy(), view.mask.copy(), view.em_mask.copy())
                self._free[wid].put(msg[2])
                return batch
            if kind == "user_error":
                raise UserError(msg[2], msg[3])
            raise RuntimeError(f"sample process {wid} failed:\n{msg[2]}")

    # -- statistics --

    @property
    def stats(self) -> dict[str, float]:
        """Batches delivered; start-up (creation to first batch); after that, how long the consumer
        waited inside `next` out of the time elapsed (its own work plus the waits)."""
        elapsed = 0.0 if self._first_at is None else (self._last_at or self._first_at) - self._first_at
        return {"batches": float(self._batches), "startup_s": self._startup_s, "wait_s": self._wait_s,
                "elapsed_s": elapsed, "wait_fraction": self._wait_s / elapsed if elapsed > 0 else 0.0}

    @property
    def wait_fraction(self) -> float:
        """Share of the time since the first batch that the consumer spent waiting for data (0 = never)."""
        return self.stats["wait_fraction"]

    # -- closing --

    @property
    def processes(self) -> list:
        """The worker processes (for tests and diagnostics)."""
        return list(self._procs)

    def close(self) -> None:
        """Stop and reap the worker processes; safe to call twice."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

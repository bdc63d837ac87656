"""The batch transport: augmented batches made ahead by background worker processes.

Exists so that process management is one job, apart from what a sample looks like
(`models.augment`) and from the faceset index (`models.sample_set`): `BatchStream` starts worker
processes that each run a `_Producer` on their share of the faces, and closes them on every path
(the consumer's errors, a killed trainer, signals meant for the trainer).

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
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.workers import exit_when_parent_dies
from models.augment import Batch, SampleSpec, _Producer
from models.sample_set import FaceRecord, check_face_type, load_faceset

DEFAULT_CACHE_MB = 1024  # decoded faces kept per stream (split across its workers)


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

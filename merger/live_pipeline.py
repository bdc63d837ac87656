"""The live swap as overlapping stages, each on its own thread, joined by small bounded queues:

    capture -> faces (detect every k frames, track between; 68 landmarks; smoothing; align) ->
    predict (the model, once per frame over all its faces; or every Nth frame, `predict_every`) ->
    compose (the XSeg masks when the mask mode asks for them, merger.xseg_masks.fill_xseg; then
    merger.compose.compose_frame: the batch merger's own code) -> the caller (show / write)

Stages overlap, so throughput is set by the slowest stage, not by the sum (OpenCV, the model's
runtime and NumPy release the GIL for most of their work). A live source (camera, stream) never
waits: its capture queue holds one frame and a new frame replaces an unread one, so latency stays at
one frame per stage and frames are dropped instead. A file or folder is read as fast as the stages
take it (or at its frame rate with `realtime`), and every frame comes out, in order (each stage is
one thread reading one FIFO queue).

Tracking: a full detection runs every `detect_every` frames; between them each face's landmark box
(placed from its previous landmarks, with the offset measured at its last detection) goes straight
to the landmark model, which is several times cheaper than the detector. A tracked face that jumps,
changes size implausibly or stops looking like itself (it left the frame) is re-detected at once.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import cv2
import numpy as np

from core.errors import UserError
from core.frame_source import FrameSource
from facelib.crop import CropSpec
from facelib.detected_face import DetectedFace
from facelib.face_type import FaceType
from facelib.landmarks import BOX_FITS, IDENTITY, landmarks, landmarks_from_box
from facelib.one_euro import OneEuro, OneEuroParams, face_size
from merger.compose import FacePrediction, Motion, compose_frame, crop_for_model, motion_between
from merger.config import MergeConfig
from merger.xseg_masks import LazyMasker, Masker, XSegNeed, fill_xseg

STAGES = ("capture", "faces", "predict", "compose")
QUEUE_SIZE = 2  # between the later stages: a frame being worked on and one waiting
_END = object()


@dataclass
class LiveFrame:
    """One frame on its way through the stages."""

    index: int  # position in the source (dropped frames leave gaps on a live source)
    frame: np.ndarray  # BGR uint8 as captured
    t_capture: float  # time.perf_counter() when it was read
    landmarks: list[np.ndarray] = field(default_factory=list)  # smoothed, frame pixels, largest face first
    crops: list[np.ndarray] = field(default_factory=list)  # the model's inputs
    motion: Motion = field(default_factory=Motion)
    faces: list[FacePrediction] = field(default_factory=list)
    cfg: MergeConfig | None = None  # the settings it was composed with
    image: np.ndarray | None = None  # the merged frame
    mask: np.ndarray | None = None
    detected: bool = False  # this frame ran the full detector
    ms: dict[str, float] = field(default_factory=dict)  # each stage's time on this frame


class LiveSettings:
    """The merge settings in force, shared by the window (writes) and the stages (read each frame)."""

    def __init__(self, cfg: MergeConfig):
        self._cfg = cfg
        self._lock = threading.Lock()

    def get(self) -> MergeConfig:
        with self._lock:
            return self._cfg

    def set(self, cfg: MergeConfig) -> None:
        with self._lock:
            self._cfg = cfg


class SharedMasker:
    """The XSeg model for the compose stage and the window's keys (two threads): loaded once, the first time
    either asks (merger.xseg_masks.LazyMasker), under a lock."""

    def __init__(self, lazy: LazyMasker):
        self._lazy = lazy
        self._lock = threading.Lock()

    def get(self) -> Masker | None:
        with self._lock:
            return self._lazy.get()

    @property
    def problem(self) -> str | None:
        return self._lazy.problem

    def usable(self, mask_mode: str) -> bool:
        """Whether `mask_mode` can run: not an XSeg mode, or the XSeg model loads."""
        return not XSegNeed.of([mask_mode]) or self.get() is not None


# --- faces: detection, tracking, smoothing ---------------------------------------------------------

@dataclass
class _Track:
    raw: np.ndarray  # the landmark model's last points (unsmoothed: tracking follows the measurement)
    box_offset: tuple[float, float, float]  # landmark-model box vs the points' box: (dx, dy, side) in face sizes
    smoother: OneEuro
    look: np.ndarray  # the face's small aligned grey crop, standardised (see _look)


LOOK_CROP = CropSpec(32, FaceType.FULL)


def _look(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """What the face looks like, cheaply: its 32 px aligned grey crop, zero mean and unit variance. The
    landmark model puts points on anything (a blank wall gets a mean face), so a tracked face is checked
    against its previous look: a face that left the frame no longer correlates."""
    grey = cv2.cvtColor(LOOK_CROP.of(points).warp(frame, cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey -= grey.mean()
    return grey / max(float(grey.std()), 1.0)


def _points_box(points: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, size) of a landmark set."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    c = (lo + hi) / 2.0
    return float(c[0]), float(c[1]), face_size(points)


class FaceTracker:
    """68 landmarks of up to `max_faces` faces per frame: full detection every `detect_every` frames
    (and whenever tracking has lost a face), tracking in between; optionally One-Euro smoothed."""

    MAX_JUMP = 0.5  # a tracked face moving more than this many face sizes in a frame is re-detected
    MAX_SCALE = 1.35  # ... or changing size by more than this factor
    MIN_LOOK = 0.6  # ... or whose look correlates less than this with the previous frame's

    def __init__(self, detector, detect_every: int = 5, max_faces: int = 1, smooth: bool = True,
                 params: OneEuroParams = OneEuroParams()):
        self.detector = detector
        self.detect_every = max(1, int(detect_every))
        self.max_faces = max(1, int(max_faces))
        self.smooth, self.params = smooth, params
        self.tracks: list[_Track] = []
        self._since_detect = 0
        self.detections = 0

    def __call__(self, frame: np.ndarray) -> tuple[list[np.ndarray], bool]:
        """(landmarks per face, largest first; whether the detector ran)."""
        if self.tracks and self._since_detect < self.detect_every - 1:
            tracked = self._track(frame)
            if tracked is not None:
                self._since_detect += 1
                return tracked, False
        return self._detect(frame), True

    def _detect(self, frame: np.ndarray) -> list[np.ndarray]:
        self._since_detect = 0
        self.detections += 1
        found: list[DetectedFace] = self.detector.detect(frame)[: self.max_faces]
        old, self.tracks = self.tracks, []
        out = []
        for face in found:
            points = landmarks(frame, face)
            offset = self._box_offset(frame, face, points) if face.rotation == 0 else None
            smoother = self._continuing(old, points) or OneEuro(self.params)
            if offset is not None:  # a turned frame is not tracked (the landmark model needs it upright)
                self.tracks.append(_Track(points, offset, smoother, _look(frame, points)))
            out.append(smoother(points) if self.smooth else points)
        if len(self.tracks) != len(found):
            self.tracks = []  # detect again next frame rather than track only some faces
        return out

    @staticmethod
    def _box_offset(frame: np.ndarray, face: DetectedFace, points: np.ndarray) -> tuple[float, float, float]:
        """Where the landmark model's box sat relative to the points it gave (fit once per detection)."""
        keypoints = face.keypoints
        rect = BOX_FITS.get(face.detector, IDENTITY).apply(face.rect, keypoints)
        cx, cy, size = _points_box(points)
        return ((rect[0] + rect[2]) / 2.0 - cx) / size, ((rect[1] + rect[3]) / 2.0 - cy) / size, (rect[2] - rect[0]) / size

    def _continuing(self, old: list[_Track], points: np.ndarray) -> OneEuro | None:
        """The smoother of the old track this face continues (nearest, within MAX_JUMP), so a re-detection
        does not restart the smoothing."""
        cx, cy, size = _points_box(points)
        best, best_d = None, self.MAX_JUMP
        for t in old:
            ox, oy, _ = _points_box(t.raw)
            d = float(np.hypot(ox - cx, oy - cy)) / size
            if d < best_d:
                best, best_d = t, d
        if best is None:
            return None
        old.remove(best)
        return best.smoother

    def _track(self, frame: np.ndarray) -> list[np.ndarray] | None:
        """Each track's new landmarks from a box placed on its previous ones; None when one is lost."""
        out = []
        for t in self.tracks:
            cx, cy, size = _points_box(t.raw)
            dx, dy, side = t.box_offset
            x, y, half = cx + dx * size, cy + dy * size, side * size / 2.0
            points = landmarks_from_box(frame, (x - half, y - half, x + half, y + half))
            nx, ny, nsize = _points_box(points)
            if (np.hypot(nx - cx, ny - cy) / size > self.MAX_JUMP
                    or not 1.0 / self.MAX_SCALE < nsize / size < self.MAX_SCALE):
                return None
            look = _look(frame, points)
            if float((look * t.look).mean()) < self.MIN_LOOK:
                return None
            t.raw, t.look = points, look
            out.append(t.smoother(points) if self.smooth else points)
        return out


# --- the pipeline -----------------------------------------------------------------------------------

class PipelineError(RuntimeError):
    """A stage failed; the original exception is the cause."""


class LivePipeline:
    """Runs the stages on threads; `frames()` yields the merged frames in order until the source ends
    or `stop()` is called. `realtime`: read a file or folder at its frame rate (as a player does)."""

    def __init__(self, source: FrameSource, tracker: FaceTracker, predictor, settings: LiveSettings,
                 realtime: bool = False, max_frames: int | None = None, predict_every: int = 1,
                 xseg: SharedMasker | None = None):
        self.source, self.tracker, self.predictor, self.settings = source, tracker, predictor, settings
        self.xseg = xseg  # the XSeg model for the XSeg mask modes (None: those modes are an error)
        # The model runs on every `predict_every`-th frame; the frames between reuse its faces and masks at their
        # own landmarks (the face follows the head at once, its expression is up to predict_every - 1 frames old).
        # Not for models driven by landmarks (Reenact): their output is the expression itself.
        self.predict_every = 1 if getattr(predictor, "needs_landmarks", False) else max(1, int(predict_every))
        self._last_pred: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._since_pred = 0
        self.predictions = 0
        self.realtime = realtime and not source.live
        self.max_frames = max_frames
        self.spec = CropSpec(int(predictor.resolution), FaceType(predictor.face_type))
        self.read = 0  # frames read from the source
        self.dropped = 0  # frames a live source replaced before they were used
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._error_stage = ""
        self._q_capture: queue.Queue = queue.Queue(maxsize=1 if source.live else QUEUE_SIZE)
        self._q_faces: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._q_pred: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._q_out: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._prev_lm: np.ndarray | None = None
        self._threads = [
            threading.Thread(target=self._guard, args=(self._capture,), name="live-capture", daemon=True),
            threading.Thread(target=self._guard, args=(self._stage(self._q_capture, self._q_faces, self._faces),),
                             name="live-faces", daemon=True),
            threading.Thread(target=self._guard, args=(self._stage(self._q_faces, self._q_pred, self._predict),),
                             name="live-predict", daemon=True),
            threading.Thread(target=self._guard, args=(self._stage(self._q_pred, self._q_out, self._compose),),
                             name="live-compose", daemon=True),
        ]

    # -- control --
    def start(self) -> LivePipeline:
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every stage to end and wait for them (a stage in the middle of a frame finishes it)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> list[str]:
        return [t.name for t in self._threads if t.is_alive()]

    def frames(self, poll: Callable[[], None] | None = None) -> Iterator[LiveFrame]:
        """The merged frames, in order. `poll` is called while waiting (the window keeps its events going).
        A stage's failure is raised here: a UserError as it is, anything else as a PipelineError naming the stage."""
        while True:
            try:
                item = self._q_out.get(timeout=0.02)
            except queue.Empty:
                self._raise_failure()
                if self._stop.is_set() and not any(t.is_alive() for t in self._threads):
                    return
                if poll is not None:
                    poll()
                continue
            if item is _END:
                self._raise_failure()
                return
            yield item

    def _raise_failure(self) -> None:
        if self._error is None:
            return
        if isinstance(self._error, UserError):
            raise self._error
        raise PipelineError(f"the {self._error_stage} stage failed: {type(self._error).__name__}: {self._error}") \
            from self._error

    # -- plumbing --
    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer by frames()
            if self._error is None:
                self._error, self._error_stage = e, threading.current_thread().name.removeprefix("live-")
            self._stop.set()
            self._put(self._q_out, _END, force=True)

    def _put(self, q: queue.Queue, item, force: bool = False) -> bool:
        """Put, waiting for room unless the pipeline is stopping; False when it was not put."""
        while not self._stop.is_set() or force:
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if force:
                    try:
                        q.get_nowait()  # make room for the end marker
                    except queue.Empty:
                        pass
        return False

    def _stage(self, q_in: queue.Queue, q_out: queue.Queue, work: Callable[[LiveFrame], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    item = q_in.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END:
                    self._put(q_out, _END)
                    return
                t0 = time.perf_counter()
                work(item)
                item.ms[threading.current_thread().name.removeprefix("live-")] = (time.perf_counter() - t0) * 1000.0
                if not self._put(q_out, item):
                    return
        return run

    # -- the stages --
    def _capture(self) -> None:
        t_start = time.perf_counter()
        while not self._stop.is_set():
            if self.max_frames is not None and self.read >= self.max_frames:
                break
            if self.realtime:
                wait = t_start + self.read / self.source.fps - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t0 = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            item = LiveFrame(self.read, frame, t0)
            item.ms["capture"] = (time.perf_counter() - t0) * 1000.0
            self.read += 1
            if self.source.live:
                try:
                    self._q_capture.put_nowait(item)
                except queue.Full:  # the faces stage is busy: the newer frame replaces the waiting one
                    try:
                        self._q_capture.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
                    self._q_capture.put_nowait(item)
            elif not self._put(self._q_capture, item):
                return
        self._put(self._q_capture, _END)

    def _faces(self, item: LiveFrame) -> None:
        item.landmarks, item.detected = self.tracker(item.frame)
        item.crops = [crop_for_model(item.frame, lm, self.spec.size, self.spec.face_type) for lm in item.landmarks]
        first = item.landmarks[0] if item.landmarks else None
        if first is not None and self._prev_lm is not None:
            item.motion = motion_between(self._prev_lm, first, None)  # causal: no next frame yet
        self._prev_lm = first

    def _predict(self, item: LiveFrame) -> None:
        if not item.crops:
            self._last_pred = None
            return
        last = self._last_pred
        if last is not None and len(last[0]) == len(item.crops) and self._since_pred < self.predict_every - 1:
            self._since_pred += 1
            item.faces = [FacePrediction(lm, last[0][j], last[1][j], last[2][j]) for j, lm in enumerate(item.landmarks)]
            return
        cfg = self.settings.get()
        extra: dict = {}
        if getattr(self.predictor, "has_morph", False):
            extra["morph"] = float(getattr(cfg, "morph_factor", 0.5))
        if getattr(self.predictor, "needs_landmarks", False):
            extra["landmarks"] = np.stack([self.spec.to_face(lm) for lm in item.landmarks]).astype(np.float32)
        pred = self.predictor.predict(np.stack(item.crops), **extra)
        n, R = len(item.crops), self.spec.size
        face = np.asarray(pred.face, np.float32)
        if face.shape != (n, R, R, 3):
            raise ValueError(f"the model returned faces of shape {face.shape}, expected {(n, R, R, 3)}")
        src = np.asarray(pred.src_mask, np.float32).reshape(n, R, R)
        dst = np.asarray(pred.dst_mask, np.float32).reshape(n, R, R)
        item.faces = [FacePrediction(lm, face[j], src[j], dst[j]) for j, lm in enumerate(item.landmarks)]
        self._last_pred, self._since_pred = (face, src, dst), 0
        self.predictions += 1

    def _compose(self, item: LiveFrame) -> None:
        item.cfg = self.settings.get()
        need = XSegNeed.of([item.cfg.mask_mode])
        if need and item.faces:  # the batch merger's XSeg masks: the predicted face's and/or the frame's
            t0 = time.perf_counter()
            fill_xseg(item.faces, [item.frame] * len(item.faces), [None] * len(item.faces),
                      self.xseg.get() if self.xseg is not None else None, need, self.spec)
            item.ms["xseg"] = (time.perf_counter() - t0) * 1000.0
        item.image, item.mask = compose_frame(item.frame, item.faces, item.cfg, self.spec.size, self.spec.face_type,
                                              item.motion)
        item.crops = []


# --- figures ----------------------------------------------------------------------------------------

class LiveStats:
    """Rolling figures over the last `window` frames: output fps, capture-to-output latency, each
    stage's mean ms; and totals for the end-of-run line."""

    def __init__(self, window: int = 30):
        self.times: deque[float] = deque(maxlen=window)
        self.latency: deque[float] = deque(maxlen=window)
        self.stage_ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self.total_ms: dict[str, float] = {s: 0.0 for s in STAGES}
        self.extra_ms: dict[str, list[float]] = {}  # steps inside a stage (xseg, in compose): [total, frames]
        self.total_latency = 0.0
        self.count = 0
        self.t_first: float | None = None
        self.t_last: float | None = None

    def add(self, item: LiveFrame, t_out: float | None = None) -> None:
        t_out = time.perf_counter() if t_out is None else t_out
        self.times.append(t_out)
        lat = (t_out - item.t_capture) * 1000.0
        self.latency.append(lat)
        self.total_latency += lat
        for s in STAGES:
            if s in item.ms:
                self.stage_ms[s].append(item.ms[s])
                self.total_ms[s] += item.ms[s]
        for s, ms in item.ms.items():
            if s not in self.total_ms:
                tally = self.extra_ms.setdefault(s, [0.0, 0])
                tally[0] += ms
                tally[1] += 1
        self.count += 1
        self.t_first = t_out if self.t_first is None else self.t_first
        self.t_last = t_out

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        return float(np.mean(self.latency)) if self.latency else 0.0

    def mean_ms(self, stage: str) -> float:
        d = self.stage_ms[stage]
        return float(np.mean(d)) if d else 0.0

    @property
    def overall_fps(self) -> float:
        if self.count < 2 or self.t_first is None or self.t_last is None or self.t_last <= self.t_first:
            return 0.0
        return (self.count - 1) / (self.t_last - self.t_first)

    def line(self) -> str:
        """The fps line the command prints."""
        stages = " ".join(f"{s} {self.mean_ms(s):.0f}" for s in STAGES)
        return f"{self.fps:.1f} fps, latency {self.latency_ms:.0f} ms (ms per frame: {stages})"

    def summary(self) -> dict:
        n = max(1, self.count)
        return {"frames": self.count, "fps": round(self.overall_fps, 2), "latency_ms": round(self.total_latency / n, 1),
                **{f"{s}_ms": round(self.total_ms[s] / n, 1) for s in STAGES},
                **{f"{s}_ms": round(t / max(1, k), 1) for s, (t, k) in self.extra_ms.items()}}


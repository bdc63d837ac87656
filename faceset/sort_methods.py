"""The orderings of `sort`: how a faceset's faces are ranked, grouped or pruned by their measures.

Each method takes the faces (their metadata and the measures `facelib.image_measures` computed)
and returns (kept, in order; trashed). `Method.features` names the measures it needs. No files are
touched here: reading faces, the trash and the renames are `mainscripts.sorter`'s.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from core.fileio import natural_key
from facelib.pose import estimate_pose
from faceset.meta import FaceMeta

DEFAULT_TARGET_COUNT = 2000
ORIGINAL_NAME_KEY = "original_name"


# --- the faces being sorted ----------------------------------------------------------------------

@dataclass
class Face:
    path: Path
    meta: FaceMeta
    f: dict[str, Any] = field(default_factory=dict)

    @property
    def pose(self) -> tuple[float, float, float]:
        if "pose" not in self.f:
            try:
                self.f["pose"] = estimate_pose(self.meta.landmarks)
            except (ValueError, cv2.error):  # degenerate landmarks: treat as frontal
                self.f["pose"] = (0.0, 0.0, 0.0)
        return self.f["pose"]

    @property
    def rect_area(self) -> float:
        r = self.meta.source_rect
        return 0.0 if r is None else float(max(r[2] - r[0], 0) * max(r[3] - r[1], 0))


LARGEST_TRACK = -1


@dataclass
class Options:
    target_count: int = DEFAULT_TARGET_COUNT
    similar: bool = True
    track: int = LARGEST_TRACK  # `track`: the track id to keep, or LARGEST_TRACK


Result = tuple[list[Face], list[Face]]  # (kept, in order; trashed)


# --- distances ------------------------------------------------------------------------------------

def _greedy_chain(n: int, dist_from: Callable[[int, np.ndarray], np.ndarray], nearest: bool = True) -> list[int]:
    """Start at item 0, then repeatedly take the nearest (or farthest) item not yet taken."""
    if n == 0:
        return []
    order = [0]
    left = np.arange(1, n)
    while left.size:
        d = dist_from(order[-1], left)
        k = int(np.argmin(d) if nearest else np.argmax(d))
        order.append(int(left[k]))
        left = np.delete(left, k)
    return order


def _dissimilarity_scores(hists: np.ndarray, block: int = 1024) -> np.ndarray:
    """Per face, the summed Bhattacharyya distance of its histogram to all others."""
    roots = np.sqrt(hists.astype(np.float64))
    out = np.zeros(len(hists))
    for lo in range(0, len(hists), block):
        bc = roots[lo:lo + block] @ roots.T
        out[lo:lo + block] = np.sqrt(np.clip(1.0 - bc, 0.0, None)).sum(axis=1)
    return out


# --- the methods ----------------------------------------------------------------------------------

def _descending(key: Callable[[Face], float]) -> Callable[[list[Face], Options], Result]:
    def run(faces: list[Face], _opts: Options) -> Result:
        return sorted(faces, key=key, reverse=True), []  # stable: ties keep name order
    return run


def _ascending(key: Callable[[Face], float]) -> Callable[[list[Face], Options], Result]:
    def run(faces: list[Face], _opts: Options) -> Result:
        return sorted(faces, key=key), []
    return run


def _by_hist(faces: list[Face], _opts: Options) -> Result:
    if not faces:
        return [], []
    roots = np.sqrt(np.stack([f.f["hist_bgr"] for f in faces]).astype(np.float64))  # N x 3 x 256

    def dist(i: int, rest: np.ndarray) -> np.ndarray:
        bc = np.einsum("ncb,cb->nc", roots[rest], roots[i])
        return np.sqrt(np.clip(1.0 - bc, 0.0, None)).sum(axis=1)
    return [faces[i] for i in _greedy_chain(len(faces), dist)], []


def _by_hist_dissim(faces: list[Face], _opts: Options) -> Result:
    if not faces:
        return [], []
    scores = _dissimilarity_scores(np.stack([f.f["hist_grey_hull"] for f in faces]))
    order = sorted(range(len(faces)), key=lambda i: -scores[i])
    return [faces[i] for i in order], []


def _by_absdiff(faces: list[Face], opts: Options) -> Result:
    if not faces:
        return [], []
    small = np.stack([f.f["small"] for f in faces])

    def dist(i: int, rest: np.ndarray) -> np.ndarray:
        return np.abs(small[rest] - small[i]).sum(axis=1)
    return [faces[i] for i in _greedy_chain(len(faces), dist, nearest=opts.similar)], []


def _origname_key(face: Face) -> tuple:
    src = face.meta.source_filename
    return (0, natural_key(Path(src)), natural_key(face.path)) if src else (1, [], natural_key(face.path))


def _frame_index(face: Face) -> tuple[str, int | None]:
    """(source frame, face index in that frame) from the metadata, else from a `<stem>_<n>` name."""
    name = Path(str(face.meta.extra.get(ORIGINAL_NAME_KEY) or face.path.name)).stem
    stem, _, idx = name.rpartition("_")
    index = int(idx) if stem and idx.isdigit() else None
    frame = face.meta.source_filename or (stem if index is not None else name)
    return frame, index


def _by_oneface(faces: list[Face], _opts: Options) -> Result:
    """Trash every face from a frame that gave more than one face (a face with index > 0 counts too,
    so a frame whose face 0 was already deleted by hand is still caught)."""
    frames = [_frame_index(f) for f in faces]
    counts = Counter(frame for frame, _ in frames)
    multi = {frame for frame, idx in frames if counts[frame] > 1 or (idx or 0) > 0}
    kept = [f for f, (frame, _) in zip(faces, frames) if frame not in multi]
    trash = [f for f, (frame, _) in zip(faces, frames) if frame in multi]
    return kept, trash


def track_ids(faces: list[Face]) -> list[int | None]:
    """Each face's track id: from the metadata when every face has one (our extractor on a video's
    frames), else rebuilt from the source filenames and rectangles (DFL's facesets, photos)."""
    ids = [f.meta.track_id for f in faces]
    if all(i is not None for i in ids):
        return ids
    from facelib.tracks import tracks_from_sources
    looks = [f.f["hist_bgr"] for f in faces] if all("hist_bgr" in f.f for f in faces) else None
    return tracks_from_sources([(f.meta.source_filename, f.meta.source_rect) for f in faces], looks)


def _by_track(faces: list[Face], opts: Options) -> Result:
    """Keep one track (`opts.track`, or the one with most faces), in frame order; trash the rest."""
    ids = track_ids(faces)
    counts = Counter(i for i in ids if i is not None)
    if not counts:
        return [], list(faces)
    keep = counts.most_common(1)[0][0] if opts.track == LARGEST_TRACK else opts.track
    kept = sorted((f for f, i in zip(faces, ids) if i == keep), key=_origname_key)
    return kept, [f for f, i in zip(faces, ids) if i != keep]


YAW_BINS = 128
YAW_RANGE = 1.2  # radians either side of frontal
PITCH_BINS = 3
KEEP_FACTOR = 10  # inside a yaw bin, keep this many times its quota of the best faces before picking


def water_fill(counts: list[int], total: int) -> list[int]:
    """Split `total` over bins holding `counts` items as evenly as possible: a bin with fewer items
    than its share gives all it has and the shortfall goes to the others. When the split is uneven,
    the odd units go to bins spread evenly along the list (for yaw bins: across the yaw range)."""
    total = min(total, sum(counts))
    if total <= 0:
        return [0] * len(counts)
    level = 0
    hi = max(counts)
    while level < hi:  # the largest level with sum(min(c, level)) <= total, by bisection
        mid = (level + hi + 1) // 2
        if sum(min(c, mid) for c in counts) <= total:
            level = mid
        else:
            hi = mid - 1
    quota = [min(c, level) for c in counts]
    left = total - sum(quota)
    room = [i for i, c in enumerate(counts) if c > level]
    if left:
        picks = np.unique(np.round(np.linspace(0, len(room) - 1, left)).astype(int))
        for k in picks:
            quota[room[k]] += 1
    return quota


def _best_faces(rank: Callable[[Face], float]) -> Callable[[list[Face], Options], Result]:
    def run(faces: list[Face], opts: Options) -> Result:
        target = max(0, int(opts.target_count))
        bins: list[list[Face]] = [[] for _ in range(YAW_BINS)]
        for f in faces:
            y = min(max(f.pose[1], -YAW_RANGE), YAW_RANGE)
            bins[min(int((y + YAW_RANGE) / (2 * YAW_RANGE) * YAW_BINS), YAW_BINS - 1)].append(f)
        quotas = water_fill([len(b) for b in bins], min(target, len(faces)))
        kept: list[Face] = []
        for members, quota in zip(bins, quotas):
            if quota <= 0:
                continue
            # DFL keeps 10x the quota of the best-ranked faces; we also never keep more than the better
            # half of a bin (but at least its quota), so in small bins the ranking still decides
            pool = min(quota * KEEP_FACTOR, max(quota, len(members) // 2))
            best = sorted(members, key=rank, reverse=True)[:pool]
            kept += _pick_across_pitch(best, quota)
        chosen = {id(f) for f in kept}
        return kept, [f for f in faces if id(f) not in chosen]
    return run


def _pick_across_pitch(faces: list[Face], quota: int) -> list[Face]:
    """Split by pitch, rank each part by how different its faces look (histogram dissimilarity),
    then take faces round-robin over the parts so every head tilt is represented."""
    if len(faces) <= quota:
        return faces
    pitches = np.array([f.pose[0] for f in faces])
    lo, hi = float(pitches.min()), float(pitches.max())
    n_bins = PITCH_BINS if hi > lo else 1
    parts: list[list[Face]] = [[] for _ in range(n_bins)]
    for f, p in zip(faces, pitches):
        parts[min(int((p - lo) / (hi - lo) * n_bins), n_bins - 1) if hi > lo else 0].append(f)
    queues = []
    for part in parts:
        if not part:
            continue
        scores = _dissimilarity_scores(np.stack([f.f["hist_grey_hull"] for f in part]))
        queues.append([part[i] for i in np.argsort(-scores, kind="stable")])
    picked: list[Face] = []
    while len(picked) < quota:
        for q in queues:
            if q and len(picked) < quota:
                picked.append(q.pop(0))
    return picked


@dataclass(frozen=True)
class Method:
    key: str
    title: str
    features: tuple[str, ...]
    run: Callable[[list[Face], Options], Result]


METHODS: tuple[Method, ...] = (
    Method("blur", "blur (sharpest first)", ("sharpness",), _descending(lambda f: f.f["sharpness"])),
    Method("motion-blur", "motion blur (Laplacian variance, sharpest first)", ("laplacian_var",),
           _descending(lambda f: f.f["laplacian_var"])),
    Method("face-yaw", "face yaw direction", (), _descending(lambda f: f.pose[1])),
    Method("face-pitch", "face pitch direction", (), _descending(lambda f: f.pose[0])),
    Method("face-source-rect-size", "face rect size in source image (largest first)", (), _descending(lambda f: f.rect_area)),
    Method("hist", "histogram similarity", ("hist_bgr",), _by_hist),
    Method("hist-dissim", "histogram dissimilarity", ("hist_grey_hull",), _by_hist_dissim),
    Method("brightness", "brightness", ("hsv_mean",), _descending(lambda f: f.f["hsv_mean"][2])),
    Method("hue", "hue", ("hsv_mean",), _descending(lambda f: f.f["hsv_mean"][0])),
    Method("black", "amount of black pixels (fewest first)", ("black",), _ascending(lambda f: f.f["black"])),
    Method("origname", "original filename", (), lambda faces, _o: (sorted(faces, key=_origname_key), [])),
    Method("oneface", "one face in image (trash frames with several faces)", (), _by_oneface),
    Method("absdiff", "absolute pixel difference", ("small",), _by_absdiff),
    Method("best-faces", "best faces (yaw spread, sharpness, variety)", ("sharpness", "hist_grey_hull"),
           _best_faces(lambda f: f.f["sharpness"])),
    Method("best-faces-faster", "best faces faster (source rect size instead of sharpness)", ("hist_grey_hull",),
           _best_faces(lambda f: f.rect_area)),
    Method("track", "face track (keep one track of a video, the largest by default)", ("hist_bgr",), _by_track),
)
BY_KEY = {m.key: m for m in METHODS}

"""`sort`: reorder an aligned faceset by a quality or similarity measure, or prune it.

Every method ends the same way (DFL's rhythm): faces that fail a check, and files that are not
aligned faces at all, move to `<dir>_trash` (never deleted); the rest are renamed 00000.jpg,
00001.jpg, ... in the sorted order through a journal (core.rename_journal), so an interrupted sort
is finished by the next command instead of leaving half-renamed files. Each face's first name is kept
in its metadata (`extra["original_name"]`) and `util --recover-original-aligned-filename` restores it.

Per-image measures (sharpness, histograms, colour means) are computed in a worker pool when the
faceset is large; measures from landmarks alone (pose, source rect) are computed here.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from core import interact, log
from core.errors import UserError
from core.fileio import IMAGE_EXTENSIONS, natural_key, remove_stale_partials, require_dir
from core.rename_journal import Move, finish_interrupted, move_files
from core.settings import Option, resolve
from core.workers import default_worker_count, run_pool
from facelib.masks import hull_mask
from facelib.pose import estimate_pose
from faceset.face_file import FaceMeta, load_aligned_face, read_face_meta, update_face_meta
from faceset.faceset import Faceset

POOL_THRESHOLD = 64  # below this many faces, starting worker processes costs more than it saves
DEFAULT_TARGET_COUNT = 2000
ORIGINAL_NAME_KEY = "original_name"


# --- per-image features (computed in workers) --------------------------------------------------

def sharpness(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Edge-width sharpness in the spirit of CPBD (Narvekar & Karam 2011): the share of edges too
    narrow for blur to be noticed. 0 = all edges blurred, 1 = all sharp.

    For each Canny edge pixel whose gradient is mostly horizontal, the edge width is the run of
    strictly monotonic pixels through it along the row; the "just noticeable blur" width is 5 px for
    low-contrast edges and 3 px otherwise, and an edge counts as sharp while its probability of
    noticeable blur 1 - exp(-(w / w_jnb)^3.6) stays under 63%.
    """
    g = grey.astype(np.float32)
    edges = cv2.Canny(grey, 50, 150) > 0
    if mask is not None:
        edges &= cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    rows, cols = np.nonzero(edges & (np.abs(gx) >= np.abs(gy)) & (gx != 0))
    if rows.size == 0:
        return 0.0
    sign = np.sign(gx[rows, cols])
    w = g.shape[1]
    right = cols.copy()
    left = cols.copy()
    for step, ends in ((1, right), (-1, left)):
        active = np.ones(rows.size, bool)
        for _ in range(32):
            nxt = ends + step
            ok = active & (nxt >= 0) & (nxt < w)
            idx = np.nonzero(ok)[0]
            diff = (g[rows[idx], nxt[idx]] - g[rows[idx], ends[idx]]) * step * sign[idx]
            moving = idx[diff > 0]
            ends[moving] += step
            active[:] = False
            active[moving] = True
            if not moving.size:
                break
    width = (right - left).astype(np.float32)
    contrast = np.abs(g[rows, right] - g[rows, left])
    w_jnb = np.where(contrast <= 50, 5.0, 3.0)
    p_blur = 1.0 - np.exp(-np.power(width / w_jnb, 3.6))
    return float(np.mean(p_blur <= 0.63))


def _normalised_hist(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    h = cv2.calcHist([img], [0], mask, [256], [0, 256]).reshape(-1).astype(np.float64)
    total = h.sum()
    return (h / total if total > 0 else np.full(256, 1.0 / 256)).astype(np.float32)


def compute_features(image: np.ndarray, meta: FaceMeta, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The measures `wanted` of one face image, inside the landmark hull where the background would
    only add noise: sharpness, laplacian_var, hist_grey_hull; over the whole image: hist_bgr,
    hsv_mean, black (pixel count), small (16x16 thumbnail for absdiff: DFL compares full images on
    the GPU; on the CPU a thumbnail keeps an N x N comparison affordable)."""
    out: dict[str, Any] = {}
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mask = (hull_mask(image.shape[:2], meta.landmarks, meta.eyebrows_expand_mod) > 0.5).astype(np.uint8)
    if "sharpness" in wanted:
        out["sharpness"] = sharpness(grey, mask)
    if "laplacian_var" in wanted:
        lap = cv2.Laplacian(grey, cv2.CV_64F, ksize=11)
        out["laplacian_var"] = float(lap[mask > 0].var()) if mask.any() else float(lap.var())
    if "hist_bgr" in wanted:
        out["hist_bgr"] = np.stack([_normalised_hist(image[:, :, c], None) for c in range(3)])
    if "hist_grey_hull" in wanted:
        out["hist_grey_hull"] = _normalised_hist(grey, mask)
    if "hsv_mean" in wanted:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        out["hsv_mean"] = hsv.reshape(-1, 3).mean(axis=0).astype(np.float64)
    if "black" in wanted:
        out["black"] = int(np.count_nonzero(image.max(axis=2) <= 2))  # JPEG leaves 1-2 in flat black
    if "small" in wanted:
        out["small"] = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
    return out


def _measure(wanted: tuple[str, ...], path: str) -> dict[str, Any]:
    image, meta = load_aligned_face(path)
    return compute_features(image, meta, wanted)


def _make_measurer(wanted: tuple[str, ...]) -> Callable[[str], dict[str, Any]]:
    cv2.setNumThreads(1)  # the pool is the parallelism
    return functools.partial(_measure, wanted)


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


@dataclass
class Options:
    target_count: int = DEFAULT_TARGET_COUNT
    similar: bool = True


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
)
BY_KEY = {m.key: m for m in METHODS}
ALIASES = {"final": "best-faces", "final-by-blur": "best-faces", "final-fast": "best-faces-faster",
           "final-by-size": "best-faces-faster"}
CHOICES = tuple(BY_KEY) + tuple(ALIASES)
DEFAULT_METHOD = "hist"
METHOD_OPTION = Option(
    "by", DEFAULT_METHOD, "Sort method: " + "; ".join(f"{m.key}: {m.title}" for m in METHODS) + ". final-by-blur/"
    "final-by-size are DFL's names for best-faces/best-faces-faster.", "Sort method", choices=tuple(BY_KEY),
    argparse_choices=True,
    normalize=lambda name: ALIASES.get(name.strip().lower(), name.strip().lower()),
    menu=tuple((m.key, m.title) for m in METHODS))
# The methods' own settings: a flag each, asked on a terminal when the method needs them and the flag is missing.
TARGET_COUNT_OPTION = Option(
    "target_count", DEFAULT_TARGET_COUNT, "best-faces: number of faces to keep", "Target number of faces", "int",
    valid_range=(1, 1_000_000))
SIMILAR_OPTION = Option(
    "similar", True, "absdiff: similar faces next to each other (default)", "Sort by similar?", "bool", switch=True,
    negative="--dissimilar", negative_help="absdiff: most different faces first")
METHOD_SETTINGS = (TARGET_COUNT_OPTION, SIMILAR_OPTION)


def resolve_method(name: str | None) -> Method:
    """The method for a CLI name (DFL's final-by-* names included); the menu when none is given."""
    if name is None:
        if not interact.is_interactive():
            log.info(f"no --by given: sorting by {DEFAULT_METHOD} (default; stdin is not a terminal)")
            return BY_KEY[DEFAULT_METHOD]
        return BY_KEY[METHOD_OPTION.ask(DEFAULT_METHOD)]
    try:
        return BY_KEY[METHOD_OPTION.parse(name)]
    except ValueError:
        raise UserError(f"unknown sort method '{name}' (choose from {', '.join(CHOICES)})") from None


# --- orchestration --------------------------------------------------------------------------------

@dataclass
class SortSummary:
    method: str
    kept: list[Path]  # final paths, in order
    trashed: list[Path]  # final paths in the trash folder


def trash_dir_of(folder: Path) -> Path:
    return folder.parent / f"{folder.name}_trash"


def _unique_in(folder: Path, name: str, taken: set[str]) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 1
    while candidate in taken or (folder / candidate).exists():
        candidate = f"{stem}_{n}{suffix}"
        n += 1
    taken.add(candidate)
    return folder / candidate


def load_faces(files: list[Path], wanted: tuple[str, ...], workers: int | None,
               debug: bool = False) -> tuple[list[Face], list[tuple[Path, str]]]:
    """Read every file's metadata and compute the `wanted` measures; returns (faces, rejects with reasons)."""
    faces: list[Face] = []
    rejects: list[tuple[Path, str]] = []
    for p in files:
        try:
            meta = read_face_meta(p)
        except UserError as e:
            rejects.append((p, e.problem))
            continue
        if meta is None:
            rejects.append((p, "no face metadata (not an aligned face)"))
        elif meta.landmarks.shape != (68, 2):
            rejects.append((p, f"{meta.landmarks.shape[0]} landmarks, sorting needs 68"))
        else:
            faces.append(Face(p, meta))
    if not wanted or not faces:
        return faces, rejects
    if workers is None:
        workers = default_worker_count() if len(faces) >= POOL_THRESHOLD else 0
    good: list[Face] = []
    for face, res in zip(faces, run_pool(functools.partial(_make_measurer, wanted), [str(f.path) for f in faces],
                                         workers=workers, name_of=lambda s: Path(s).name, desc="Measuring",
                                         unit="faces", debug=debug)):
        if res.ok:
            face.f.update(res.value)
            good.append(face)
        else:
            rejects.append((face.path, res.error or "failed"))
    return good, rejects


def _setting(option: Option, given: dict[str, Any]) -> Any:
    """One method setting: its flag's value (a bad one names the flag), else the prompt or the default."""
    return resolve((option,), None, {k: v for k, v in given.items() if k == option.key}, ask_overrides=False)[option.key]


def sort_faceset(input_dir: str | Path, by: str | None = None, *, target_count: int | None = None,
                 similar: bool | None = None, workers: int | None = None, debug: bool = False) -> SortSummary:
    """Sort the aligned faces in `input_dir` by `by` (asked when None), trash rejects, rename in order."""
    folder = require_dir(input_dir, "aligned faces folder").resolve()
    finish_interrupted(folder)
    remove_stale_partials(folder, target_suffixes=IMAGE_EXTENSIONS)  # faces of a killed metadata write
    method = resolve_method(by)
    opts = Options()
    given = {k: v for k, v in (("target_count", target_count), ("similar", similar)) if v is not None}
    if method.key.startswith("best-faces"):
        opts.target_count = _setting(TARGET_COUNT_OPTION, given)
    if method.key == "absdiff":
        opts.similar = _setting(SIMILAR_OPTION, given)
    faceset = Faceset.open(folder)
    faceset.require_folder("sort")  # it renames the faces and writes their original names
    files = [face.path for face in faceset]
    if not files:
        raise UserError("no images in this folder", folder)
    log.info(f"Sorting {len(files)} files by {method.title}")
    faces, rejects = load_faces(files, method.features, workers, debug)
    for p, why in rejects:
        log.warning(f"{p.name}: {why}; moving it to the trash")
    kept, trashed = method.run(faces, opts)
    if len(kept) + len(trashed) != len(faces):
        raise RuntimeError(f"sort method {method.key} lost faces")
    _remember_names(kept + trashed)
    return _apply(folder, method.key, kept, [f.path for f in trashed] + [p for p, _ in rejects])


def _remember_names(faces: list[Face]) -> None:
    """Write each face's current name into its metadata the first time it is sorted."""
    for f in faces:
        if ORIGINAL_NAME_KEY not in f.meta.extra:
            f.meta.extra[ORIGINAL_NAME_KEY] = f.path.name
            update_face_meta(f.path, f.meta)


def _apply(folder: Path, method: str, kept: list[Face], trash: list[Path]) -> SortSummary:
    trash_dir = trash_dir_of(folder)
    moves: list[Move] = []
    trashed: list[Path] = []
    if trash:
        trash_dir.mkdir(exist_ok=True)
        taken: set[str] = set()
        for p in trash:
            dst = _unique_in(trash_dir, p.name, taken)
            moves.append(Move(p, dst))
            trashed.append(dst)
    digits = max(5, len(str(max(len(kept) - 1, 0))))
    final = [folder / f"{i:0{digits}d}{f.path.suffix.lower()}" for i, f in enumerate(kept)]
    moves += [Move(f.path, dst) for f, dst in zip(kept, final)]
    move_files(folder, moves, what=f"sort by {method}")
    log.info(f"Sorted {len(kept)} faces" + (f"; {len(trashed)} moved to {trash_dir}" if trashed else ""))
    return SortSummary(method, final, trashed)


def menu_help() -> str:
    """The methods as the --help text lists them."""
    return "; ".join(f"{title_key}: {title}" for title_key, title in METHOD_OPTION.menu)


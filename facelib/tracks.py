"""Face tracks: the same face followed through a video's frames (`extract` on a video's frames, `sort --by track`).

Why: a detector looks at every frame on its own, so it misses a face for a frame or two now and
then (motion blur, a hand), fires once on a pattern that is no face, and cannot say which of two
people a face belongs to. Linking faces across frames fixes all three: a face that joins no track
is dropped, a short gap inside a track is filled by following the face from the frame before,
and a whole track is kept or dropped at once (`--reference-face`, `sort --by track`).

When is a folder a video's frames? When every file name is a number with one shared prefix
(`00001.png`, `frame_12.jpg`, DFL's and ffmpeg's naming), and most neighbouring frames look alike
(`looks_like_video`: a folder of photos renamed 00001.jpg ... is numbered too). The numbers give the
time order (so `9.png` comes before `10.png` whatever the name order) and gaps in the numbering are
frames that are missing (a track may bridge up to MAX_GAP of them, never more).

Linking (frame by frame, in time order): each track predicts where its face is (last centre plus
last velocity, in frame numbers) and a face continues it when it lies within MAX_JUMP face sizes of
the prediction, has a similar size and, when identity embeddings are known, the same identity;
matching is one-to-one (Hungarian), so two faces never swap tracks while their paths differ. A
scene cut (the frames' colour histograms jump, `find_cuts`) ends every track: a track never continues
into another shot, where the face at the same place is somebody else.

Gap filling (`fill_gaps`): for frames a track skips (detector misses, at most MAX_GAP), the face is
followed from the last frame where it was found with pyramidal Lucas-Kanade (KLT) optical flow on
corner points inside the face, a similarity transform is fitted to the points that track well both
ways, the previous box is moved by it, and the landmark model runs on the moved box.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from facelib.detected_face import DetectedFace

MIN_VIDEO_FRAMES = 3  # fewer numbered files than this are photos, not a video
MAX_GAP = 5  # frames a track may skip (missed detections or missing files) and still continue
MAX_JUMP = 1.0  # face sizes between the predicted and the found centre (per frame; grows with the gap)
MAX_SIZE_RATIO = 1.6
MIN_TRACK = 2  # faces: a face that joins no other frame's face is not kept (video input)
CUT_DISTANCE = 0.2  # Bhattacharyya distance between consecutive frames' histograms: at least this for a cut,
CUT_RATIO = 2.5  # and this many times the typical (median) distance of the frames before it
CUT_WINDOW = 10  # frames whose distances make the typical distance
VIDEO_SHARE = 0.7  # numbered frames are a video when this share of neighbours look alike (no cut between)
IDENTITY_LIMIT = 0.6  # embedding distance above which two faces are never the same track (dlib's)

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


# --- the frames -----------------------------------------------------------------------------

def frame_numbers(paths: Sequence[Path]) -> list[int] | None:
    """The frame number of each path when the paths are a video's frames (see module docstring),
    else None. Numbers must be distinct; their order need not be the paths' order."""
    if len(paths) < MIN_VIDEO_FRAMES:
        return None
    prefixes, numbers = set(), []
    for p in paths:
        m = _NUMBERED.match(Path(p).stem)
        if m is None:
            return None
        prefixes.add(m.group(1))
        numbers.append(int(m.group(2)))
    if len(prefixes) != 1 or len(set(numbers)) != len(numbers):
        return None
    return numbers


def frame_signature(image_bgr: np.ndarray) -> np.ndarray:
    """A frame's colour histogram (HSV hue x saturation, 16x8, plus 32 values), normalised: what
    `find_cuts` compares. Small and cheap (computed on a 64 px thumbnail)."""
    small = cv2.resize(image_bgr if image_bgr.ndim == 3 else cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR),
                       (64, 48), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [32], [0, 256]).ravel()
    sig = np.concatenate([hs / max(hs.sum(), 1.0), v / max(v.sum(), 1.0)]).astype(np.float32)
    return sig / 2.0


def looks_like_video(signatures: Sequence[np.ndarray | None]) -> bool:
    """Whether numbered frames really are a video: at least VIDEO_SHARE of neighbouring frames have
    alike histograms (a folder of photos renamed 00001.jpg ... is numbered too, but every photo
    differs from the next, and there a face in one photo only is no false face)."""
    pairs = [(a, b) for a, b in zip(signatures, signatures[1:]) if a is not None and b is not None]
    if not pairs:
        return False
    alike = sum(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA) <= CUT_DISTANCE for a, b in pairs)
    return alike >= VIDEO_SHARE * len(pairs)


def find_cuts(signatures: Sequence[np.ndarray | None]) -> list[bool]:
    """For frames in time order, whether each starts a new shot: its histogram distance to the frame
    before is over CUT_DISTANCE and CUT_RATIO times the median of the CUT_WINDOW distances before
    (a fast pan changes the histogram a little every frame, a cut a lot at once)."""
    dist = [0.0]
    for a, b in zip(signatures, signatures[1:]):
        dist.append(0.0 if a is None or b is None else float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA)))
    out = [False]
    for t in range(1, len(dist)):
        before = dist[max(1, t - CUT_WINDOW):t]
        typical = float(np.median(before)) if before else 0.0
        out.append(dist[t] > CUT_DISTANCE and dist[t] > CUT_RATIO * typical)
    return out


# --- linking --------------------------------------------------------------------------------

@dataclass
class TrackFace:
    """One face of a track: where (index in time order), the face, and how it got there."""

    frame: int
    face: DetectedFace
    embedding: np.ndarray | None = None
    filled: bool = False  # followed by optical flow, not found by the detector


@dataclass
class Track:
    id: int
    faces: list[TrackFace] = field(default_factory=list)
    known: int | None = None  # the track id its already written faces carry (a resumed or manual pass)

    @property
    def last(self) -> TrackFace:
        return self.faces[-1]


def centre_size(face: DetectedFace) -> tuple[np.ndarray, float]:
    """Centre and size (geometric mean of the sides) of a face's landmark box, else of its rect."""
    if face.landmarks is not None:
        lo, hi = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
    else:
        lo, hi = np.array(face.rect[:2], float), np.array(face.rect[2:], float)
    w, h = np.maximum(hi - lo, 1e-6)
    return (lo + hi) / 2.0, float(np.sqrt(w * h))


def link(numbers: Sequence[int], faces: Sequence[Sequence[DetectedFace]],
         cuts: Sequence[bool] | None = None,
         embeddings: Sequence[Sequence[np.ndarray | None]] | None = None,
         known: Sequence[Sequence[int | None]] | None = None) -> list[Track]:
    """Tracks over frames given IN TIME ORDER: `numbers[t]` frame numbers (increasing), `faces[t]`
    the faces found there, `cuts[t]` whether frame t starts a new shot, `embeddings[t][j]` face j's
    identity descriptor or None, `known[t][j]` the track id face j already has (a face written by an
    earlier run) or None. Every face is in exactly one track; ids count from 0 in order of appearance.

    A face with a known id joins the active track of that id; when there is none it may take over an
    active track of new faces that it continues (the track then has that id: `Track.known`), else it
    starts one. New faces continue any active track, known or not."""
    from scipy.optimize import linear_sum_assignment

    tracks: list[Track] = []
    active: list[Track] = []
    for t, frame_faces in enumerate(faces):
        if cuts is not None and cuts[t]:
            active = []
        active = [tr for tr in active if numbers[t] - numbers[tr.last.frame] <= MAX_GAP + 1]
        embs = list(embeddings[t]) if embeddings is not None else [None] * len(frame_faces)
        ids = list(known[t]) if known is not None else [None] * len(frame_faces)
        matched: dict[int, Track] = {}
        for j, k in enumerate(ids):  # known faces first: their track is decided by their id
            track = next((tr for tr in active if k is not None and tr.known == k and tr not in matched.values()), None)
            if track is not None:
                matched[j] = track
        free = [tr for tr in active if tr not in matched.values()]
        open_faces = [j for j in range(len(frame_faces)) if j not in matched]
        if free and open_faces:
            cost = np.full((len(free), len(open_faces)), np.inf)
            for a, track in enumerate(free):
                for b, j in enumerate(open_faces):
                    if ids[j] is None or track.known is None:  # a known face never joins another id's track
                        cost[a, b] = _link_cost(track, numbers, numbers[t], frame_faces[j], embs[j])
            finite = np.where(np.isfinite(cost), cost, 1e6)
            for a, b in zip(*linear_sum_assignment(finite)):
                if np.isfinite(cost[a, b]):
                    matched[open_faces[b]] = free[a]
        next_active = [tr for tr in active if tr not in matched.values()]
        for j, face in enumerate(frame_faces):
            track = matched.get(j)
            if track is None:
                track = Track(len(tracks))
                tracks.append(track)
            if ids[j] is not None:
                track.known = ids[j]
            track.faces.append(TrackFace(t, face, embs[j]))
            next_active.append(track)
        active = next_active
    return tracks


def continue_ids(numbers: Sequence[int], faces: Sequence[Sequence[DetectedFace]],
                 known: Sequence[Sequence[int | None]], first_id: int,
                 cuts: Sequence[bool] | None = None) -> list[list[int]]:
    """A track id for every face (frames IN TIME ORDER): a known id stays; a new face takes the id of
    the track it continues, forward or backward in time (a face placed by hand between, before or after
    a track's written faces), else a new id from `first_id` on, in order of appearance. For faces that
    are all kept (placed by hand): nothing is dropped or filled."""
    forward = link(numbers, faces, cuts, known=known)
    back_cuts = None if cuts is None else [False, *reversed(list(cuts)[1:])]  # a cut before t is one after t backward
    backward = link([-n for n in reversed(numbers)], list(reversed(faces)), back_cuts,
                    known=list(reversed(known)))
    last = len(faces) - 1
    back_id = {(last - f.frame, _index_of(faces[last - f.frame], f.face)): tr.known
               for tr in backward for f in tr.faces}
    out = [[-1] * len(f) for f in faces]
    fresh = first_id
    for track in sorted(forward, key=lambda tr: tr.faces[0].frame):
        track_id = track.known
        if track_id is None:  # no written face ahead of it: maybe one after it
            votes = [back_id[(f.frame, _index_of(faces[f.frame], f.face))] for f in track.faces]
            track_id = next((v for v in votes if v is not None), None)
        if track_id is None:
            track_id, fresh = fresh, fresh + 1
        for f in track.faces:
            out[f.frame][_index_of(faces[f.frame], f.face)] = track_id
    for t, ids in enumerate(out):  # two faces of one frame never share an id
        seen: set[int] = set()
        for j, k in enumerate(ids):
            if k in seen:
                ids[j], fresh = fresh, fresh + 1
            seen.add(ids[j])
    return out


def _link_cost(track: Track, numbers: Sequence[int], number: int, face: DetectedFace,
               embedding: np.ndarray | None) -> float:
    """How well a face continues a track (lower is better); inf when it cannot."""
    last = track.last
    c_last, size = centre_size(last.face)
    dt = number - numbers[last.frame]
    velocity = np.zeros(2)
    if len(track.faces) >= 2:
        prev = track.faces[-2]
        c_prev, _ = centre_size(prev.face)
        velocity = (c_last - c_prev) / max(numbers[last.frame] - numbers[prev.frame], 1)
    c, s = centre_size(face)
    jump = float(np.linalg.norm(c - (c_last + velocity * dt))) / size
    ratio = s / size
    if jump > MAX_JUMP * np.sqrt(dt) or not 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
        return np.inf
    cost = jump + abs(np.log(ratio))
    ref = next((f.embedding for f in reversed(track.faces) if f.embedding is not None), None)
    if ref is not None and embedding is not None:
        d = float(np.linalg.norm(ref - embedding))
        if d > IDENTITY_LIMIT:
            return np.inf
        cost += d
    return cost


# --- gap filling ----------------------------------------------------------------------------

def gaps(track: Track, numbers: Sequence[int]) -> list[tuple[int, int]]:
    """(from index, to index) in time order of each pair of consecutive faces with frames between."""
    out = []
    for a, b in zip(track.faces, track.faces[1:]):
        if b.frame - a.frame > 1:
            out.append((a.frame, b.frame))
    return out


def follow(prev_image: np.ndarray, image: np.ndarray, face: DetectedFace) -> DetectedFace | None:
    """The face of `prev_image` moved into `image` by KLT optical flow (box, keypoints and landmarks
    moved by one similarity transform); None when too few points track reliably."""
    g0, g1 = _grey(prev_image), _grey(image)
    l, t, r, b = (int(round(v)) for v in face.rect)
    mask = np.zeros(g0.shape, np.uint8)
    mask[max(t, 0):max(b, 0), max(l, 0):max(r, 0)] = 255
    p0 = cv2.goodFeaturesToTrack(g0, maxCorners=80, qualityLevel=0.01, minDistance=4, mask=mask)
    if p0 is None or len(p0) < 6:
        return None
    p0 = p0.astype(np.float32)
    p1, ok1, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, winSize=(21, 21), maxLevel=3)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, winSize=(21, 21), maxLevel=3)
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 1.0)
    if good.sum() < 6:
        return None
    mat, _inliers = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=2.0)
    if mat is None:
        return None
    corners = np.array([[face.rect[0], face.rect[1]], [face.rect[2], face.rect[1]],
                        [face.rect[2], face.rect[3]], [face.rect[0], face.rect[3]]])
    moved = corners @ mat[:, :2].T + mat[:, 2]
    rect = (*moved.min(axis=0), *moved.max(axis=0))
    move = lambda pts: None if pts is None else np.asarray(pts) @ mat[:, :2].T + mat[:, 2]  # noqa: E731
    return DetectedFace(rect=tuple(float(v) for v in rect), landmarks=move(face.landmarks), score=0.0,
                        detector=face.detector, rotation=face.rotation, keypoints=move(face.keypoints))


def fill_gaps(tracks: Sequence[Track], numbers: Sequence[int], read: Callable[[int], np.ndarray | None],
              refit: Callable[[np.ndarray, DetectedFace], np.ndarray],
              accept: Callable[[np.ndarray, np.ndarray], bool] | None = None) -> int:
    """Fill every gap of every track (frames between two of its faces) by following the face forward
    from the frame before; `read(t)` loads frame t (None if unreadable), `refit(image, face)` gives
    68 landmarks for a moved face, `accept(image, landmarks)` may refuse a fit (an occluded face).
    A gap stops filling at the first frame where following fails. Returns the faces added."""
    added = 0
    for track in tracks:
        new: list[TrackFace] = []
        for a, b in gaps(track, numbers):
            prev_image = read(a)
            face = next(f.face for f in track.faces if f.frame == a)
            for t in range(a + 1, b):
                image = read(t)
                if prev_image is None or image is None:
                    break
                moved = follow(prev_image, image, face)
                if moved is None:
                    break
                moved.landmarks = refit(image, moved)
                if accept is not None and not accept(image, moved.landmarks):
                    break
                new.append(TrackFace(t, moved, filled=True))
                face, prev_image = moved, image
        if new:
            track.faces = sorted(track.faces + new, key=lambda f: f.frame)
            added += len(new)
    return added


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


# --- facesets without track ids (DFL's) -------------------------------------------------------

def tracks_from_sources(items: Sequence[tuple[str, tuple[float, float, float, float] | None]],
                        looks: Sequence[np.ndarray] | None = None) -> list[int | None]:
    """Track ids rebuilt from (source filename, source rect) pairs, e.g. a DFL faceset's faces:
    faces are grouped by source frame, frames put in time order by their numbers, and linked by
    their rects. Faces without a rect, or whose source names are not numbered frames, get None.
    `looks`, a colour histogram per face image, stands in for the frames' histograms to find the
    cuts (the frames themselves are not at hand): each frame's is the mean of its faces'."""
    names = sorted({name for name, rect in items if rect is not None and name})
    numbers = frame_numbers([Path(n) for n in names])
    if numbers is None:
        return [None] * len(items)
    order = sorted(range(len(names)), key=lambda i: numbers[i])
    where = {names[i]: t for t, i in enumerate(order)}
    per_frame: list[list[DetectedFace]] = [[] for _ in names]
    slot: dict[int, tuple[int, int]] = {}
    for k, (name, rect) in enumerate(items):
        if rect is None or name not in where:
            continue
        t = where[name]
        slot[k] = (t, len(per_frame[t]))
        per_frame[t].append(DetectedFace(rect=tuple(float(v) for v in rect)))
    cuts = None
    if looks is not None:
        frame_looks: list[list[np.ndarray]] = [[] for _ in names]
        for k, (t, _slot) in slot.items():
            frame_looks[t].append(np.asarray(looks[k], np.float32).ravel())
        cuts = find_cuts([np.mean(v, axis=0).astype(np.float32) if v else None for v in frame_looks])
    ids: dict[tuple[int, int], int] = {}
    for track in link([numbers[i] for i in order], per_frame, cuts):
        for f in track.faces:
            ids[(f.frame, _index_of(per_frame[f.frame], f.face))] = track.id
    return [ids.get(slot[k]) if k in slot else None for k in range(len(items))]


def _index_of(faces: list[DetectedFace], face: DetectedFace) -> int:
    return next(i for i, f in enumerate(faces) if f is face)

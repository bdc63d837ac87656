"""Landmark accuracy, jitter and lag on synthetic videos with known truth, raw vs smoothed.

Run from the repository root:  .venv/bin/python -m bench.landmark_accuracy [--frames 80] [--crf 23]

Each clip is a real photo moved by a known affine motion (core/synth_video), 640x480 at 25 fps,
encoded as H.264 and decoded again so the landmarks see real compression noise. Truth: the 68
landmarks detected once on the photo, mapped by each frame's photo->frame matrix. Motions:
- slow:  `smooth_motion` hand-held drift (shift 0.08 of the frame, 6 deg, 6% zoom),
- fast:  `smooth_motion(shift=0.25, rotation_deg=12)`, up to ~20 px per frame,
Frames where the face is not wholly inside the frame are left out of the figures.
- jump:  slow drift with a sudden 110 px jump halfway (~0.7 face sizes) (a whip pan or a cut-like move).
Per clip and overall it prints, for raw and for each smoother:
- err:    mean landmark error / inter-ocular distance (IOD), in %,
- jitter: mean norm of the 2nd temporal difference of (landmarks - truth), / IOD, in %,
- fast:   err on the fastest 20% of frames (truth speed), and `jump` err on the 6 frames around it,
- lag:    the frame shift (-4..4) that best aligns the face-centre trajectory with the truth's.
- miss:   % of the frames showing the whole face where no face was found on it,
- false:  faces found away from the truth face, per 100 frames (frames showing the whole face).

Tracks (facelib.tracks, what `extract` does on a video's frames): the same clips with the detector made
worse on purpose, since on these clean clips it almost never misses: `--drop` of the detections are
removed at random (misses) and a one-frame ghost face is added in `--ghosts` of the frames (a copy
of the face's box moved elsewhere, landmarks run there: a false face). "raw" keeps that as it is;
"tracks" links faces across frames, drops faces in no track and fills the gaps by KLT optical flow and
the landmark fit; "tracks+smooth" also smooths each track (--smooth-landmarks).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python bench/landmark_accuracy.py` too
    sys.path.insert(0, str(ROOT))

from core.synth_video import render_frames, smooth_motion, write_video  # noqa: E402
from core.video import ffmpeg_exe  # noqa: E402
from facelib.detected_face import DetectedFace  # noqa: E402
from facelib.detectors import get_detector  # noqa: E402
from facelib.landmarks import inter_ocular, landmarks  # noqa: E402
from facelib.plausibility import DEFAULT_THRESHOLD, score  # noqa: E402
from facelib.smoothing import smooth_points, smooth_sequence  # noqa: E402

FACES = ROOT / "tests" / "data" / "faces"
FRAME = (640, 480)
PHOTOS = ["obama.jpg", "grace_hopper.jpg", "astronaut.jpg", "obama2.jpg", "biden.jpg"]


@dataclass
class Clip:
    name: str
    truth: np.ndarray  # (T, 68, 2) the photo's landmarks mapped into each frame
    found: list[list[np.ndarray]]  # per frame, every face's 68 landmarks as detected
    jump_at: int | None = None
    faces: list[list[DetectedFace]] | None = None  # the detections themselves (for tracking)
    frames: list[np.ndarray] | None = None  # the decoded frames (for optical flow)


def motion(kind: str, n: int, photo_size: tuple[int, int], seed: int = 0) -> tuple[list[np.ndarray], int | None]:
    """Photo->frame matrices for a motion kind ("slow", "fast", "jump") and the jump frame if any."""
    if kind == "slow":
        return smooth_motion(n, photo_size, FRAME, seed=seed), None
    if kind == "fast":
        return smooth_motion(n, photo_size, FRAME, seed=seed, shift=0.25, rotation_deg=12.0), None
    if kind == "jump":
        mats = smooth_motion(n, photo_size, FRAME, seed=seed, shift=0.04)
        at = n // 2
        for m in mats[at:]:
            m[:, 2] += (110.0, -20.0)
        return mats, at
    raise ValueError(kind)


def decode(path: Path, frame_size: tuple[int, int]) -> list[np.ndarray]:
    """All frames of a video as BGR arrays, through ffmpeg (the decoder the toolkit uses)."""
    w, h = frame_size
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                         capture_output=True, check=True).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3))


def make_clip(photo_name: str, kind: str, n_frames: int = 80, *, crf: int = 23, seed: int = 0,
              workdir: Path | None = None) -> Clip:
    """Render, encode, decode and run detection + landmarks on every frame of one clip."""
    det = get_detector()
    photo = cv2.imread(str(FACES / photo_name))
    face = det.detect(photo)[0]
    photo_points = landmarks(photo, face)
    mats, jump_at = motion(kind, n_frames, (photo.shape[1], photo.shape[0]), seed)
    truth = np.stack([photo_points @ m[:, :2].T + m[:, 2] for m in mats])
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, render_frames(photo, mats, FRAME), fps=25, frame_size=FRAME, n_frames=n_frames,
                    audio_hz=None, crf=crf)
        frames = decode(path, FRAME)
    faces = [det.detect(f) for f in frames]
    for f, fs in zip(frames, faces):
        for d in fs:
            d.landmarks = landmarks(f, d)
    found = [[d.landmarks for d in fs] for fs in faces]
    return Clip(f"{Path(photo_name).stem}/{kind}", truth, found, jump_at, faces, frames)


def pick_truth_face(clip: Clip, result: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(T', 68, 2) landmarks of the face that is the truth face in each frame, and those frames."""
    pts, idx = [], []
    for t, faces in enumerate(result):
        if not faces or not visible(clip.truth[t]):
            continue
        c = clip.truth[t].mean(axis=0)
        best = min(faces, key=lambda p: np.linalg.norm(p.mean(axis=0) - c))
        if np.linalg.norm(best.mean(axis=0) - c) < inter_ocular(clip.truth[t]):
            pts.append(best)
            idx.append(t)
    return np.array(pts), np.array(idx)


def visible(truth: np.ndarray) -> bool:
    """Whether the truth face is wholly inside the frame (else the detector sees a cut face or its
    mirror image in the reflected border, and no landmark error means anything)."""
    margin = 0.5 * inter_ocular(truth)
    return bool((truth.min(axis=0) >= margin).all() and (truth.max(axis=0) <= np.array(FRAME) - margin).all())


def metrics(clip: Clip, result: list[list[np.ndarray]]) -> dict[str, float]:
    """err, jitter, fast-frame err, jump err and lag (see module docstring) of one result."""
    pts, idx = pick_truth_face(clip, result)
    truth = clip.truth[idx]
    iod = np.array([inter_ocular(p) for p in truth])
    err_t = np.linalg.norm(pts - truth, axis=2).mean(axis=1) / iod
    n_visible = sum(visible(t) for t in clip.truth)
    out = {"err": 100 * err_t.mean(), "found": len(idx) / max(n_visible, 1)}
    out["miss"] = 100 * (1 - out["found"])
    shown = [t for t in range(len(result)) if visible(clip.truth[t])]  # a cut-off face is neither true nor false
    out["false"] = 100 * (sum(len(result[t]) for t in shown) - len(idx)) / max(len(shown), 1)
    e = pts - truth
    consecutive = (idx[2:] - idx[:-2]) == 2
    second = np.linalg.norm(e[2:] - 2 * e[1:-1] + e[:-2], axis=2).mean(axis=1) / iod[1:-1]
    out["jitter"] = 100 * second[consecutive].mean()
    speed = np.r_[0, np.linalg.norm(np.diff(truth, axis=0), axis=2).mean(axis=1)] / iod
    fast = speed >= np.percentile(speed, 80)
    out["fast"] = 100 * err_t[fast].mean()
    if clip.jump_at is not None:
        near = np.abs(idx - clip.jump_at) <= 3
        out["jump"] = 100 * err_t[near].mean()
    out["lag"] = lag(pts.mean(axis=1), truth.mean(axis=1))
    return out


def lag(track: np.ndarray, truth: np.ndarray, max_shift: int = 4) -> int:
    """Shift k (frames) minimising |track[t] - truth[t - k]|: > 0 when the track lags the truth."""
    n = len(track)
    best = min(range(-max_shift, max_shift + 1),
               key=lambda k: np.linalg.norm(track[max(k, 0):n + min(k, 0)] - truth[max(-k, 0):n - max(k, 0)], axis=1).mean())
    return best


def smooth_raw_points(found: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The alternative smoother for comparison: same tracks, One-Euro on raw points."""
    from facelib.smoothing import build_tracks

    out = [[p.copy() for p in faces] for faces in found]
    for track in build_tracks(found):
        for f, slot, p in zip(track.frames, track.slots, smooth_points(np.stack(track.points))):
            out[f][slot] = p
    return out


SMOOTHERS = {"raw": lambda found: found, "points": smooth_raw_points, "similarity": smooth_sequence}


def degrade(clip: Clip, drop: float, ghosts: float, seed: int = 0) -> list[list[DetectedFace]]:
    """The clip's detections with `drop` of them removed and a ghost face in `ghosts` of the frames."""
    rng = np.random.default_rng(seed)
    out = []
    for frame, faces in zip(clip.frames, clip.faces):
        kept = [f for f in faces if rng.random() >= drop]
        if faces and rng.random() < ghosts:
            f = faces[0]
            h, w = frame.shape[:2]
            dx = float(rng.uniform(-w, w)) / 2
            dy = float(rng.uniform(-h, h)) / 3
            l, t, r, b = f.rect
            ghost = DetectedFace((l + dx, t + dy, r + dx, b + dy), score=f.score, detector=f.detector,
                                 keypoints=None if f.keypoints is None else f.keypoints + (dx, dy))
            ghost.landmarks = landmarks(frame, ghost)
            kept.append(ghost)
        out.append(kept)
    return out


def track_pipeline(clip: Clip, faces: list[list[DetectedFace]], smooth: bool) -> list[list[np.ndarray]]:
    """What extract does with a video's frames: link, drop faces in no track, fill gaps, maybe smooth."""
    from facelib import tracks as tr
    from facelib.smoothing import smooth_track

    faces = [[DetectedFace(f.rect, f.landmarks.copy(), f.score, f.detector, f.rotation, f.keypoints)
              for f in fs] for fs in faces]
    numbers = list(range(len(faces)))
    cuts = tr.find_cuts([tr.frame_signature(f) for f in clip.frames])
    kept = [t for t in tr.link(numbers, faces, cuts) if len(t.faces) >= tr.MIN_TRACK]
    tr.fill_gaps(kept, numbers, lambda t: clip.frames[t], landmarks,
                 lambda image, pts: score(image, pts) >= DEFAULT_THRESHOLD)
    out: list[list[np.ndarray]] = [[] for _ in faces]
    for track in kept:
        points = np.stack([f.face.landmarks for f in track.faces])
        if smooth:
            points = smooth_track(points)
        for f, p in zip(track.faces, points):
            out[f.frame].append(p)
    return out


TRACKERS = {"raw": lambda clip, faces: [[f.landmarks for f in fs] for fs in faces],
            "tracks": lambda clip, faces: track_pipeline(clip, faces, False),
            "tracks+smooth": lambda clip, faces: track_pipeline(clip, faces, True)}


def summarise(rows: list[tuple[str, str, dict[str, float]]], names=None) -> None:
    names = names or SMOOTHERS
    keys = ["err", "jitter", "fast", "jump", "lag", "miss", "false"]
    print(f"{'clip':<22}{'smoother':<12}" + "".join(f"{k:>9}" for k in keys))
    for clip, smoother, m in rows:
        print(f"{clip:<22}{smoother:<12}" + "".join(
            f"{m[k]:9.2f}" if k in m and k != "lag" else (f"{m[k]:9d}" if k in m else f"{'':>9}") for k in keys))
    print()
    for smoother in names:
        ms = [m for _, s, m in rows if s == smoother]
        line = f"{'MEAN':<22}{smoother:<12}"
        for k in keys:
            vals = [m[k] for m in ms if k in m]
            line += f"{np.mean(vals):9.2f}" if vals else f"{'':>9}"
        print(line + f"   max |lag| {max(abs(m['lag']) for m in ms)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--photos", nargs="*", default=PHOTOS)
    ap.add_argument("--kinds", nargs="*", default=["slow", "fast", "jump"])
    ap.add_argument("--drop", type=float, default=0.1, help="tracks table: share of detections removed")
    ap.add_argument("--ghosts", type=float, default=0.05, help="tracks table: share of frames given a ghost face")
    args = ap.parse_args()
    rows, track_rows = [], []
    t0 = time.perf_counter()
    for photo in args.photos:
        for kind in args.kinds:
            clip = make_clip(photo, kind, args.frames, crf=args.crf)
            for name, smoother in SMOOTHERS.items():
                rows.append((clip.name, name, metrics(clip, smoother(clip.found))))
            worse = degrade(clip, args.drop, args.ghosts)
            for name, tracker in TRACKERS.items():
                track_rows.append((clip.name, name, metrics(clip, tracker(clip, worse))))
            clip.frames = None
    print(f"{len(args.photos) * len(args.kinds)} clips of {args.frames} frames {FRAME[0]}x{FRAME[1]}, "
          f"crf {args.crf}, in {time.perf_counter() - t0:.0f} s; values in % of the inter-ocular distance\n")
    summarise(rows)
    print(f"\nTracks: {args.drop:.0%} of the detections removed, a ghost face in {args.ghosts:.0%} of the frames\n")
    summarise(track_rows, TRACKERS)


if __name__ == "__main__":
    main()

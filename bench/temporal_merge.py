"""Temporal merge: merged-face jitter and mask-edge flicker with `--temporal` off and on, against the dst's own.

Run from the repository root:  .venv/bin/python -m bench.temporal_merge [--frames 60] [--windows 0 2 4]

The dst clip is a real photo moved by a known smooth motion (core.synth_video: a hand-held drift, 640x480),
so the true landmarks of every frame are the photo's landmarks (found once) mapped by that frame's matrix.
The merger is given those landmarks with landmarker-like noise added (per point, and a shift of the whole
face per frame, each `--noise` of the eye distance), as one track. The model is the stand-in of the merge
tests (tests/merge_standin.py: the dst crop mirrored and tinted, its learned masks a face hull), so only the
merger's own stability is measured. Per setting it prints:
- jitter:  landmark jitter (facelib.swap_metrics.landmark_jitter, % of the eye distance) of the landmarks the
           dlib landmarker finds on the merged frames; `dst` is the same landmarker on the dst frames;
- paste:   the jitter of the landmarks the merger pasted with (given or smoothed) minus the truth;
- flicker: mask-edge flicker (facelib.swap_metrics.mask_edge_flicker, % of full mask) of the merged masks,
           moved by the true motion; `flicker(klt)`: moved by the motion `evaluate` estimates (KLT on the dst);
- colour:  high-pass flicker of the merged face's mean colour (RMS 2nd difference of the mean L*a*b* inside
           the mask, 8-bit levels); `dst` is the same inside the dst frames' truth hull;
- s/frame: merge time per frame (`--workers` compositing processes; 0: in this process), start-up included.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python bench/temporal_merge.py` too
    sys.path.insert(0, str(ROOT))

from core.image_io import read_image, write_image  # noqa: E402
from core.synth_video import render_frames, smooth_motion  # noqa: E402
from facelib.crop import landmarks_to_rect  # noqa: E402
from facelib.landmarks import inter_ocular, landmarks_from_box  # noqa: E402
from facelib.swap_metrics import frame_motion, landmark_jitter, mask_edge_flicker  # noqa: E402
from merger.frames import FrameInfo, set_motion  # noqa: E402

FACES = ROOT / "tests" / "data" / "faces"


@dataclass
class Clip:
    frames: list[Path]
    truth: np.ndarray  # (T, 68, 2) true landmarks
    noisy: np.ndarray  # (T, 68, 2) what the merger is given
    matrices: list[np.ndarray]  # photo -> frame

    def infos(self, track_id: int | None = 0) -> list[FrameInfo]:
        """The merger's input: one face per frame with the noisy landmarks, all in one track."""
        infos = [FrameInfo(p, [lm.copy()], track_ids=[track_id]) for p, lm in zip(self.frames, self.noisy)]
        set_motion(infos)
        return infos

    def motion(self, t: int) -> np.ndarray:
        """The true frame t-1 -> frame t matrix."""
        a, b = np.vstack([self.matrices[t - 1], [0, 0, 1]]), np.vstack([self.matrices[t], [0, 0, 1]])
        return (b @ np.linalg.inv(a))[:2]


def make_clip(folder: Path, n: int, noise: float = 0.02, photo: str = "obama.jpg", frame_size=(640, 480),
              seed: int = 0, drift_frames: int = 100) -> Clip:
    """`n` frames of `photo` drifting, written to `folder` (00001.png ...), with true and noisy landmarks. The
    drift's slow sines span `drift_frames` frames (4 s at 25 fps; a short clip is its first part), so a short
    test clip does not wobble faster than a hand-held camera does."""
    from facelib.detectors import detect
    from facelib.landmarks import landmarks
    from mainscripts.demo import head_and_shoulders

    image = read_image(FACES / photo)
    photo_points = landmarks(image, detect(image)[0])
    mats = smooth_motion(max(n, drift_frames), (image.shape[1], image.shape[0]), frame_size,
                         focus=head_and_shoulders(FACES / photo), seed=seed, shift=0.05, rotation_deg=8.0, zoom=0.08)[:n]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(render_frames(image, mats, frame_size)):
        paths.append(folder / f"{i + 1:05d}.png")
        write_image(paths[-1], frame)
    truth = np.stack([photo_points @ m[:, :2].T + m[:, 2] for m in mats])
    rng = np.random.default_rng(seed)
    iod = np.array([inter_ocular(p) for p in truth])[:, None, None]
    noisy = truth + noise * iod * (rng.standard_normal(truth.shape) + rng.standard_normal((n, 1, 2)))
    return Clip(paths, truth, noisy, mats)


def standin(clip: Clip, resolution: int = 64):
    from tests.merge_standin import StandInPredictor
    return StandInPredictor(clip.truth[0], resolution=resolution)


def mask_dir(merged_dir: Path) -> Path:
    """Where the masks of a merged folder go: `merged` -> `merged_mask`, as `evaluate` looks for them."""
    return merged_dir.parent / f"{merged_dir.name}_mask"


def merge(clip: Clip, merged_dir: Path, cfg, predictor, workers: int = 0) -> tuple[float, list[FrameInfo]]:
    """Merge the clip into `merged_dir` and its mask folder; (seconds, the infos merged)."""
    from merger.pipeline import run_merge
    infos = clip.infos()
    t0 = time.perf_counter()
    summary = run_merge(infos, cfg, predictor, merged_dir, mask_dir(merged_dir), workers=workers, progress=False)
    assert not summary.failed, summary.failed
    return time.perf_counter() - t0, infos


def merged_figures(clip: Clip, merged_dir: Path, klt: bool = True) -> dict[str, float]:
    """Landmark jitter of the merged frames and mask-edge flicker (true motion; and KLT as evaluate does)."""
    merged = [read_image(merged_dir / p.name) for p in clip.frames]
    masks = [cv2.imread(str(mask_dir(merged_dir) / p.name), cv2.IMREAD_GRAYSCALE) for p in clip.frames]
    boxes = [landmarks_to_rect(t) for t in clip.truth]
    found = np.stack([landmarks_from_box(m, b) for m, b in zip(merged, boxes)])
    figures = {"jitter": 100 * landmark_jitter(found), "colour": colour_flicker(merged, [m > 127 for m in masks]),
               "flicker": 100 * mask_edge_flicker(masks, [None] + [clip.motion(t) for t in range(1, len(masks))])}
    if klt:
        gray = [cv2.cvtColor(read_image(p), cv2.COLOR_BGR2GRAY) for p in clip.frames]
        motions = [None] + [frame_motion(gray[t - 1], gray[t], boxes[t - 1]) for t in range(1, len(gray))]
        figures["flicker_klt"] = 100 * mask_edge_flicker(masks, motions)
    return figures


def colour_flicker(frames: list[np.ndarray], areas: list[np.ndarray]) -> float:
    """RMS second temporal difference of the mean L*a*b* colour inside each frame's area, in 8-bit levels:
    a steady colour drift has none, a colour that pumps from frame to frame has it."""
    means = np.array([cv2.cvtColor(f, cv2.COLOR_BGR2LAB)[a].mean(axis=0) for f, a in zip(frames, areas)])
    acc = means[2:] - 2 * means[1:-1] + means[:-2]
    return float(np.sqrt((acc ** 2).sum(axis=1).mean() / 6.0))


def dst_colour_flicker(clip: Clip) -> float:
    from facelib.masks import hull_mask
    frames = [read_image(p) for p in clip.frames]
    return colour_flicker(frames, [hull_mask(f.shape[:2], t) > 0 for f, t in zip(frames, clip.truth)])


def dst_jitter(clip: Clip) -> float:
    """The landmarker's own jitter on the dst frames, in % of the eye distance."""
    found = np.stack([landmarks_from_box(read_image(p), landmarks_to_rect(t)) for p, t in zip(clip.frames, clip.truth)])
    return 100 * landmark_jitter(found)


def paste_jitter(infos: list[FrameInfo], clip: Clip, cfg) -> float:
    """Jitter of the landmarks the merger pastes with, against the truth (% of the eye distance)."""
    from merger import temporal
    used = temporal.smooth_landmarks(infos, lambda k: cfg.temporal) if cfg.temporal else infos
    pts = np.stack([i.landmarks[0] for i in used])
    return 100 * landmark_jitter(pts - clip.truth + clip.truth[:1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--windows", type=int, nargs="+", default=[0, 2, 4, 8])
    ap.add_argument("--noise", type=float, default=0.02, help="landmark noise, fraction of the eye distance")
    ap.add_argument("--mask-modes", nargs="+", default=["learned-prd*learned-dst", "dst"])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    from merger.config import MergeConfig
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_clip(root / "dst", args.frames, args.noise)
        predictor = standin(clip, args.resolution)
        print(f"dst landmark jitter (landmarker on the dst frames): {dst_jitter(clip):.2f}%   "
              f"given landmarks' jitter: {100 * landmark_jitter(clip.noisy - clip.truth + clip.truth[:1]):.2f}%   "
              f"dst colour flicker: {dst_colour_flicker(clip):.2f}")
        print(f"{'mask mode':<26} {'temporal':>8} {'jitter':>7} {'paste':>6} {'flicker':>8} {'flicker(klt)':>12} "
              f"{'colour':>6} {'s/frame':>8}")
        for mask_mode in args.mask_modes:
            for w in args.windows:
                cfg = MergeConfig(mask_mode=mask_mode, temporal=w)
                out = root / f"merged_{w}"
                seconds, infos = merge(clip, out, cfg, predictor, args.workers)
                f = merged_figures(clip, out)
                print(f"{mask_mode:<26} {w:>8} {f['jitter']:>6.2f}% {paste_jitter(infos, clip, cfg):>5.2f}% "
                      f"{f['flicker']:>7.2f}% {f['flicker_klt']:>11.2f}% {f['colour']:>6.2f} {seconds / args.frames:>8.3f}",
                      flush=True)


if __name__ == "__main__":  # the guard matters: compositing workers are spawned processes
    main()

"""Merge speed: frames per second of the batch merger with default settings, and peak memory.

    python bench/merge_speed.py                       # stand-in model, 640x480 and 1280x720, 1 and 2 workers
    python bench/merge_speed.py --model-dir M --model SAEHD   # a trained model as well (CPU)
    python bench/merge_speed.py --make-models         # train Quick96 and SAEHD-128 liae-ud for 1 iteration first
    python bench/merge_speed.py --mask-mode XSeg-prd*XSeg-dst   # each run also with that XSeg mode (stand-in XSeg,
                                                      # or --xseg-model-dir M, or the 256 px XSeg --make-models trains)

Frames are real photos in motion (tests/facesets.make_frames) with faces found by the real extractor.
Each measurement runs in a fresh process: wall time of the whole batch merge (worker start-up
included, model loading excluded) over `--frames` frames, and the peak resident memory of the main
process (model included) and of the largest compositing worker. DFL's reference on this 2-core machine, 640x480, 2 workers
(overlay, dst mask, rct): 12.7 frames/s with Quick96, 5.1 frames/s with SAEHD 128 liae-ud.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
UNIQUE_FRAMES = 20


def prepare(root: Path, size: tuple[int, int]) -> Path:
    """root/<WxH>/: UNIQUE_FRAMES frames with their aligned faces (made once, reused)."""
    from tests.facesets import extract_faces, make_frames
    folder = root / f"{size[0]}x{size[1]}"
    if not (folder / "aligned").is_dir():
        frames = make_frames("obama.jpg", folder, count=UNIQUE_FRAMES, frame_size=size)
        extract_faces(frames, folder / "aligned", size=256)
    return folder


def xseg_masker(folder: Path, xseg_dir: str | None):
    """The XSeg model of `xseg_dir`, or without one a stand-in at DFL's 256 px (its cost: the resizes
    and crops the merger makes for it, not a network)."""
    if xseg_dir:
        from models.xseg import load_xseg
        return load_xseg(Path(xseg_dir))
    from faceset.face_file import read_face_meta
    from tests.merge_standin import StandInMasker
    meta = read_face_meta(sorted((folder / "aligned").glob("*.jpg"))[0])
    return StandInMasker(meta.source_landmarks, resolution=256)


def measure(folder: Path, frames: int, workers: int, model_dir: str | None, model: str | None,
            mask_mode: str | None, xseg_dir: str | None = None) -> dict:
    """One run in this process: returns frames/s and peak memory."""
    import cv2

    from merger.config import default_config
    from merger.frames import collect_frames
    from merger.pipeline import run_merge
    from merger.xseg_masks import needs_xseg

    infos = collect_frames(folder, folder / "aligned")
    infos = (infos * (frames // len(infos) + 1))[:frames]  # the same frames again: same work, outputs overwritten
    if model_dir:
        from models.loader import load_predictor
        predictor = load_predictor(Path(model_dir), model)
        label = f"{model} {predictor.resolution}"
    else:
        from tests.merge_standin import standin_from_aligned
        predictor = standin_from_aligned(sorted((folder / "aligned").glob("*.jpg"))[0], resolution=128)
        label = "stand-in 128"
    cfg = default_config(getattr(predictor, "default_mode", None), getattr(predictor, "default_mask_mode", None))
    if mask_mode:
        cfg = cfg.replace(mask_mode=mask_mode)
    xseg = xseg_masker(folder, xseg_dir) if needs_xseg(cfg.mask_mode) else None
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = run_merge(infos, cfg, predictor, Path(out) / "merged", Path(out) / "merged_mask", workers=workers,
                            progress=False, worker_envs=[{"CUDA_VISIBLE_DEVICES": "-1"}], xseg=xseg)
        wall = time.perf_counter() - t0
    assert not summary.failed, summary.failed
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = summary.worker_peak_mb if workers > 0 else 0
    return {"model": label, "frames": frames, "workers": workers, "seconds": round(wall, 2),
            "fps": round(frames / wall, 2), "main_peak_mb": round(main_mb), "worker_peak_mb": round(worker_mb),
            "mask_mode": cfg.mask_mode, "xseg": (f"XSeg {xseg.resolution}" + ("" if xseg_dir else " stand-in"))
            if xseg is not None else ""}


def make_models(root: Path) -> list[tuple[str, str]]:
    """Train Quick96, SAEHD 128 liae-ud and a 256 px XSeg (DFL's size) for one iteration (speed does not
    depend on training). The XSeg model goes to root/model_XSeg (see --xseg-model-dir)."""
    src = prepare(root, (640, 480)) / "aligned"
    made = []
    for name, extra in (("Quick96", []), ("SAEHD", ["--resolution", "128", "--archi", "liae-ud", "--face-type", "wf",
                                                     "--batch-size", "4"]), ("XSeg", ["--batch-size", "2"])):
        model_dir = root / f"model_{name}"
        if not list(model_dir.glob(f"*_{name}_state.npz")):
            cmd = [sys.executable, str(REPO / "main.py"), "train", "--training-data-src-dir", str(src),
                   "--training-data-dst-dir", str(src), "--model-dir", str(model_dir), "--model", name,
                   "--silent-start", "--no-preview", "--target-iteration", "1", "--cpu-only", *extra]
            subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if name != "XSeg":
            made.append((str(model_dir), name))
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--model", default="SAEHD")
    ap.add_argument("--make-models", action="store_true")
    ap.add_argument("--mask-mode", default=None, help="override the default mask mode (DFL's reference used dst); "
                    "an XSeg mode is measured beside the default one")
    ap.add_argument("--xseg-model-dir", default=None, help="a trained XSeg model for the XSeg modes (default: a "
                    "stand-in, or with --make-models the one it trains)")
    ap.add_argument("--workdir", default=None, help="keep frames and models here between runs")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = ap.parse_args()
    root = Path(args.workdir or Path(tempfile.gettempdir()) / "facekit_merge_bench")
    root.mkdir(parents=True, exist_ok=True)

    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(measure(Path(spec["folder"]), spec["frames"], spec["workers"], spec.get("model_dir"),
                                 spec.get("model"), spec.get("mask_mode"), spec.get("xseg_dir"))))
        return

    models: list[tuple[str | None, str | None]] = [(None, None)]
    if args.model_dir:
        models.append((args.model_dir, args.model))
    xseg_dir = args.xseg_model_dir
    if args.make_models:
        models += make_models(root)
        xseg_dir = xseg_dir or str(root / "model_XSeg")
    from merger.xseg_masks import needs_xseg
    mask_modes = [None, args.mask_mode] if args.mask_mode and needs_xseg(args.mask_mode) else [args.mask_mode]
    print(f"{'model':<16} {'size':<9} {'workers':>7} {'frames/s':>9} {'seconds':>8} {'main MB':>8} {'worker MB':>9}"
          f"  mask mode")
    for size_name in args.sizes:
        folder = prepare(root, SIZES[size_name])
        for (model_dir, model), workers, mask_mode in itertools.product(models, args.workers, mask_modes):
            spec = {"folder": str(folder), "frames": args.frames, "workers": workers, "model_dir": model_dir,
                    "model": model, "mask_mode": mask_mode, "xseg_dir": xseg_dir}
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
            out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec), "--workdir", str(root)],
                                 capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{model or 'stand-in'} {size_name} workers={workers}: failed\n{out.stderr[-1500:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['model']:<16} {size_name:<9} {workers:>7} {r['fps']:>9.2f} {r['seconds']:>8.2f} "
                  f"{r['main_peak_mb']:>8} {r['worker_peak_mb']:>9}  {r['mask_mode']} {r['xseg']}", flush=True)


if __name__ == "__main__":
    main()

"""Training speed: ms per iteration, pairs per second and peak memory per model preset and backend.

    python -m bench.train_speed                       # DFL's comparison presets, float32 and bf16
    python -m bench.train_speed --presets q96 --precision mixed_bfloat16 --iters 20
    KERAS_BACKEND=jax python -m bench.train_speed --presets saehd128-liae-ud
    python -m bench.train_speed --presets amp original --iters 5

Each preset runs in its own process (clean peak memory). Batches come from a real faceset through
the background sample workers, so the figure includes any wait for data (printed as a share).
Prints figures only; nothing passes or fails.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name: (model class, options, batch); DFL's own timings on the 2-core CPU of the issue in the comment
PRESETS: dict[str, tuple[str, dict, int]] = {
    "q96": ("Quick96", {}, 4),  # DFL 1.29 s/it
    "saehd64-df-ud": ("SAEHD", {"resolution": 64, "archi": "df-ud"}, 4),  # DFL 0.83 s/it
    "saehd64-liae-ud-b8": ("SAEHD", {"resolution": 64, "archi": "liae-ud"}, 8),  # DFL 2.06 s/it
    "saehd128-liae-ud": ("SAEHD", {"resolution": 128, "archi": "liae-ud"}, 4),
    "saehd256-df-ud": ("SAEHD", {"resolution": 256, "archi": "df-ud"}, 4),
    # XSeg at 256, DFL's widths; batch is per side (4 src + 4 dst faces per step); generic targets
    "xseg": ("XSeg", {}, 4),
    # AMP at DFL's defaults (224 px whole face, ae 256, inter 1024, batch 8) and the classic Original (64 px)
    "amp": ("AMP", {}, 8),
    "original": ("Original", {}, 8),
    # Reenact at its defaults (128 px, g_dims 32, PatchGAN 0.1) and the demo's 64 px / g_dims 16
    "reenact": ("Reenact", {}, 4),
    "reenact64": ("Reenact", {"resolution": 64, "g_dims": 16}, 4),
}
DFL_SECONDS = {"q96": 1.29, "saehd64-df-ud": 0.83, "saehd64-liae-ud-b8": 2.06}


def _faceset(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO))
    from tests.facesets import make_faceset
    src = root / "src"
    dst = root / "dst"
    if not (src / "aligned").exists():
        make_faceset(["obama.jpg", "obama2.jpg", "grace_hopper.jpg"], src, per_photo=8, size=256)
        make_faceset(["biden.jpg", "astronaut.jpg"], dst, per_photo=10, size=256)
    return src / "aligned", dst / "aligned"


def run_one(preset: str, precision: str, iters: int, batch: int | None, faceset_root: Path) -> dict:
    """In this process: build the preset, warm up, time `iters` iterations."""
    sys.path.insert(0, str(REPO))
    from core import keras_backend as kb
    kb.prepare(precision)
    from core.settings import resolve
    from models.batch_stream import BatchStream
    from models.loader import model_class
    from models.model_files import ModelFiles
    from models.sample_set import load_faceset

    cls_name, opts, default_batch = PRESETS[preset]
    cls = model_class(cls_name)
    given = {**opts, "batch_size": batch or default_batch}
    options = resolve(cls.OPTIONS, None, given, ask_overrides=False) if cls.OPTIONS else {}
    with tempfile.TemporaryDirectory() as tmp:
        model = cls(ModelFiles(Path(tmp), "bench", cls_name), options, training=True)
    src_dir, dst_dir = _faceset(faceset_root)
    s_spec, d_spec = model.sample_specs()
    with BatchStream(load_faceset(src_dir), s_spec, model.batch_size, workers=1, seed=1) as src, \
            BatchStream(load_faceset(dst_dir), d_spec, model.batch_size, workers=1, seed=2) as dst:
        t0 = time.perf_counter()
        model.train_step(src.next(), dst.next())
        first = time.perf_counter() - t0
        for _ in range(2):
            model.train_step(src.next(), dst.next())
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model.train_step(src.next(), dst.next())
            times.append(time.perf_counter() - t0)
        waited = (src.wait_fraction + dst.wait_fraction) / 2
    times.sort()
    median = times[len(times) // 2]
    return {"preset": preset, "backend": kb.backend_name(), "precision": precision, "batch": model.batch_size,
            "ms_per_it": 1000 * median, "pairs_per_s": model.batch_size / median, "first_it_s": first,
            "data_wait": waited, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["q96", "saehd64-df-ud", "saehd64-liae-ud-b8"], choices=list(PRESETS))
    ap.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=None, help="override the preset's batch size")
    ap.add_argument("--faceset-root", default=os.path.join(tempfile.gettempdir(), "bench_train_faceset"))
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    root = Path(args.faceset_root)
    if args.one:
        print(json.dumps(run_one(args.presets[0], args.precision[0], args.iters, args.batch, root)))
        return
    _faceset(root)
    print(f"{'preset':<20} {'backend':<10} {'precision':<15} {'batch':>5} {'ms/it':>8} {'pairs/s':>8} "
          f"{'vs DFL':>7} {'wait':>6} {'peak MiB':>9}")
    for preset in args.presets:
        for precision in args.precision:
            cmd = [sys.executable, "-m", "bench.train_speed", "--one", "--presets", preset, "--precision", precision,
                   "--iters", str(args.iters), "--faceset-root", str(root)] + (["--batch", str(args.batch)] if args.batch else [])
            out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode != 0 or not lines:
                print(f"{preset:<20} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(lines[-1])
            dfl = DFL_SECONDS.get(preset) if not args.batch else None
            speedup = f"{dfl * 1000 / r['ms_per_it']:.2f}x" if dfl else "-"
            print(f"{preset:<20} {r['backend']:<10} {precision:<15} {r['batch']:>5} {r['ms_per_it']:>8.0f} "
                  f"{r['pairs_per_s']:>8.2f} {speedup:>7} {100 * r['data_wait']:>5.1f}% {r['peak_rss_mib']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()

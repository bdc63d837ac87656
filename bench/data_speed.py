"""Training data speed: batches per second and milliseconds per batch of `models.batch_stream.BatchStream`.

A ~40-face faceset is extracted from the real photos in tests/data/faces (whole_face at 256 px, the
kind of faceset DFL users train on), then batches are drawn SAEHD-style (full_face crop, so every face
is re-cropped; random warp, scale ±0.15, eyes+mouth mask) as fast as the consumer can take them, per
resolution, batch size and worker count. Also the cost of the optional augmentations in-thread.
Prints figures; no pass/fail.

    .venv/bin/python -m bench.data_speed [--batches 40] [--resolutions 96 128] [--batch-sizes 4 8] [--workers 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facelib.face_type import FaceType  # noqa: E402
from models.augment import SampleSpec  # noqa: E402
from models.batch_stream import BatchStream  # noqa: E402
from models.sample_set import load_faceset  # noqa: E402

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper.jpg", "astronaut.jpg"]


def _measure(records, spec: SampleSpec, batch_size: int, workers: int, batches: int) -> tuple[float, float, float]:
    """(start-up seconds, ms per batch once every face is cached, consumer wait fraction)."""
    with BatchStream(records, spec, batch_size, workers=workers, seed=0, prefetch=2) as stream:
        t0 = time.perf_counter()
        stream.next()
        startup = time.perf_counter() - t0
        for _ in range(-(-len(records) // batch_size) + 2 * max(workers, 1)):  # one epoch: fill the caches
            stream.next()
        t0 = time.perf_counter()
        for _ in range(batches):
            stream.next()
        elapsed = time.perf_counter() - t0
        return startup, 1000.0 * elapsed / batches, stream.wait_fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per configuration")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[96, 128])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-photo", type=int, default=8, help="faces per photo (5 photos)")
    args = parser.parse_args()

    from tests.facesets import make_faceset
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_faceset(PHOTOS, Path(tmp), per_photo=args.per_photo, size=256, face_type="whole_face")
        records = load_faceset(Path(tmp) / "aligned")
        print(f"faceset: {len(records)} whole_face faces at 256 px (made in {time.perf_counter() - t0:.1f}s); "
              f"{os.cpu_count()} CPU cores")
        print("SAEHD-style src: full_face re-crop, random warp, scale ±0.15, eyes+mouth mask; "
              "the consumer does nothing but take batches")
        for res in args.resolutions:
            spec = SampleSpec(res, FaceType.FULL, random_warp=True, scale_range=(-0.15, 0.15))
            for bs in args.batch_sizes:
                for workers in args.workers:
                    startup, ms, wait = _measure(records, spec, bs, workers, args.batches)
                    print(f"  res {res:3d} batch {bs:2d} workers {workers}: {1000.0 / ms:6.1f} batches/s "
                          f"{ms:6.1f} ms/batch ({ms / bs:5.2f} ms/sample), first batch {startup:4.2f}s")
        res, bs = args.resolutions[-1], args.batch_sizes[-1]
        base = SampleSpec(res, FaceType.FULL, random_warp=True, scale_range=(-0.15, 0.15))
        print(f"augmentation options, in-thread (workers 0), res {res} batch {bs}:")
        variants = {
            "warp off": replace(base, random_warp=False),
            "SAEHD src": base,
            "+ flip + hsv 0.1": replace(base, random_flip=True, random_hsv_power=0.1),
            "+ uniform_yaw": replace(base, uniform_yaw=True),
            "+ ct rct": replace(base, ct_mode="rct"),
            "+ ct sot": replace(base, ct_mode="sot"),
        }
        for name, spec in variants.items():
            ct = records if spec.ct_mode else None
            with BatchStream(records, spec, bs, workers=0, seed=0, ct_source=ct) as stream:
                for _ in range(-(-len(records) // bs) + 1):
                    stream.next()
                t0 = time.perf_counter()
                for _ in range(args.batches):
                    stream.next()
                ms = 1000.0 * (time.perf_counter() - t0) / args.batches
            print(f"  {name:18s} {ms:6.1f} ms/batch ({ms / bs:5.2f} ms/sample)")


if __name__ == "__main__":
    main()

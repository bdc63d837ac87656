"""XSeg apply speed: faces per second of `xseg apply` at the network's resolution, and its peak memory.

A fresh XSeg model (DFL's size unless told otherwise: 256 px, base width 32) is made by `train --model
XSeg` for one iteration (the weights do not change the cost), then `xseg apply` bakes masks into a
faceset of real faces; the figure is the wall time of the apply command (model loading included,
compute precision as `apply` chooses it: auto), in a fresh process. Prints figures only; nothing passes or fails.

    .venv/bin/python -m bench.xseg_apply_speed [--faces 64] [--face-size 256]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.facesets import make_faceset  # noqa: E402

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.jpg"]


def _main_py(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    cmd = [sys.executable, "-c", "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
           "exec('try:\\n runpy.run_path(sys.argv[0], run_name=\"__main__\")\\nfinally:\\n "
           "print(\"peak_rss_mb\", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)')",
           str(REPO / "main.py"), *args]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: main.py {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--face-size", type=int, default=256)
    ap.add_argument("--resolution", type=int, default=256, help="XSeg resolution (DFL: 256)")
    ap.add_argument("--dims", type=int, default=32, help="XSeg base channels (DFL: 32)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per = -(-a.faces // len(PHOTOS))
        make_faceset(PHOTOS, root / "faces", per_photo=per, size=a.face_size, frame_size=(640, 480))
        aligned = root / "faces" / "aligned"
        n = len(list(aligned.glob("*.jpg")))
        _main_py("train", "--model", "XSeg", "--training-data-src-dir", str(aligned), "--training-data-dst-dir",
                 str(aligned), "--model-dir", str(root / "model"), "--resolution", str(a.resolution), "--dims",
                 str(a.dims), "--batch-size", "2", "--generic", "--target-iteration", "1", "--no-preview",
                 "--silent-start", "--sample-workers", "0", "--cpu-only")
        print(f"xseg apply: {n} faces of {a.face_size} px, XSeg {a.resolution} px dims {a.dims}, CPU")
        seconds, err = _main_py("xseg", "apply", "--input-dir", str(aligned), "--model-dir", str(root / "model"),
                                "--cpu-only")
        peak = re.search(r"peak_rss_mb (\d+)", err)
        print(f"  {n / seconds:6.1f} faces/s ({seconds:.1f} s, model load included), "
              f"peak {peak.group(1) if peak else '?'} MiB")


if __name__ == "__main__":
    main()

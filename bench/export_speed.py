"""Export speed and what a .dfm costs at run time: export seconds, .dfm size, and onnxruntime's ms per face
against the Keras model's own predict() ms per face on this CPU, at batch 1 and 8.

    python bench/export_speed.py                        # fresh Quick96 and SAEHD 128 liae-ud (DFL's default dims)
    python bench/export_speed.py --model-dir M --model SAEHD   # a trained model instead
    python bench/export_speed.py --quantize             # the float16-weight export as well

Weights do not change the cost of either runtime, so fresh models measure what a trained one costs.
Each time is the median of `--repeats` calls after one warm-up call; both runtimes use every core they see.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BATCHES = (1, 8)


def fresh_model(folder: Path, cls: str) -> None:
    """A saved, freshly initialised model: Quick96, or SAEHD 128 liae-ud with DFL's default options."""
    from core import keras_backend as kb
    kb.prepare("float32")
    from core.settings import resolve
    from models.loader import model_class
    from models.model_files import ModelFiles
    model_cls = model_class(cls)
    given = {"resolution": 128, "archi": "liae-ud", "face_type": "f"} if cls == "SAEHD" else {}
    options = resolve(model_cls.OPTIONS, None, given, ask_overrides=False) if model_cls.OPTIONS else {}
    model_cls(ModelFiles(folder, "bench", cls), options, training=False).save()


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: graph tracing, onnxruntime's first-run allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def faces(res: int, n: int) -> np.ndarray:
    """`n` real aligned faces (DFL's fixture inputs, repeated) at `res` px."""
    import cv2
    base = np.load(REPO.parent / "shared" / "dfl-fixtures" / "saehd_liae-ud_64" / "predictions.npz")["in_face"]
    out = [cv2.resize(base[i % len(base)], (res, res), interpolation=cv2.INTER_CUBIC) for i in range(n)]
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def bench_one(model_dir: Path, cls: str, quantize: bool, repeats: int) -> list[str]:
    from mainscripts.export_model import export_dfm
    from models.export_onnx import session
    from models.loader import load_predictor

    rows = []
    model = load_predictor(model_dir, cls, precision="float32")
    variants = [False, True] if quantize else [False]
    for q in variants:
        out = model_dir / f"bench_{'fp16' if q else 'fp32'}.dfm"
        report = export_dfm(model_dir, cls, output_file=out, settings={"quantize": q})
        sess = session(out.read_bytes())
        extra = {"morph_value:0": np.array([0.75], np.float32)} if len(sess.get_inputs()) == 2 else {}
        label = f"{cls} {model.resolution}px{' fp16' if q else ''}"
        rows.append(f"{label:<22} export {report.seconds:6.1f} s   .dfm {report.size_bytes / 2**20:7.1f} MiB   "
                    f"max |ort - keras| {report.max_abs_diff:.1e}")
        for n in BATCHES:
            x = faces(model.resolution, n)
            ort_ms = median_ms(lambda: sess.run(None, {"in_face:0": x, **extra}), repeats) / n
            keras_ms = median_ms(lambda: model.predict(x), repeats) / n
            rows.append(f"{'':<22} batch {n}: onnxruntime {ort_ms:7.1f} ms/face   Keras predict {keras_ms:7.1f} "
                        f"ms/face   ({keras_ms / ort_ms:.2f}x)")
        print("\n".join(rows[-1 - len(BATCHES):]), flush=True)  # as measured; the summary comes at the end
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=None, help="a trained model folder (default: fresh models in a temp folder)")
    ap.add_argument("--model", default=None, choices=("SAEHD", "Quick96", "AMP"), help="its class (with --model-dir)")
    ap.add_argument("--quantize", action="store_true", help="also measure the float16-weight export")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    a = ap.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    print(f"CPU cores visible: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    rows: list[str] = []
    if a.model_dir:
        if not a.model:
            ap.error("--model-dir needs --model")
        rows += bench_one(Path(a.model_dir), a.model, a.quantize, a.repeats)
    else:
        with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
            for cls in ("Quick96", "SAEHD"):
                folder = Path(tmp) / cls
                folder.mkdir()
                fresh_model(folder, cls)
                rows += bench_one(folder, cls, a.quantize, a.repeats)
    print("\nSummary\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

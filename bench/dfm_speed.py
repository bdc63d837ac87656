"""Milliseconds per face of a .dfm under onnxruntime against the same model's Keras prediction.

A fresh Quick96 (96 px, DF-UD; the weights do not matter for speed) is exported to a .dfm with the
exporter's converter (models.export_onnx, TensorFlow backend) and run through models.dfm_predictor, the
way `merge --model-dir X.dfm` runs it: batches of 8 faces, onnxruntime on the process's CPU share.

    KERAS_BACKEND=tensorflow python -m bench.dfm_speed [--faces 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_ms_per_face(fn, faces: np.ndarray, repeats: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per face, the best of `repeats` runs. CPU time (all threads of this process)
    is the steadier figure on a shared machine: wall time there counts other processes' turns too."""
    fn(faces[:8])  # warm-up: graph building, allocations
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for k in range(0, len(faces), 8):
            fn(faces[k:k + 8])
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return 1000.0 * wall / len(faces), 1000.0 * cpu / len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from models.dfm_contract import DFM_OPSET, IN_FACE, OUTPUTS
    from models.dfm_predictor import cpu_share, load_dfm_predictor
    from models.export_onnx import TensorSpec, keras_to_onnx
    from models.model_files import ModelFiles
    from models.quick96 import Quick96

    with tempfile.TemporaryDirectory(prefix="dfm-speed-") as tmp:
        model = Quick96(ModelFiles(Path(tmp), "q", "Quick96"), {}, training=True)
        start = time.perf_counter()
        proto = keras_to_onnx(model.export_model(), [TensorSpec(IN_FACE, (None, 96, 96, 3))], list(OUTPUTS), DFM_OPSET)
        path = Path(tmp) / "q_Quick96.dfm"
        path.write_bytes(proto.SerializeToString())
        export_s = time.perf_counter() - start
        dfm = load_dfm_predictor(path)
        faces = np.random.default_rng(0).random((args.faces, 96, 96, 3), dtype=np.float32)
        ort_ms = best_ms_per_face(dfm.predict, faces, args.repeats)
        keras_ms = best_ms_per_face(model.predict_batch, faces, args.repeats)
        diff = np.abs(dfm.predict(faces[:8]).face - model.predict_batch(faces[:8]).face).max()
        print(f"Quick96 .dfm: {path.stat().st_size / 1e6:.1f} MB, converted in {export_s:.1f} s; "
              f"{cpu_share()} CPU threads, batches of 8")
        print(f"onnxruntime: {ort_ms[0]:.1f} ms/face wall, {ort_ms[1]:.1f} ms/face CPU   "
              f"Keras ({os.environ['KERAS_BACKEND']}): {keras_ms[0]:.1f} ms/face wall, {keras_ms[1]:.1f} ms/face CPU   "
              f"max |face difference| {diff:.2e}")


if __name__ == "__main__":
    main()

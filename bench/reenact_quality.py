"""Reenact quality: how closely the drawn face follows its driving landmarks after a fixed CPU budget.

    python -m bench.reenact_quality                         # 64 px, g_dims 16, 240 s of training
    python -m bench.reenact_quality --seconds 900 --resolution 128 --g-dims 32

A tiny Reenact model trains in this process on a src faceset made from two photos of one person
(tests/data/faces obama*.jpg) with a dst faceset of another (biden.jpg) for its shape averages. At a
few checkpoints, each dst face drives the model as the merger would (its landmarks in the model's crop,
carried onto the src proportions), as it is and with the mouth opened by 0.15 and 0.30 eye distances
(lower lip down, chin 0.7x as far). The landmarks found again on the drawn faces are compared with the
driving ones. Rows:
- lm err: mean landmark distance, drawn vs driving, in eye distances (landmarker noise on the real src
  faces, printed first, is the floor);
- mouth: the drawn faces' mouth opening against the driving one (eye distances), per opening, and
  their correlation over all faces and openings (1 = the mouth follows exactly).
Prints figures only; nothing passes or fails. A busy machine gets fewer iterations in the same budget.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OPENINGS = (0.0, 0.15, 0.30)


def _facesets(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO))
    from tests.facesets import make_faceset
    if not (root / "src" / "aligned").exists():
        make_faceset(["obama.jpg", "obama2.jpg"], root / "src", per_photo=8, size=128)
        make_faceset(["biden.jpg"], root / "dst", per_photo=8, size=128)
    return root / "src" / "aligned", root / "dst" / "aligned"


def _crops(folder: Path, res: int, face_type) -> tuple[np.ndarray, np.ndarray]:
    """Every face of `folder` at the model's crop, float 0..1, with its stored landmarks there."""
    import cv2

    from core.image_io import read_image
    from facelib.crop import CropSpec
    from faceset.face_file import read_face_meta
    faces, lms = [], []
    for path in sorted(folder.glob("*.jpg")):
        meta = read_face_meta(path)
        crop = CropSpec(res, face_type).of(meta.landmarks)
        faces.append(crop.warp(read_image(path), cv2.INTER_AREA).astype(np.float32) / 255.0)
        lms.append(crop.to_face(meta.landmarks))
    return np.asarray(faces), np.asarray(lms, np.float32)


def _open_mouth(lms: np.ndarray, amount: float) -> np.ndarray:
    from facelib.landmarks import inter_ocular
    out = np.array(lms, np.float32)
    for p in out:
        step = amount * inter_ocular(p)
        p[np.r_[55:60, 65:68], 1] += step
        p[5:12, 1] += 0.7 * step
    return out


def _errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from facelib.landmarks import inter_ocular
    return np.array([np.linalg.norm(x - y, axis=1).mean() / max(inter_ocular(y), 1e-6) for x, y in zip(a, b)])


def measure(model, dst_faces: np.ndarray, dst_lms: np.ndarray) -> dict[str, float]:
    from facelib.reenact_geometry import crop_landmarks, mouth_opening
    out: dict[str, float] = {}
    wanted, got, errs = [], [], []
    for amount in OPENINGS:
        lms = _open_mouth(dst_lms, amount)
        drive = model.driving_landmarks(lms)
        drawn = model.predict(dst_faces, landmarks=lms).face
        found = crop_landmarks(drawn, model.face_type)
        errs.append(_errors(found, drive))
        w, g = mouth_opening(drive), mouth_opening(found)
        wanted.append(w)
        got.append(g)
        out[f"mouth {amount:.2f}"] = float(np.mean(g))
        out[f"want {amount:.2f}"] = float(np.mean(w))
    out["lm err"] = float(np.mean(np.concatenate(errs)))
    w, g = np.concatenate(wanted), np.concatenate(got)
    out["mouth corr"] = float(np.corrcoef(w, g)[0, 1]) if np.std(g) > 0 else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=240.0, help="training time budget (after the first step)")
    ap.add_argument("--checkpoints", type=int, default=4)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--g-dims", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--gan-power", type=float, default=0.1)
    ap.add_argument("--learning-rate", type=float, default=2e-4)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--faceset-root", default=str(Path(tempfile.gettempdir()) / "bench_reenact_faceset"))
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from core import keras_backend as kb
    kb.prepare(args.precision)
    from core.settings import resolve
    from facelib.landmarks import inter_ocular
    from facelib.reenact_geometry import crop_landmarks
    from models.batch_stream import BatchStream
    from models.model_files import ModelFiles
    from models.reenact import Reenact
    from models.sample_set import load_faceset

    src_dir, dst_dir = _facesets(Path(args.faceset_root))
    given = {"resolution": args.resolution, "g_dims": args.g_dims, "batch_size": args.batch_size,
             "gan_power": args.gan_power, "learning_rate": args.learning_rate}
    options = resolve(Reenact.OPTIONS, None, given, ask_overrides=False)
    with tempfile.TemporaryDirectory() as tmp:
        model = Reenact(ModelFiles(Path(tmp), "bench", "Reenact"), options, training=True)
    res, ft = model.resolution, model.face_type
    src_faces, src_lms = _crops(src_dir, res, ft)
    dst_faces, dst_lms = _crops(dst_dir, res, ft)
    noise = _errors(crop_landmarks(src_faces, ft), src_lms)
    print(f"Reenact {res} px, g_dims {args.g_dims}, batch {model.batch_size}, gan {args.gan_power}, "
          f"{args.precision}; {len(src_faces)} src / {len(dst_faces)} dst faces; landmarker noise on the real src "
          f"faces {np.mean(noise):.3f} eye distances; mean eye distance {np.mean([inter_ocular(p) for p in dst_lms]):.1f} px")
    cols = ["lm err", "mouth corr"] + [f"{k} {a:.2f}" for a in OPENINGS for k in ("want", "mouth")]
    print(f"{'seconds':>8} {'iter':>6} {'ms/it':>6} {'loss':>7} " + " ".join(f"{c:>10}" for c in cols))
    s_spec, d_spec = model.sample_specs()
    with BatchStream(load_faceset(src_dir), s_spec, model.batch_size, workers=1, seed=1) as src, \
            BatchStream(load_faceset(dst_dir), d_spec, model.batch_size, workers=1, seed=2) as dst:
        model.train_step(src.next(), dst.next())  # compiles; not counted
        spent, losses, times = 0.0, [], []
        for k in range(1, args.checkpoints + 1):
            while spent < args.seconds * k / args.checkpoints:
                t0 = time.perf_counter()
                loss = model.train_step(src.next(), dst.next())
                times.append(time.perf_counter() - t0)
                spent += times[-1]
                if loss is not None:
                    losses.append(loss[0])
            m = measure(model, dst_faces, dst_lms)
            print(f"{spent:>8.0f} {model.iteration:>6} {1000 * np.median(times):>6.0f} {np.mean(losses[-20:]):>7.3f} "
                  + " ".join(f"{m[c]:>10.3f}" for c in cols), flush=True)
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

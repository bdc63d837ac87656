"""AMP's morph factor against identity: after a short CPU training, how much do AMP's swaps look like src
at morph 0.0, 0.5 and 1.0 (and like dst)?

    python -m bench.amp_morph                       # 10 minutes of training, the demo's small AMP (64 px)
    python -m bench.amp_morph --minutes 3 --morphs 0 0.25 0.5 0.75 1

Trains a fresh AMP (the demo's configuration) on a faceset made from tests/data photos (src: Obama,
Grace Hopper; dst: Biden, an astronaut) for a fixed wall-clock budget, then swaps every dst face at each
morph factor and scores identity with dlib's descriptor (facelib.identity): similarity = 1 - distance
(above 0.4: the same person), to the mean src descriptor and to the dst face itself. Prints figures only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHIP = 256  # the swapped crop is upscaled to this before dlib cuts its 150 px chip
OPTIONS = dict(resolution=64, face_type="wf", ae_dims=128, inter_dims=256, e_dims=32, d_dims=32, d_mask_dims=16,
               batch_size=8)


def _faceset(root: Path) -> tuple[Path, Path]:
    from tests.facesets import make_faceset
    src, dst = root / "src", root / "dst"
    if not (src / "aligned").exists():
        make_faceset(["obama.jpg", "obama2.jpg", "grace_hopper.jpg"], src, per_photo=8, size=256)
        make_faceset(["biden.jpg", "astronaut.jpg"], dst, per_photo=10, size=256)
    return src / "aligned", dst / "aligned"


def _faces(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, landmarks in its pixels) of each aligned face."""
    from core.image_io import read_image
    from faceset.face_file import read_face_meta
    out = []
    for path in sorted(folder.glob("*.jpg")):
        meta = read_face_meta(path)
        if meta is not None and meta.landmarks is not None:
            out.append((read_image(path), np.asarray(meta.landmarks, np.float64)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget (wall clock)")
    ap.add_argument("--morphs", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--faceset-root", default=os.path.join(tempfile.gettempdir(), "bench_train_faceset"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from core import keras_backend as kb
    kb.prepare(args.precision)
    from core.settings import resolve
    from facelib.crop import CropSpec
    from facelib.identity import embedding
    from facelib.swap_metrics import identity_similarity
    from models.amp import AMP
    from models.batch_stream import BatchStream
    from models.model_files import ModelFiles
    from models.sample_set import load_faceset

    src_dir, dst_dir = _faceset(Path(args.faceset_root))
    options = resolve(AMP.OPTIONS, None, OPTIONS, ask_overrides=False)
    with tempfile.TemporaryDirectory() as tmp:
        model = AMP(ModelFiles(Path(tmp), "bench", "AMP"), options, training=True)
    s_spec, d_spec = model.sample_specs()
    started = time.monotonic()
    with BatchStream(load_faceset(src_dir), s_spec, model.batch_size, workers=1, seed=1) as src, \
            BatchStream(load_faceset(dst_dir), d_spec, model.batch_size, workers=1, seed=2) as dst:
        while time.monotonic() - started < args.minutes * 60:
            losses = model.train_step(src.next(), dst.next())
    took = time.monotonic() - started
    print(f"trained {model.iteration} iterations in {took / 60:.1f} min (batch {model.batch_size}, "
          f"{options['resolution']} px, {kb.precision_name()}); last losses {losses}")

    src_embs = np.asarray([embedding(img, lm) for img, lm in _faces(src_dir)])
    src_centre = src_embs.mean(axis=0, keepdims=True)
    spec = CropSpec(model.resolution, model.face_type)
    crops, lms, dst_embs = [], [], []
    for img, lm in _faces(dst_dir):
        crop = spec.of(lm)
        crops.append(crop.warp(img, cv2.INTER_CUBIC).astype(np.float32) / 255.0)
        lms.append(crop.to_face(lm) * (CHIP / model.resolution))
        dst_embs.append(embedding(img, lm))
    dst_embs = np.asarray(dst_embs)
    print(f"dst faces before the swap: similarity to src {identity_similarity(dst_embs, src_centre):.3f}")
    print(f"{'morph':>6} {'to src':>8} {'to dst':>8}")
    for m in args.morphs:
        faces = model.predict(np.stack(crops), morph=m).face
        embs = np.asarray([embedding(cv2.resize((f * 255 + 0.5).clip(0, 255).astype(np.uint8), (CHIP, CHIP),
                                                interpolation=cv2.INTER_CUBIC), lm) for f, lm in zip(faces, lms)])
        print(f"{m:>6.2f} {identity_similarity(embs, src_centre):>8.3f} {identity_similarity(embs, dst_embs):>8.3f}",
              flush=True)


if __name__ == "__main__":
    main()

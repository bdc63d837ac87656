"""XSeg mask quality: IoU of a mask with the true visible face, on people and occluders training never saw.

    python -m bench.xseg_quality                          # fold A, 300 iterations, 128 px, on the CPU
    python -m bench.xseg_quality --iters 1000 --folds A B --resolution 256 --dims 32
    python -m bench.xseg_quality --iters 400 --curve 200 --labels 0 --resolution 64 \
        --set models.xseg.GENERIC_RECIPE '"adam"' --json adam.json    # an experiment: another recipe
    python -m bench.xseg_quality --save-facesets xseg_facesets          # extract once (dlib) ...
    python -m bench.xseg_quality --facesets xseg_facesets ...           # ... and measure where dlib is missing

The held-out test set: faces of two people (tests/data/johns: John_Shimkus, John_Simm) that no training
faceset holds, each with synthetic occluders of kinds the training does not draw (fold A trains on
hand/hair/patch and tests on glasses/object; fold B the reverse; both also train on "shape", plain things in
the face's own colours that no test draws), two on every face (TEST_OCCLUDERS).
The true region is the landmark hull minus the occluders. Rows:
- hull: the landmark hull itself (what we had before XSeg);
- generic: `main.py train --model XSeg --generic` for a fixed number of iterations on the other people
  (tests/data/faces and three of the johns), then `models.xseg.load_xseg(...).masks(...)`;
- +N labels: the same model trained on for as many iterations again after N of its training faces got
  an occluder of the training kinds painted in and a hand label: polygons traced along the visible
  face (region minus occluder: outlines included, holes excluded), as a careful labeller draws them.
  `--label-kinds test` paints the test kinds instead (still on the training people, other draws): what a
  user does whose footage has an obstruction the generic model misses, labelling frames that show it.
`--seen-people` measures every row again on the training people (the dst faceset, fresh draws of the test
kinds), rows marked "(training people)": a user applies the model to the faces it trained on, and the two
sets together tell unseen people from unseen occluder kinds.
Training runs in a child process (this module again, with XSEG_QUALITY_CHILD set) through main.py's own
`main()`; the fold's occluder kinds (set on `models.xseg_targets.occlude`) reach its sample workers too, as
they import this module again when they are spawned (`--sample-workers N`, default 0: in that process).
Generic models are applied as `xseg apply` does: with the faces' landmarks (their mask cut to the hull).
Each training prints its wall seconds and the trainer's median ms/it (to size a rerun); each row goes to
`--json` as soon as it is measured, so a run stopped by a time limit keeps what it measured.
`--parallel` trains the folds side by side (a GPU; with JAX set XLA_PYTHON_CLIENT_PREALLOCATE=false).
`--curve` measures the generic model on the way (the same run); `--set MODULE.NAME JSON` changes a
module constant in the training process and in this one, which builds the model again to measure it (the
recipe, the occluder count, a network constant) for experiments.
Prints a table; nothing passes or fails. A machine's other load changes the seconds, not the IoU.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
JOHNS = REPO / "tests" / "data" / "johns"
SRC_PHOTOS = ["obama.jpg", "obama2.jpg", "grace_hopper.jpg"]
DST_PHOTOS = ["biden.jpg", "astronaut.jpg"]
TRAIN_JOHNS = ["John_Salley", "John_Savage", "John_Schneider"]
TEST_JOHNS = ["John_Shimkus", "John_Simm"]
# "shape" (plain things in the face's own colours, of no kind the tests draw) trains in both folds
FOLDS = {"A": (("hand", "hair", "patch", "shape"), ("glasses", "object")),
         "B": (("glasses", "object", "shape"), ("hand", "hair", "patch"))}
GOAL_IOU, HULL_CEILING = 0.90, 0.75  # the goal: >= 0.90 where the hull gets <= 0.75
# Two occluders on every held-out face: the hull's IoU falls to 0.71 (fold A) and 0.70 (fold B), under the
# goal's 0.75 premise (one or two left fold A's hull at 0.80, too light to tell a mask from the hull).
TEST_OCCLUDERS = (2, 2)

SEEN = " (training people)"  # --seen-people rows
CHILD_ENV = "XSEG_QUALITY_CHILD"  # JSON {kinds, sets, argv}: set for the training process this bench starts


def child_setup(setup: dict) -> None:
    """The fold's occluder kinds and the --set constants, in the training process and in each of its sample
    workers: they are spawned, so they import this module again as their __main__'s module (the training
    process runs it with -m) and this runs at import in every one of them."""
    import functools

    import models.xseg_targets as targets
    if not isinstance(targets.occlude, functools.partial):
        targets.occlude = functools.partial(targets.occlude, kinds=tuple(setup["kinds"]))
    apply_sets(setup["sets"])


def apply_sets(sets: list) -> None:
    """The --set constants (MODULE.NAME, value): in the training process and in this one, which builds the
    model again to measure it (a constant may change the network)."""
    import importlib
    for target, value in sets:
        module, _, attr = target.rpartition(".")
        setattr(importlib.import_module(module), attr, tuple(value) if isinstance(value, list) else value)


def run_child(setup: dict) -> int:
    """The training process: main.py's own `main()` on the bench's argv."""
    import types
    try:  # main.py's parser imports mainscripts.video_ed, which imports ffmpeg-python (absent on GPU machines)
        import ffmpeg  # noqa: F401
    except ImportError:
        sys.modules["ffmpeg"] = types.ModuleType("ffmpeg")
    import main as toolkit
    return toolkit.main(setup["argv"])


if os.environ.get(CHILD_ENV):
    sys.path.insert(0, str(REPO))
    child_setup(json.loads(os.environ[CHILD_ENV]))


def build_facesets(root: Path, size: int) -> tuple[Path, Path, Path]:
    """src, dst (training people) and test (held-out people) aligned folders, made once under `root`."""
    sys.path.insert(0, str(REPO))
    from tests.facesets import extract_faces, make_faceset
    src, dst, test = root / "src" / "aligned", root / "dst" / "aligned", root / "test" / "aligned"
    if not src.is_dir():
        make_faceset(SRC_PHOTOS, root / "src", per_photo=4, size=size)
        make_faceset(DST_PHOTOS, root / "dst", per_photo=4, size=size)
        extract_faces(sorted(p for name in TRAIN_JOHNS for p in (JOHNS / name).glob("*.jpg"))[::2], dst, size)
        extract_faces(sorted(p for name in TEST_JOHNS for p in (JOHNS / name).glob("*.jpg")), test, size)
    return src, dst, test


FACESET_NAMES = ("src", "dst", "test")


def save_facesets(folders: tuple[Path, Path, Path], out: Path) -> None:
    """Copy the three aligned folders (their .jpg faces only) to out/src, out/dst, out/test."""
    for name, folder in zip(FACESET_NAMES, folders):
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for face in sorted(folder.glob("*.jpg")):
            shutil.copy2(face, target / face.name)
    print(f"facesets saved to {out}")


def load_facesets(folder: Path) -> tuple[Path, Path, Path]:
    """The folders --save-facesets wrote; each must hold faces."""
    paths = tuple(folder / name for name in FACESET_NAMES)
    missing = [str(p) for p in paths if not any(p.glob("*.jpg"))]
    if missing:
        raise SystemExit(f"{folder}: no saved facesets in {', '.join(missing)} (make them with --save-facesets)")
    return paths  # type: ignore[return-value]


def held_out_set(test_dir: Path, kinds: tuple[str, ...], variants: int, seed: int,
                 count: tuple[int, int] = TEST_OCCLUDERS) -> tuple[np.ndarray, ...]:
    """(faces uint8 [N,H,W,3], true visible regions bool, hulls bool, landmarks [N,68,2]): each held-out
    face `variants` times with `count` occluders of `kinds` (patches cut from the other test faces)."""
    from facelib.masks import hull_mask
    from faceset.faceset import Faceset
    from models.xseg_targets import occlude
    loaded = [f.load() for f in Faceset.open(test_dir)]
    images = [img for img, _ in loaded]
    rng = np.random.default_rng(seed)
    faces, truths, hulls, marks = [], [], [], []
    for i, (img, meta) in enumerate(loaded):
        hull = hull_mask(img.shape[:2], meta.landmarks, meta.eyebrows_expand_mod)
        donors = images[:i] + images[i + 1:]
        for _ in range(variants):
            out, target = occlude(img, hull, rng, donors, kinds, count, meta.landmarks)
            faces.append(out)
            truths.append(target > 0.5)
            hulls.append(hull > 0.5)
            marks.append(meta.landmarks)
    return np.stack(faces), np.stack(truths), np.stack(hulls), np.stack(marks)


def iou_figures(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean per-face IoU, pooled IoU over all pixels, and the share of faces at the goal or better."""
    inter = (pred & truth).sum(axis=(1, 2)).astype(np.float64)
    union = (pred | truth).sum(axis=(1, 2)).astype(np.float64)
    per_face = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return {"mean": float(per_face.mean()), "pooled": float(inter.sum() / max(union.sum(), 1)),
            "at_goal": float((per_face >= GOAL_IOU).mean())}


def trace_labels(visible: np.ndarray) -> list[dict]:
    """Hand-label-like polygons of a binary region: outer outlines include, holes exclude, each
    simplified to within a pixel as a labeller's clicks would be."""
    contours, hierarchy = cv2.findContours(visible.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c, h in zip(contours, hierarchy[0] if hierarchy is not None else []):
        if cv2.contourArea(c) < 4:
            continue
        pts = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2).astype(np.float32)
        if len(pts) >= 3:
            polys.append({"type": 0 if h[3] >= 0 else 1, "pts": pts})
    return polys


def add_labels(folders: list[Path], count: int, kinds: tuple[str, ...], seed: int) -> int:
    """Paint an occluder of the training kinds into `count` faces spread over `folders` and label them."""
    from dataclasses import replace

    from facelib.masks import hull_mask
    from faceset.face_file import write_aligned_face
    from faceset.faceset import Faceset
    from models.xseg_targets import occlude
    faces = [f for folder in folders for f in Faceset.open(folder)]
    picks = np.linspace(0, len(faces) - 1, min(count, len(faces))).round().astype(int)
    rng = np.random.default_rng(seed)
    for i in picks:
        img, meta = faces[i].load()
        hull = hull_mask(img.shape[:2], meta.landmarks, meta.eyebrows_expand_mod)
        donor = faces[(i + len(faces) // 2) % len(faces)].load()[0]
        out, target = occlude(img, hull, rng, [donor], kinds, (1, 2), meta.landmarks)
        write_aligned_face(faces[i].path, out, replace(meta, seg_ie_polys=trace_labels(target > 0.5)))
    return len(picks)


_ONE_AT_A_TIME = threading.RLock()
STEP_LINE = re.compile(r"(\d+) iterations, median (\d+) ms; waited for data ([\d.]+)%")  # the trainer's last line


def train(model_dir: Path, src: Path, dst: Path, iters: int, kinds: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Train (or go on training) the XSeg model in `model_dir` to iteration `iters`; returns the wall seconds
    (with the process's start and the model's build) and the trainer's median ms per iteration and data wait."""
    argv = ["train", "--model", "XSeg", "--generic", "--training-data-src-dir", str(src),
            "--training-data-dst-dir", str(dst), "--model-dir", str(model_dir), "--target-iteration", str(iters),
            "--silent-start", "--no-preview", "--sample-workers", str(args.sample_workers),
            "--batch-size", str(args.batch_size)]
    if not model_dir.exists():
        argv += ["--resolution", str(args.resolution), "--dims", str(args.dims), "--face-type", "wf"]
    if args.cpu_only:
        argv.append("--cpu-only")
    env = {**os.environ, CHILD_ENV: json.dumps({"kinds": list(kinds), "sets": args.set, "argv": argv})}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.xseg_quality"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    seconds = time.perf_counter() - t0
    found = STEP_LINE.findall(proc.stdout + proc.stderr)
    steps, ms, wait = (int(found[-1][0]), float(found[-1][1]), float(found[-1][2])) if found else (0, float("nan"), float("nan"))
    print(f"[{model_dir.parent.name}] trained to {iters} it: {steps} iterations, {seconds:.0f} s wall, "
          f"median {ms:.0f} ms/it, waited for data {wait:.0f}%", flush=True)
    return {"seconds": seconds, "ms_per_it": ms, "data_wait_pct": wait}


def model_masks(model_dir: Path, sets: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The model's masks of each (faces, landmarks) set as `xseg apply` bakes them (with the faces'
    landmarks, binarised at 0.5); the model is loaded once."""
    from models.xseg import load_xseg
    with _ONE_AT_A_TIME:  # --parallel: the folds' threads do not build Keras models at once
        masker = load_xseg(model_dir)
        return [masker.masks(faces, landmarks) > 0.5 for faces, landmarks in sets]


def run_fold(name: str, root: Path, folders: tuple[Path, Path, Path], args: argparse.Namespace,
             report: Callable[[dict], None]) -> list[dict]:
    """The rows of one fold (hull, generic on the way, +labels), each handed to `report` when measured."""
    train_kinds, test_kinds = FOLDS[name]
    src, dst, test = folders
    faces, truth, hulls, marks = held_out_set(test, test_kinds, args.variants, args.seed, tuple(args.test_occluders))
    rows = [{"fold": name, "mask": "hull", "iters": 0, "train_s": 0.0, **iou_figures(hulls, truth)}]
    work = root / f"fold_{name}"
    shutil.rmtree(work, ignore_errors=True)
    model = work / "model"
    seconds = 0.0
    kinds = {"train": ",".join(train_kinds), "test": ",".join(test_kinds), "faces": len(faces)}
    rows[0].update(kinds)
    report(rows[0])

    seen = None
    if args.seen_people:  # the training people (dst faceset), fresh draws of the test kinds
        seen = held_out_set(dst, test_kinds, args.variants, args.seed + 2, tuple(args.test_occluders))
        row = {"fold": name, "mask": "hull" + SEEN, "iters": 0, "train_s": 0.0, **iou_figures(seen[2], seen[1]), **kinds}
        rows.append(row)
        report(row)

    def measure(mask: str, iters: int, run: dict) -> None:
        sets = [("", faces, truth, marks)] + ([(SEEN, seen[0], seen[1], seen[3])] if seen is not None else [])
        preds = model_masks(model, [(set_faces, set_marks) for _, set_faces, _, set_marks in sets])
        for (suffix, _, set_truth, _), pred in zip(sets, preds):
            row = {"fold": name, "mask": mask + suffix, "iters": iters, "train_s": seconds, "ms_per_it": run["ms_per_it"],
                   "data_wait_pct": run["data_wait_pct"], **iou_figures(pred, set_truth), **kinds}
            rows.append(row)
            report(row)

    for iters in sorted({*args.curve, args.iters}):  # the curve: the same run measured on the way
        if iters > args.iters:
            continue
        run = train(model, src, dst, iters, train_kinds, args)
        seconds += run["seconds"]
        measure("generic", iters, run)
    if args.labels > 0:
        lsrc, ldst = work / "src", work / "dst"
        shutil.copytree(src, lsrc)
        shutil.copytree(dst, ldst)
        label_kinds = test_kinds if args.label_kinds == "test" else train_kinds
        n = add_labels([lsrc, ldst], args.labels, label_kinds, args.seed + 1)
        run = train(model, lsrc, ldst, 2 * args.iters, train_kinds, args)
        seconds += run["seconds"]
        measure(f"generic +{n} labels" + (" (test kinds)" if args.label_kinds == "test" else ""), 2 * args.iters, run)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'fold':4} {'train kinds':18} {'test kinds':18} {'mask':44} {'iters':>6} {'train s':>8} "
          f"{'IoU mean':>9} {'pooled':>7} {'>=0.90':>7} {'ms/it':>6}")
    for r in rows:
        ms = f"{r['ms_per_it']:6.0f}" if "ms_per_it" in r else f"{'':6}"
        print(f"{r['fold']:4} {r['train']:18} {r['test']:18} {r['mask']:44} {r['iters']:6d} {r['train_s']:8.0f} "
              f"{r['mean']:9.3f} {r['pooled']:7.3f} {r['at_goal']:7.0%} {ms}")
    print(f"({rows[0]['faces']} held-out faces per fold; goal: IoU >= {GOAL_IOU} where the hull gets <= {HULL_CEILING})")


def main() -> None:
    if os.environ.get(CHILD_ENV):
        sys.exit(run_child(json.loads(os.environ[CHILD_ENV])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", nargs="+", choices=sorted(FOLDS), default=["A"])
    ap.add_argument("--iters", type=int, default=300, help="training iterations for the generic model (the budget)")
    ap.add_argument("--curve", type=int, nargs="*", default=[], help="also measure at these iterations")
    ap.add_argument("--labels", type=int, default=20, help="hand-labelled faces added for the last row (0: skip)")
    ap.add_argument("--label-kinds", choices=("train", "test"), default="train",
                    help="the occluders painted into the labelled faces: the fold's training kinds, or its test kinds "
                         "(the footage's own obstruction, labelled on the training people)")
    ap.add_argument("--resolution", type=int, default=128, help="XSeg resolution (DFL: 256)")
    ap.add_argument("--dims", type=int, default=16, help="XSeg base channels (DFL: 32)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--parallel", action="store_true",
                    help="train the folds at the same time (a GPU: set XLA_PYTHON_CLIENT_PREALLOCATE=false with JAX)")
    ap.add_argument("--sample-workers", type=int, default=0,
                    help="sample processes per side in training (0: in the training process; a GPU wants several)")
    ap.add_argument("--face-size", type=int, default=128, help="pixel size of the aligned faces")
    ap.add_argument("--variants", type=int, default=2, help="occluded copies of each held-out face")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seen-people", action="store_true",
                    help="also measure every mask on the training people (the dst faceset, fresh draws of the test kinds): "
                         "tells people the training never saw from occluder kinds it never saw")
    ap.add_argument("--test-occluders", type=int, nargs=2, default=TEST_OCCLUDERS, metavar=("MIN", "MAX"),
                    help="occluders on each held-out face")
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("MODULE.NAME", "JSON"),
                    help="set a module constant in the training process (and this one), e.g. models.xseg.RECIPE '\"adam\"' "
                         "or models.xseg_samples.OCCLUDER_COUNT '[1, 3]' (experiments)")
    ap.add_argument("--save-facesets", type=Path, default=None,
                    help="copy the extracted src/dst/test facesets here (to carry them to a machine without dlib)")
    ap.add_argument("--facesets", type=Path, default=None,
                    help="use the facesets saved with --save-facesets instead of extracting them (no dlib needed)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--cpu-only", action="store_true", default=True)
    ap.add_argument("--gpu", dest="cpu_only", action="store_false", help="let training use a GPU")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep facesets and models here (default: a temp dir)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    args.set = [(name, json.loads(value)) for name, value in args.set]
    apply_sets(args.set)
    with tempfile.TemporaryDirectory(prefix="xseg_quality_") as tmp:
        root = args.work_dir or Path(tmp)
        if args.facesets:
            folders = load_facesets(args.facesets)
        else:
            folders = build_facesets(root / "facesets", args.face_size)
        if args.save_facesets:
            save_facesets(folders, args.save_facesets)
        counts = [len(list(f.glob("*.jpg"))) for f in folders]
        print(f"faces: src {counts[0]}, dst {counts[1]} (training people), test {counts[2]} (held-out people)")
        rows: list[dict] = []

        def report(row: dict) -> None:  # each row as it comes: a run stopped by a time limit keeps what it measured
            with _ONE_AT_A_TIME:
                _report(row)

        def _report(row: dict) -> None:
            rows.append(row)
            print(f"[{row['fold']}] {row['mask']} at {row['iters']} it: IoU {row['mean']:.3f}", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"set": args.set, "rows": rows}, indent=1))

        if args.parallel and len(args.folds) > 1:
            with ThreadPoolExecutor(len(args.folds)) as pool:  # threads wait on the training processes
                list(pool.map(lambda fold: run_fold(fold, root, folders, args, report), args.folds))
        else:
            for fold in args.folds:
                run_fold(fold, root, folders, args, report)
        print_table(sorted(rows, key=lambda r: (r["fold"], r["iters"])))


if __name__ == "__main__":
    main()

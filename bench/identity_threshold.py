"""Same-person vs different-person descriptor distances on tests/data/johns, to check the threshold.

Run from the repository root:  .venv/bin/python -m bench.identity_threshold

tests/data/johns holds 5 people x 11 photos (150x150 face chips). For every photo: the default
detector's largest face, its 68 landmarks, dlib's descriptor (no jitter, as per frame during
extraction). Prints the distance distribution of all same-person pairs and all different-person
pairs, the error rates at a few thresholds, and what the filter itself sees: each photo's minimum
(and, for comparison, mean) distance to 1 or 3 references of its own person (the other photos) vs
of another person. Then the obama / obama2 / biden distances the tests rely on.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python bench/identity_threshold.py` too
    sys.path.insert(0, str(ROOT))

from facelib.detectors import get_detector  # noqa: E402
from facelib.identity import DEFAULT_THRESHOLD, embedding, face_distance  # noqa: E402
from facelib.landmarks import landmarks  # noqa: E402

JOHNS = ROOT / "tests" / "data" / "johns"


def descriptors(detector_name: str = "centerface") -> dict[str, list[np.ndarray]]:
    """Person -> descriptors of the photos where a face was found."""
    det = get_detector(detector_name, min_face=20)
    out: dict[str, list[np.ndarray]] = {}
    for person in sorted(p for p in JOHNS.iterdir() if p.is_dir()):
        for path in sorted(person.glob("*.jpg")):
            image = cv2.imread(str(path))
            faces = det.detect(image)
            if not faces:
                print(f"  no face: {path.relative_to(ROOT)}")
                continue
            face = max(faces, key=lambda f: f.area)
            out.setdefault(person.name, []).append(embedding(image, landmarks(image, face)))
    return out


def pair_distances(desc: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    same, diff = [], []
    people = list(desc)
    for p in people:
        same += [face_distance(a, b) for a, b in itertools.combinations(desc[p], 2)]
    for p, q in itertools.combinations(people, 2):
        diff += [face_distance(a, b) for a in desc[p] for b in desc[q]]
    return np.array(same), np.array(diff)


def to_references(desc: dict[str, list[np.ndarray]], n_refs: int, reduce=min) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's min (or mean) distance to the first n_refs other photos of its person / of each
    other person: what `IdentityFilter.distance` sees with n_refs reference photos."""
    same, diff = [], []
    for p, items in desc.items():
        for i, d in enumerate(items):
            own = [x for j, x in enumerate(items) if j != i][:n_refs]
            same.append(reduce([face_distance(d, r) for r in own]))
            for q, other in desc.items():
                if q != p:
                    diff.append(reduce([face_distance(d, r) for r in other[:n_refs]]))
    return np.array(same), np.array(diff)


def describe(name: str, values: np.ndarray) -> str:
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return (f"{name:<10} n={len(values):4d}  mean {values.mean():.3f}  "
            f"min {q[0]:.3f}  p5 {q[1]:.3f}  median {q[2]:.3f}  p95 {q[3]:.3f}  max {q[4]:.3f}")


def main() -> None:
    t0 = time.perf_counter()
    desc = descriptors()
    n = sum(len(v) for v in desc.values())
    print(f"{n} faces of {len(desc)} people in {time.perf_counter() - t0:.1f} s")
    for title, (same, diff) in [("all pairs", pair_distances(desc)),
                                ("min to 1 ref", to_references(desc, 1)),
                                ("min to 3 refs", to_references(desc, 3)),
                                ("mean to 3 refs", to_references(desc, 3, np.mean))]:
        print(f"\n{title}:")
        print("  " + describe("same", same))
        print("  " + describe("different", diff))
        print(f"  margin: smallest different - largest same = {diff.min() - same.max():+.3f}")
        for t in (0.5, 0.55, DEFAULT_THRESHOLD, 0.65):
            print(f"  threshold {t:.2f}: same rejected {np.mean(same > t):6.1%}   "
                  f"different accepted {np.mean(diff <= t):6.1%}")
    faces_photos()


def faces_photos() -> None:
    """The tests' own pair: obama2 as reference for obama, against biden."""
    det = get_detector()
    faces = ROOT / "tests" / "data" / "faces"
    d = {}
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        image = cv2.imread(str(faces / name))
        d[name] = embedding(image, landmarks(image, det.detect(image)[0]))
    print("\ntests/data/faces:")
    for a, b in (("obama.jpg", "obama2.jpg"), ("obama.jpg", "biden.jpg"), ("obama2.jpg", "biden.jpg")):
        print(f"  {a:<11} - {b:<11} {face_distance(d[a], d[b]):.3f}")


if __name__ == "__main__":
    main()

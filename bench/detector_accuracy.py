"""Detector accuracy and speed on the real photos in tests/data, to choose the default detector.

Run from the repository root:  .venv/bin/python -m bench.detector_accuracy

Prints, per detector: recall, unmatched detections (false positives, plus any real face the truth
lacks), ms per 640x480 frame (upright face, and a face-free frame that runs the whole rotation
search); then the CenterFace -> HOG box fit and the landmark error it buys.

Truth:
- dlib_faces: the boxes in *_with_face_landmarks.xml (drawn HOG-style, so tight brow-to-lip squares);
  a detection matches when IoU >= 0.3 or its centre lies inside the truth box.
- faces/: one face each; hand-checked eye centres (see tests/test_detect.py); a detection matches
  when it contains both eye centres and is at most 5 inter-ocular distances wide.
- johns/: 150x150 face chips, one centred face each; a detection matches when its centre is within
  40 px of the image centre.
Landmark error: mean point distance / inter-ocular distance (eye centre to eye centre), in %.

False faces (`--false-faces-only` runs just this part): precision and recall before and after the
plausibility check (facelib.plausibility, extract's --plausibility-threshold), per detector. The
check scores with dlib's HOG model, so it cannot catch dlib-hog's own false faces. Sets:
- faces: the photos above (one-face portraits, the 150x150 chips, the dlib_faces crowd shots);
- no people: scikit-image's sample photos without a person (coffee, rocket, coins, a motorbike, ...),
  at 1x and 2x;
- animals: scikit-image's cat photos (chelsea, cat) and horse silhouette, at 1x and 2x (no dog photo
  ships with any installed package);
- drawings: drawn faces (smileys and a cartoon head made with OpenCV) and scikit-image's text, page
  and logo images;
- synthetic: noise, blobs and stripes.
Every detection on the non-face sets is a false face; on the face sets, an unmatched detection is one.
"""
from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python bench/detector_accuracy.py` too
    sys.path.insert(0, str(ROOT))

from facelib.detected_face import DetectedFace  # noqa: E402
from facelib.detectors import get_detector  # noqa: E402
from facelib.landmarks import BOX_FITS, BoxFit, head_turn, inter_ocular, landmarks, landmarks_from_box  # noqa: E402

DATA = ROOT / "tests" / "data"
MIN_FACE = 20  # below the toolkit default (32): the dlib_faces crowd shots have 37 px faces

# Hand-checked eye centres (left-in-image eye first), as in tests/test_detect.py.
FACE_EYES = {
    "obama.jpg": ((444, 216), (548, 215)),
    "grace_hopper.jpg": ((224, 192), (305, 189)),
    "astronaut.jpg": ((203, 102), (246, 104)),
    "biden.jpg": ((535, 324), (652, 351)),
    "obama2.jpg": ((252, 373), (370, 383)),
}


@dataclass
class Photo:
    path: Path
    kind: str  # "xml", "eyes", "chip"
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)  # xml landmarks per box
    eyes: tuple | None = None


def load_photos() -> list[Photo]:
    photos = []
    for xml in sorted((DATA / "dlib_faces").glob("*_with_face_landmarks.xml")):
        for image in ET.parse(xml).getroot().iter("image"):
            photo = Photo(DATA / "dlib_faces" / image.get("file"), "xml")
            for box in image.iter("box"):
                l, t = float(box.get("left")), float(box.get("top"))
                photo.boxes.append((l, t, l + float(box.get("width")), t + float(box.get("height"))))
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                photo.points.append(np.array([[float(p.get("x")), float(p.get("y"))] for p in parts]))
            photos.append(photo)
    for name, eyes in FACE_EYES.items():
        photos.append(Photo(DATA / "faces" / name, "eyes", eyes=eyes))
    for path in sorted((DATA / "johns").glob("*/*.jpg")):
        photos.append(Photo(path, "chip"))
    return photos


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matches(photo: Photo, image: np.ndarray, face: DetectedFace, truth_index: int) -> bool:
    cx, cy = face.centre
    if photo.kind == "xml":
        t = photo.boxes[truth_index]
        return iou(face.rect, t) >= 0.3 or (t[0] <= cx <= t[2] and t[1] <= cy <= t[3])
    if photo.kind == "eyes":
        (x1, y1), (x2, y2) = photo.eyes
        l, t, r, b = face.rect
        inside = all(l <= x <= r and t <= y <= b for x, y in photo.eyes)
        return inside and face.width <= 5 * np.hypot(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    return np.hypot(cx - w / 2, cy - h / 2) <= 40


def truth_count(photo: Photo) -> int:
    return len(photo.boxes) if photo.kind == "xml" else 1


def assign(photo, image, faces) -> tuple[dict[int, DetectedFace], list[DetectedFace]]:
    """Greedy one-to-one matching of detections (largest first) to truth faces."""
    found: dict[int, DetectedFace] = {}
    extra = []
    for face in faces:
        for i in range(truth_count(photo)):
            if i not in found and matches(photo, image, face, i):
                found[i] = face
                break
        else:
            extra.append(face)
    return found, extra


def frame_640x480(image: np.ndarray) -> np.ndarray:
    """The photo letterboxed into a 640x480 frame (the timing unit)."""
    h, w = image.shape[:2]
    k = min(640 / w, 480 / h)
    small = cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def time_ms(detector, frames, repeat=1) -> float:
    detector.detect(frames[0])  # load the model outside the timing
    t = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            detector.detect(f)
    return (time.perf_counter() - t) * 1000 / (repeat * len(frames))


def fit_box(pairs, use_turn: bool = True) -> BoxFit:
    """Least-squares BoxFit from (detector face, HOG rect) pairs."""
    src = np.array([p[0].rect for p in pairs], float)
    dst = np.array([p[1] for p in pairs], float)
    w, h = src[:, 2] - src[:, 0], src[:, 3] - src[:, 1]
    turn = np.array([head_turn(p[0].rect, p[0].keypoints) for p in pairs]) if use_turn else np.zeros(len(pairs))
    shift = ((dst[:, 0] + dst[:, 2]) - (src[:, 0] + src[:, 2])) / 2 / w  # in box widths
    (dx, dx_turn), *_ = np.linalg.lstsq(np.stack([np.ones_like(turn), turn], 1), shift, rcond=None)
    dy = np.sum(((dst[:, 1] + dst[:, 3]) - (src[:, 1] + src[:, 3])) / 2 * h) / np.sum(h * h)
    side = ((dst[:, 2] - dst[:, 0]) + (dst[:, 3] - dst[:, 1])) / 2
    (kw, kh), *_ = np.linalg.lstsq(np.stack([w, h], 1), side, rcond=None)
    return BoxFit(float(dx), float(dy), float(kw), float(kh), float(dx_turn))


def nme(points: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(points - ref, axis=1)) / inter_ocular(ref) * 100)


def stats(values) -> str:
    v = np.asarray(values)
    return (f"mean {v.mean():5.2f}%  median {np.median(v):5.2f}%  p90 {np.percentile(v, 90):5.2f}%  "
            f"max {v.max():6.2f}%  (n={len(v)})")


def _bgr(image: np.ndarray) -> np.ndarray:
    """A scikit-image sample as an 8-bit BGR frame."""
    im = np.asarray(image)
    if im.dtype == bool:
        im = im.astype(np.uint8) * 255
    elif im.dtype != np.uint8:
        im = (255 * (im - im.min()) / max(float(np.ptp(im)), 1e-9)).astype(np.uint8)
    if im.ndim == 2:
        return cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(im[:, :, 2::-1])


def _drawings() -> list[tuple[str, np.ndarray]]:
    """Drawn faces: smileys on plain and busy backgrounds, and a cartoon head."""
    out = []
    rng = np.random.default_rng(1)
    for k in range(4):
        img = np.full((360, 480, 3), 255 if k % 2 == 0 else 0, np.uint8)
        if k >= 2:
            img = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)
        c, r = (240, 180), 110 - 10 * k
        cv2.circle(img, c, r, (0, 220, 255), -1)
        cv2.circle(img, c, r, (0, 0, 0), 3)
        for dx in (-r // 3, r // 3):
            cv2.ellipse(img, (c[0] + dx, c[1] - r // 4), (r // 10, r // 6), 0, 0, 360, (0, 0, 0), -1)
        cv2.ellipse(img, (c[0], c[1] + r // 5), (r // 2, r // 3), 0, 20, 160, (0, 0, 0), 4)
        out.append((f"smiley{k}", img))
    head = np.full((400, 400, 3), 230, np.uint8)
    cv2.ellipse(head, (200, 210), (120, 150), 0, 0, 360, (160, 190, 230), -1)
    for dx in (-45, 45):
        cv2.ellipse(head, (200 + dx, 180), (25, 14), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(head, (200 + dx, 180), 9, (60, 40, 20), -1)
        cv2.line(head, (200 + dx - 30, 150), (200 + dx + 30, 148), (40, 40, 40), 6)
    cv2.line(head, (200, 190), (190, 250), (120, 140, 190), 4)
    cv2.ellipse(head, (200, 290), (45, 15), 0, 0, 180, (60, 60, 170), 5)
    out.append(("cartoon", head))
    return out


def _synthetic() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    blobs = cv2.GaussianBlur(noise, (0, 0), 12)
    blobs = cv2.normalize(blobs, None, 0, 255, cv2.NORM_MINMAX)
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::16] = 255
    stripes = cv2.GaussianBlur(stripes, (0, 0), 3)
    return [("noise", noise), ("blobs", blobs), ("stripes", stripes)]


def negative_sets() -> dict[str, list[tuple[str, np.ndarray]]]:
    import skimage.data as sk
    sets: dict[str, list[tuple[str, np.ndarray]]] = {"no people": [], "animals": [], "drawings": [], "synthetic": []}
    for group, names in (("no people", ["coffee", "rocket", "coins", "stereo_motorcycle", "hubble_deep_field",
                                        "immunohistochemistry", "brick", "grass", "gravel", "colorwheel", "clock",
                                        "moon", "retina"]),
                         ("animals", ["chelsea", "cat", "horse"]), ("drawings", ["text", "page", "logo"])):
        for name in names:
            image = getattr(sk, name)()
            if isinstance(image, tuple):  # stereo pairs
                image = image[0]
            bgr = _bgr(image)
            for scale in (1.0, 2.0):
                sets[group].append((f"{name}@{scale:g}x", bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale)))
    sets["drawings"] += _drawings()
    sets["synthetic"] += _synthetic()
    return sets


def false_faces() -> None:
    """Precision and recall before and after the plausibility check (see the module docstring)."""
    from facelib.plausibility import DEFAULT_THRESHOLD, score

    photos = load_photos()
    negatives = negative_sets()
    print(f"\nFalse faces: plausibility threshold {DEFAULT_THRESHOLD} (facelib/plausibility.py)")
    print(f"{'detector':<11} {'thr':>4} {'set':<10} {'images':>6} {'true':>5} {'false':>6} "
          f"{'true after':>10} {'false after':>11}")
    for name in ("centerface", "dlib-hog"):
        for det in (get_detector(name, min_face=MIN_FACE),):
            totals = {"tp": 0, "fp": 0, "tp_after": 0, "fp_after": 0, "truth": 0}
            rows = []
            face_row = [0, 0, 0, 0]
            for p in photos:
                image = cv2.imread(str(p.path))
                found, extra = assign(p, image, det.detect(image))
                keep = lambda f: score(image, landmarks(image, f)) >= DEFAULT_THRESHOLD  # noqa: E731
                face_row[0] += len(found)
                face_row[1] += len(extra)
                face_row[2] += sum(keep(f) for f in found.values())
                face_row[3] += sum(keep(f) for f in extra)
                totals["truth"] += truth_count(p)
            rows.append(("faces", len(photos), *face_row))
            for group, images in negatives.items():
                fp = fp_after = 0
                for _label, image in images:
                    faces = det.detect(image)
                    fp += len(faces)
                    fp_after += sum(score(image, landmarks(image, f)) >= DEFAULT_THRESHOLD for f in faces)
                rows.append((group, len(images), 0, fp, 0, fp_after))
            for group, n, tp, fp, tpa, fpa in rows:
                print(f"{name:<11} {det.threshold:>4.2f} {group:<10} {n:>6} {tp:>5} {fp:>6} {tpa:>10} {fpa:>11}")
                totals["tp"] += tp
                totals["fp"] += fp
                totals["tp_after"] += tpa
                totals["fp_after"] += fpa
            t = totals
            prec = lambda tp, fp: tp / max(tp + fp, 1)  # noqa: E731
            print(f"{'':<16} precision {prec(t['tp'], t['fp']):.1%} -> {prec(t['tp_after'], t['fp_after']):.1%}, "
                  f"recall {t['tp'] / t['truth']:.1%} -> {t['tp_after'] / t['truth']:.1%} "
                  f"({t['truth']} faces, false faces {t['fp']} -> {t['fp_after']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--false-faces-only", action="store_true", help="only the false-face part")
    args = ap.parse_args()
    if args.false_faces_only:
        false_faces()
        return
    cv2.setNumThreads(2)
    photos = load_photos()
    images = {p.path: cv2.imread(str(p.path)) for p in photos}
    names = ["centerface", "dlib-hog"]
    results: dict[str, dict[Path, tuple[dict, list]]] = {}

    print(f"{len(photos)} photos, {sum(truth_count(p) for p in photos)} faces; min_face={MIN_FACE}px\n")
    print(f"{'detector':<11} {'recall xml':>11} {'faces/':>7} {'johns':>7} {'all':>7} {'unmatched':>9} "
          f"{'ms/frame':>9} {'ms no-face':>10}")
    frames = [frame_640x480(images[p.path]) for p in photos if p.kind == "eyes"]
    blank = [np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    for name in names:
        det = get_detector(name, min_face=MIN_FACE)
        per = {}
        for p in photos:
            per[p.path] = assign(p, images[p.path], det.detect(images[p.path]))
        results[name] = per
        rec = {}
        for kind in ("xml", "eyes", "chip"):
            sel = [p for p in photos if p.kind == kind]
            rec[kind] = (sum(len(per[p.path][0]) for p in sel), sum(truth_count(p) for p in sel))
        hit = sum(v[0] for v in rec.values())
        tot = sum(v[1] for v in rec.values())
        unmatched = sum(len(per[p.path][1]) for p in photos)
        upright = time_ms(get_detector(name, min_face=MIN_FACE, rotations=(0,)), frames, repeat=3)
        noface = time_ms(get_detector(name, min_face=MIN_FACE), blank, repeat=3)
        cells = [f"{rec[k][0]}/{rec[k][1]}" for k in ("xml", "eyes", "chip")]
        print(f"{name:<11} {cells[0]:>11} {cells[1]:>7} {cells[2]:>7} {hit / tot:>6.1%} {unmatched:>9} "
              f"{upright:>9.1f} {noface:>10.1f}")
        for p in photos:
            for f in per[p.path][1]:
                print(f"    unmatched: {p.path.relative_to(DATA)} rect={tuple(round(v) for v in f.rect)} "
                      f"score={f.score:.2f}")

    # --- box fit: pair each CenterFace box with the HOG box of the same face -------------------
    pairs = []  # (photo, truth index, cf face, hog face)
    for p in photos:
        cf, hog = results["centerface"][p.path][0], results["dlib-hog"][p.path][0]
        for i in set(cf) & set(hog):
            pairs.append((p, i, cf[i], hog[i]))
    fit_all = fit_box([(c, h.rect) for _, _, c, h in pairs])
    fit_plain = fit_box([(c, h.rect) for _, _, c, h in pairs], use_turn=False)
    print(f"\nBox fit CenterFace -> HOG on {len(pairs)} faces found by both: {fit_all}")
    print(f"  without the head-turn term: {fit_plain}")
    print(f"  in landmarks.py now: {BOX_FITS['centerface']}")

    # two-fold cross-validation: fit on even-numbered faces, test on odd, and the other way round
    folds = [pairs[0::2], pairs[1::2]]
    cv_fit, cv_plain = {}, {}
    for k in (0, 1):
        f = fit_box([(c, h.rect) for _, _, c, h in folds[1 - k]])
        g = fit_box([(c, h.rect) for _, _, c, h in folds[1 - k]], use_turn=False)
        for item in folds[k]:
            cv_fit[id(item)], cv_plain[id(item)] = f, g

    errs = {"raw": [], "no-turn fit (CV)": [], "fit (all data)": [], "fit (2-fold CV)": [],
            "fit in landmarks.py": []}
    hog_vs_xml, cf_vs_xml, xmlbox_vs_xml = [], [], []
    for item in pairs:
        p, i, c, h = item
        img = images[p.path]
        ref = landmarks(img, h)
        errs["raw"].append(nme(landmarks(img, c, fit_box=False), ref))
        errs["no-turn fit (CV)"].append(nme(landmarks_from_box(img, cv_plain[id(item)].apply(c.rect)), ref))
        errs["fit (all data)"].append(nme(landmarks_from_box(img, fit_all.apply(c.rect, c.keypoints)), ref))
        errs["fit (2-fold CV)"].append(
            nme(landmarks_from_box(img, cv_fit[id(item)].apply(c.rect, c.keypoints)), ref))
        errs["fit in landmarks.py"].append(nme(landmarks(img, c), ref))
        if p.kind == "xml":
            truth = p.points[i]
            hog_vs_xml.append(nme(ref, truth))
            cf_vs_xml.append(nme(landmarks_from_box(img, cv_fit[id(item)].apply(c.rect, c.keypoints)), truth))
            xmlbox_vs_xml.append(nme(landmarks_from_box(img, p.boxes[i]), truth))
    print("\nLandmark error, predictor(CenterFace box) vs predictor(HOG box), % of inter-ocular distance:")
    for k, v in errs.items():
        print(f"  CenterFace box {k:<16} {stats(v)}")
    print("Landmark error vs the dlib XML landmarks (dlib_faces only; the XML was made by this predictor):")
    print(f"  predictor(XML box)             {stats(xmlbox_vs_xml)}")
    print(f"  predictor(HOG box)             {stats(hog_vs_xml)}")
    print(f"  predictor(CenterFace, CV fit)  {stats(cf_vs_xml)}")
    false_faces()


if __name__ == "__main__":
    main()

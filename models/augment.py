"""Training samples from faceset records: one face decoded at the model's resolution, then augmented.

Exists so that what a training sample looks like is one job, apart from reading the faceset index
(`models.sample_set`) and from moving batches between processes (`models.batch_stream`):
- `SampleSpec` says what one side (src or dst) of a model trains on and how it is augmented;
- `_load_face` decodes a face once at the model's resolution (re-cropped when the faceset's face
  type is wider than the model's) with its face and eyes+mouth masks;
- `_Producer` draws faces (`_Order`: shuffled epochs, optionally by yaw bin), keeps decoded faces
  in a cache and fills `Batch`es: the network input (random warp + affine + flip + HSV, optional
  colour transfer), the target (same affine and flip, no warp) and the two masks;
- `preview_batch` gives the same outputs without augmentation, for the trainer's preview rows.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from core.errors import UserError
from core.warp import gen_warp_params, warp_image
from facelib.crop import CropSpec
from facelib.face_type import FaceType
from facelib.masks import eyes_mouth_mask, face_mask
from faceset.face_file import meta_from_jpeg_bytes
from models.sample_set import FaceRecord, check_face_type, face_yaw

CT_MODES = ("rct", "lct", "mkl", "idt", "sot")
YAW_BINS = 128  # uniform_yaw: DFL's bin count
MASK_CUTOFF = 0.5  # the eyes+mouth mask is kept where the face mask is above this


@dataclass(frozen=True)
class SampleSpec:
    """What one side (src or dst) of a model trains on, and how its inputs are augmented."""

    resolution: int
    face_type: FaceType  # the enum; option files' names are converted where they are read
    random_warp: bool = True
    random_flip: bool = False
    random_hsv_power: float = 0.0  # input only: hue ±360·a/2, saturation and value ±a/2
    ct_mode: str | None = None  # colour-transfer each face towards a random ct_source face
    scale_range: tuple[float, float] = (-0.05, 0.05)  # SAEHD and AMP use (-0.15, 0.15)
    uniform_yaw: bool = False
    eyes_mouth: bool = True  # produce em_mask (zeros when off)
    target: str = "face"  # "face": face-swap samples; "xseg": (augmented face, segmentation target) pairs
    generic: bool = False  # xseg: unlabelled faces train on program-made targets (models.xseg_samples)
    hull_loss: bool = False  # xseg: a program-made target is scored inside the face's landmark hull only

    def __post_init__(self) -> None:
        if int(self.resolution) < 16:
            raise ValueError(f"resolution must be at least 16 px, got {self.resolution}")
        if not isinstance(self.face_type, FaceType):
            raise ValueError(f"face_type must be a FaceType, got {type(self.face_type).__name__}")
        if self.ct_mode is not None and self.ct_mode not in CT_MODES:
            raise ValueError(f"unknown ct_mode {self.ct_mode!r} (choose from {', '.join(CT_MODES)} or None)")
        if not 0.0 <= float(self.random_hsv_power) <= 1.0:
            raise ValueError(f"random_hsv_power must be in 0..1, got {self.random_hsv_power}")
        if self.target not in ("face", "xseg"):
            raise ValueError(f"target must be 'face' or 'xseg', got {self.target!r}")


@dataclass
class Batch:
    """N training samples at resolution R; float32, BGR, 0..1."""

    warped: np.ndarray  # (N, R, R, 3): the network input (random warp + affine + flip + HSV)
    target: np.ndarray  # (N, R, R, 3): the same affine and flip, no warp
    mask: np.ndarray  # (N, R, R, 1): the face mask in target geometry (xseg: the segmentation target)
    em_mask: np.ndarray  # (N, R, R, 1): eyes and mouth inside the face mask, each sample's max is 1
    # (xseg: the per-pixel loss weight, 1 where the target is known)

    def __len__(self) -> int:
        return int(self.warped.shape[0])


def _empty_batch(n: int, res: int) -> Batch:
    return Batch(np.zeros((n, res, res, 3), np.float32), np.zeros((n, res, res, 3), np.float32),
                 np.zeros((n, res, res, 1), np.float32), np.zeros((n, res, res, 1), np.float32))


# ---- one face at the model's resolution --------------------------------------------------------


@dataclass
class _Face:
    image: np.ndarray  # (R, R, 3) uint8 BGR
    masks: np.ndarray | None  # (R, R, 2) uint8: face mask, eyes+mouth mask (xseg: label, hull), 0..255
    labelled: bool = False  # xseg: the face carries hand-drawn labels
    landmarks: np.ndarray | None = None  # (68, 2) float32 in `image`'s pixels (xseg: where occluders go)

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + (0 if self.masks is None else self.masks.nbytes)


def _load_face(rec: FaceRecord, target: FaceType, res: int, masks: bool, eyes_mouth: bool,
               mask_fn: Callable[[Any, tuple[int, int]], tuple[np.ndarray, bool]] | None = None) -> _Face:
    """Decode a face and bring it to `res` px of the `target` face type: resized when its type is the
    target's, re-cropped from its landmarks otherwise (DFL's rule). `mask_fn(meta, (h, w))` replaces the
    face and eyes+mouth masks with two other channels (and whether the face is labelled)."""
    data = rec.read_bytes()
    meta = meta_from_jpeg_bytes(data, rec.where)
    if meta is None:
        raise UserError("the face lost its metadata while training", rec.where)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise UserError("corrupt JPEG (OpenCV cannot decode the image)", rec.where)
    h, w = image.shape[:2]
    stack, labelled = None, False
    if mask_fn is not None:
        channels, labelled = mask_fn(meta, (h, w))
        stack = np.rint(channels * 255.0).astype(np.uint8)
    elif masks:
        full = face_mask((h, w), meta)
        if eyes_mouth:
            em = eyes_mouth_mask((h, w), meta.landmarks) * (full > MASK_CUTOFF)
        else:
            em = np.zeros_like(full)
        stack = np.rint(np.dstack([full, em]) * 255.0).astype(np.uint8)

    if meta.face_type == target:
        shrink = cv2.INTER_AREA if res < min(h, w) else cv2.INTER_CUBIC
        image = cv2.resize(image, (res, res), interpolation=shrink)
        if stack is not None:
            stack = cv2.resize(stack, (res, res), interpolation=cv2.INTER_LINEAR)
        landmarks = (meta.landmarks + 0.5) * np.array([res / w, res / h]) - 0.5  # cv2.resize's pixel centres
    else:
        crop = CropSpec(res, target).of(meta.landmarks)
        landmarks = crop.to_face(meta.landmarks)
        if stack is not None:
            stack = crop.warp(stack, cv2.INTER_LINEAR)
        mat, scale = crop.mat, crop.pixel_scale
        if scale < 0.5:  # shrink most of the way by area averaging, so the crop does not alias
            f = 2.0 * scale
            small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            mat = mat.copy()
            mat[:, :2] /= np.array([small.shape[1] / w, small.shape[0] / h])
            image = small
        image = cv2.warpAffine(image, mat, (res, res), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return _Face(np.ascontiguousarray(image), stack, labelled, np.asarray(landmarks, np.float32))


def _to_float(img_u8: np.ndarray) -> np.ndarray:
    return np.multiply(img_u8, np.float32(1.0 / 255.0), dtype=np.float32)


def _hsv_shift(img: np.ndarray, rng: np.random.Generator, power: float) -> np.ndarray:
    """Random hue (±360·a/2 degrees), saturation and value (±a/2) shift of a float32 BGR 0..1 image."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # float32: H in 0..360, S and V in 0..1
    hue = rng.uniform(-180.0 * power, 180.0 * power)
    sat, val = rng.uniform(-power / 2, power / 2, size=2)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(hue), np.float32(360.0))
    hsv[..., 1] = np.clip(hsv[..., 1] + np.float32(sat), 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + np.float32(val), 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), 0.0, 1.0)


# ---- drawing samples -------------------------------------------------------------------------


class _Order:
    """Endless shuffled epochs over some indices; with yaws, a shuffled round of yaw bins first."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator, yaws: np.ndarray | None = None):
        self.rng = rng
        if yaws is None or len(indices) < 2 or np.ptp(yaws) == 0:
            self.bins = [np.asarray(indices)]
        else:
            edges = np.linspace(yaws.min(), yaws.max(), YAW_BINS + 1)
            which = np.clip(np.digitize(yaws, edges[1:-1]), 0, YAW_BINS - 1)
            self.bins = [np.asarray(indices)[which == b] for b in range(YAW_BINS) if np.any(which == b)]
        self.cycles: list[deque] = [deque() for _ in self.bins]
        self.bin_cycle: deque = deque()

    def next(self) -> int:
        b = 0
        if len(self.bins) > 1:
            if not self.bin_cycle:
                self.bin_cycle.extend(self.rng.permutation(len(self.bins)).tolist())
            b = self.bin_cycle.popleft()
        cycle = self.cycles[b]
        if not cycle:
            cycle.extend(self.rng.permutation(self.bins[b]).tolist())
        return cycle.popleft()


class _Producer:
    """Makes batches from some faces; owns the decoded-face cache (one per process)."""

    def __init__(self, records: Sequence[FaceRecord], spec: SampleSpec, batch_size: int, seed: Any,
                 ct_source: Sequence[FaceRecord] | None, cache_bytes: int):
        self.records = list(records)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.target = spec.face_type
        self.rng = np.random.default_rng(seed)
        yaws = np.array([face_yaw(r.landmarks) for r in self.records]) if spec.uniform_yaw else None
        self.order = _Order(np.arange(len(self.records)), self.rng, yaws)
        self.ct_source = list(ct_source or []) if spec.ct_mode else []
        self.cache: dict[int, _Face] = {}
        self.ct_cache: dict[int, _Face] = {}
        self.cache_left = int(cache_bytes)
        self._color_transfer = None
        self._mask_fn = None
        if spec.target == "xseg":  # segmentation pairs: models.xseg_samples draws and augments them
            from models.xseg_samples import xseg_masks
            self._mask_fn = xseg_masks
        if self.ct_source:
            from core.color_transfer import color_transfer  # imported only when a model uses ct_mode
            self._color_transfer = color_transfer

    def _cached(self, cache: dict[int, _Face], rec: FaceRecord, i: int, masks: bool) -> _Face:
        face = cache.get(i)
        if face is None:
            face = _load_face(rec, self.target, self.spec.resolution, masks, self.spec.eyes_mouth, self._mask_fn)
            if face.nbytes <= self.cache_left:  # uniform random access: any full cache is as good as LRU
                cache[i] = face
                self.cache_left -= face.nbytes
        return face

    def fill(self, out: Batch) -> None:
        for k in range(len(out)):
            self._sample_into(out, k)

    def next_batch(self) -> Batch:
        out = _empty_batch(self.batch_size, self.spec.resolution)
        self.fill(out)
        return out

    def _sample_into(self, out: Batch, k: int) -> None:
        spec = self.spec
        i = self.order.next()
        face = self._cached(self.cache, self.records[i], i, masks=True)
        # One seed per sample: input and target share the affine and flip; only the input is warped.
        rng = np.random.default_rng(int(self.rng.integers(1 << 63)))
        if self._mask_fn is not None:
            from models.xseg_samples import xseg_sample_into
            j = int(rng.integers(len(self.records)))  # another face: backgrounds and occluders come from it
            xseg_sample_into(out, k, face, self._cached(self.cache, self.records[j], j, masks=True), spec, rng)
            return
        img = _to_float(face.image)
        if self._color_transfer is not None:
            j = int(rng.integers(len(self.ct_source)))
            ref = self._cached(self.ct_cache, self.ct_source[j], j, masks=False)
            img = np.clip(self._color_transfer(spec.ct_mode, img, _to_float(ref.image)), 0.0, 1.0).astype(np.float32)
        params = gen_warp_params(spec.resolution, rng, flip=spec.random_flip, scale_range=spec.scale_range)
        warped = warp_image(img, params, warp=spec.random_warp, transform=True, border_replicate=True)
        np.clip(warped, 0.0, 1.0, out=warped)
        if spec.random_hsv_power > 0:
            warped = _hsv_shift(warped, rng, spec.random_hsv_power)
        out.warped[k] = warped
        target = warp_image(img, params, warp=False, transform=True, border_replicate=True)
        np.clip(target, 0.0, 1.0, out=out.target[k])
        masks = _to_float(warp_image(face.masks, params, warp=False, transform=True, border_replicate=False,
                                     interpolation=cv2.INTER_LINEAR))
        out.mask[k, ..., 0] = masks[..., 0]
        _put_em(out.em_mask[k, ..., 0], masks[..., 1])


def _put_em(dst: np.ndarray, em: np.ndarray) -> None:
    """The eyes+mouth mask renormalised to a maximum of 1 (after warping, as DFL does)."""
    peak = float(em.max())
    if peak > 0:
        np.multiply(em, np.float32(1.0 / peak), out=dst)
    else:
        dst[...] = 0.0


def preview_batch(records: Sequence[FaceRecord], spec: SampleSpec, n: int, seed: int = 0) -> Batch:
    """`n` faces (chosen by `seed`) at the model's resolution and face type, with no augmentation:
    `warped` and `target` are the same image. For the trainer's preview rows (xseg: `mask` is the label or the
    hull, `em_mask` the hull)."""
    records = list(records)
    if not records:
        raise UserError("no faces for the preview")
    check_face_type(records, spec.face_type)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=int(n), replace=len(records) < n)
    out = _empty_batch(int(n), spec.resolution)
    mask_fn = None
    if spec.target == "xseg":
        from models.xseg_samples import xseg_masks
        mask_fn = xseg_masks
    for k, i in enumerate(picks):
        face = _load_face(records[int(i)], spec.face_type, spec.resolution, True, spec.eyes_mouth, mask_fn)
        out.target[k] = _to_float(face.image)
        masks = _to_float(face.masks)
        if mask_fn is not None:  # xseg: the hand label when there is one, else the landmark hull
            out.mask[k, ..., 0] = masks[..., 0] if face.labelled else masks[..., 1]
            out.em_mask[k, ..., 0] = masks[..., 1]  # the hull, which a generic model's mask is cut to
            continue
        out.mask[k, ..., 0] = masks[..., 0]
        _put_em(out.em_mask[k, ..., 0], masks[..., 1])
    out.warped[...] = out.target
    return out


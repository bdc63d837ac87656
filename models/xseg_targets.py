"""XSeg training targets: masks from hand-drawn labels, synthetic occlusion for zero-label training,
and DFL's background augmentation. Pure numpy/OpenCV (the sample workers run it; no Keras here).

The target of a face is "the face pixels you can see". With labels that is the labels' mask; without,
it is the landmark hull minus what `occlude` draws on top (models/xseg_occluders.py), so the network
learns to leave hands, hair, glasses and objects out of the mask. Everything random comes from the
caller's `np.random.Generator`: a seed gives the same sample.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelib.crop import CropSpec
from facelib.masks import has_include_polygon, polygons_mask
from faceset.meta import FaceMeta
from models.xseg_occluders import DRAWERS, Layer, face_geometry

OCCLUDER_KINDS = ("patch", "hand", "hair", "glasses", "object", "shape")


def label_face_size(meta: FaceMeta) -> int:
    """The pixel size of the face the labels were drawn on, from its landmarks: the alignment of a face's
    own landmarks at size 1 scales by 1/size (DFL's crop geometry, one source), so this needs no image."""
    return max(1, int(round(1.0 / CropSpec(1, meta.face_type).of(meta.landmarks).pixel_scale)))


def labelled_target(meta: FaceMeta, size: int, face_size: int | None = None) -> np.ndarray | None:
    """The labels' mask (include polygons minus exclude polygons) at `size` x `size`, float32 0..1;
    None when the face has no include polygon. The polygons are in the face's own pixels: they are
    rasterised at the face's size (`face_size`, else read from its landmarks) and the mask resized."""
    if not has_include_polygon(meta.seg_ie_polys):
        return None
    own = int(face_size) if face_size else label_face_size(meta)
    mask = polygons_mask((own, own), meta.seg_ie_polys)
    if own != size:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA if own > size else cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def occluder_layers(face: np.ndarray, region: np.ndarray, rng: np.random.Generator,
                    donors: Sequence[np.ndarray] = (), kinds: Sequence[str] = OCCLUDER_KINDS,
                    count: tuple[int, int] = (0, 3), landmarks: np.ndarray | None = None) -> list[Layer]:
    """Between count[0] and count[1] (inclusive) occluders of the given kinds, drawn for this face."""
    unknown = [k for k in kinds if k not in DRAWERS]
    if unknown or not kinds:
        raise ValueError(f"occluder kinds must be among {OCCLUDER_KINDS}, got {tuple(kinds)}")
    lo, hi = int(count[0]), int(count[1])
    n = int(rng.integers(lo, hi + 1)) if hi > lo else lo
    if n <= 0:
        return []
    geo = face_geometry(region, landmarks)
    return [DRAWERS[kinds[int(rng.integers(len(kinds)))]](face, geo, rng, donors) for _ in range(n)]


def composite(face: np.ndarray, region: np.ndarray, layers: Sequence[Layer]) -> tuple[np.ndarray, np.ndarray]:
    """Draw the layers over the face in order; the target is the region less what they cover.
    Pixels no layer touches keep their exact values."""
    region = np.clip(np.asarray(region, np.float32), 0.0, 1.0)
    if not layers:
        return face.copy(), region.copy()
    out = face.astype(np.float32)
    seen = np.ones(region.shape, np.float32)  # how much of the face still shows through
    touched = np.zeros(region.shape, bool)
    for layer in layers:
        a = layer.alpha[..., None]
        out = out * (1 - a) + layer.colour * a
        seen *= 1.0 - layer.cover
        touched |= layer.alpha > 0
    result = np.where(touched[..., None], np.clip(np.rint(out), 0, 255).astype(np.uint8), face)
    return result, (region * seen).astype(np.float32)


def occlude(face: np.ndarray, region: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray] = (),
            kinds: Sequence[str] = OCCLUDER_KINDS, count: tuple[int, int] = (0, 3),
            landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A face with synthetic occluders drawn on it, and its target: `region` (the visible face, e.g. the
    landmark hull) minus what they cover (soft at their edges). `donors` are other face images that
    patches may be cut from; `landmarks` (68, face pixels) put glasses on the eyes and hands on the mouth."""
    if face.ndim != 3 or face.shape[2] != 3 or face.shape[:2] != region.shape[:2]:
        raise ValueError(f"occlude needs an HxWx3 face and an HxW region, got {face.shape} and {region.shape}")
    return composite(face, region, occluder_layers(face, region, rng, donors, kinds, count, landmarks))


def paste_background(face: np.ndarray, target: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DFL's background augmentation: what lies outside the (slightly grown, feathered) target comes
    from another image, turned, scaled, flipped and recoloured, blended at a random strength, so the
    network cannot learn the mask from the background. Pixels inside the target are kept exactly."""
    h, w = face.shape[:2]
    inside = (np.asarray(target) > 0).astype(np.float32)
    grow = max(1, int(round(w * rng.uniform(0.01, 0.04))))
    keep = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    keep = np.maximum(cv2.GaussianBlur(keep, (2 * grow + 1, 2 * grow + 1), 0), inside)
    bg = cv2.resize(np.asarray(donor), (w, h), interpolation=cv2.INTER_AREA) if donor.shape[:2] != (h, w) else donor
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-180, 180), rng.uniform(0.9, 1.1))
    bg = cv2.warpAffine(bg, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    bg = np.clip(bg.astype(np.float32) * rng.uniform(0.7, 1.3, 3) + rng.uniform(-30, 30, 3), 0, 255)
    strength = rng.uniform(0.15, 1.0)
    k = keep[..., None]
    out = face.astype(np.float32) * k + (face.astype(np.float32) * (1 - strength) + bg * strength) * (1 - k)
    return np.where(inside[..., None] > 0, face, np.clip(np.rint(out), 0, 255).astype(np.uint8))

"""XSeg training samples: which faces train, their targets, and DFL's XSeg augmentation.

A labelled face (include polygons in its metadata) trains on its labels. An unlabelled face, in
generic mode, trains on a target the program makes: its landmark hull minus synthetic occluders
pasted over it (`models.xseg_targets.occlude`), scored inside the hull only when the model's mask is
cut to the hull where it is applied (SampleSpec.hull_loss; the loss weight rides in Batch.em_mask).
In generic mode with some hand labels, the labelled faces are drawn for LABELLED_SHARE of the samples
however few they are, so the labels steer the model. Labels that cannot make a mask
(facelib.seg_polys) are skipped, each face named once. Then, as DFL's XSeg sample generator does:
half the time the background comes from another face, random warp + affine + flip of face and
target alike, a binary target, an HSV shift, and now and then blur, a down/up resize or JPEG
compression.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import cv2
import numpy as np

from core import log
from core.warp import gen_warp_params, warp_image
from facelib.masks import hull_mask
from models.sample_set import label_issues

BACKGROUND_CHANCE = 0.5  # DFL: half the samples get another face's background
HSV_POWER = 0.3
EFFECT_CHANCE = 0.25  # blur, down/up resize and JPEG each fire this often (DFL)
LABELLED_SHARE = 0.5  # --generic with hand labels: at least this share of the samples are labelled faces
DONOR_RECOLOUR = 0.0  # generic targets: share of samples whose patch donor gets unnatural colours
OCCLUDER_COUNT = (0, 3)  # generic targets: between this many occluders per face (inclusive)


def xseg_masks(meta: Any, shape_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(H, W, 2) float32 [label target (zeros without labels), landmark hull], and whether the face is
    labelled; both channels in the aligned face's pixels, cropped and resized with the face. Labels that
    cannot make a mask (see sample_set.label_issues) count as none."""
    from models.xseg_targets import labelled_target
    h, w = shape_hw
    label = labelled_target(meta, h) if meta.seg_ie_polys and not label_issues(meta) else None
    if label is not None and label.shape != (h, w):
        label = cv2.resize(label.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    hull = hull_mask((h, w), meta.landmarks, meta.eyebrows_expand_mod)
    first = np.zeros((h, w), np.float32) if label is None else np.clip(label, 0.0, 1.0).astype(np.float32)
    return np.dstack([first, hull]), label is not None


def settle_generic(options: dict[str, Any], given: dict[str, Any], sides: Sequence[tuple[Any, Sequence[Any]]]) -> None:
    """Facesets with no usable labels on any side train on program-made targets, so the model trains as
    --generic: its recipe, its targets scored inside the hull and its mask cut to the hull where applied
    (else it would learn generic targets under DFL's slow recipe and leave noise past the hull). Switched
    on in `options` (saved with the model; --no-generic switches it off once faces are labelled) and said
    in one line. `sides`: (folder, faces) pairs; `given`: this run's flags. --no-generic given then is a
    UserError naming the folder, as DFL stops there ("No segmented faces found"). Labels on one side only
    are enough: the other side trains on them (select_faces' `pool`)."""
    from core.errors import UserError
    if options.get("generic") or any(r.usable_labels for _, records in sides for r in records):
        return
    bare = [str(folder) for folder, _ in sides]
    if given.get("generic") is False:
        raise UserError("no usable XSeg labels and --no-generic was given: label faces (xseg editor) or train "
                        "without --no-generic", bare[0])
    options["generic"] = True
    log.info(f"XSeg: no labelled faces in {' or '.join(dict.fromkeys(bare))}: training as --generic (program-made "
             "targets; the mask is cut to the face's hull when applied). Once faces are labelled, --no-generic "
             "trains on the labels alone.")


def select_faces(records: Sequence[Any], spec: Any, side: str, warned: set[str] | None = None,
                 pool: Sequence[Any] = ()) -> tuple[list, Any]:
    """The faces one side trains on (in drawing proportions), and its spec: with `generic`, all of them,
    the labelled ones repeated to LABELLED_SHARE of the list (labels take precedence); else the labelled
    ones, or where the side has none the labelled faces of `pool` (the other side: DFL pools the labels of
    src and dst, so labelling dst alone trains); with no labels there either, generic targets (said in one
    line; the trainer has made such a model generic first, settle_generic) instead of stopping as DFL does
    ("No segmented faces found"). A face whose labels cannot make a mask is named in one warning line (once
    per run: `warned` holds the faces named already) and trains on a generic target, or not at all when
    labels are used alone."""
    records = list(records)
    labelled = [r for r in records if r.usable_labels]
    borrowed = [] if labelled else [r for r in pool if r.usable_labels]
    generic = bool(spec.generic) or not (labelled or borrowed)
    warned = set() if warned is None else warned
    for r in records:
        if r.label_problems and r.where not in warned:
            warned.add(r.where)
            more = f" (and {len(r.label_problems) - 1} more)" if len(r.label_problems) > 1 else ""
            log.warning(f"{r.where}: {r.label_problems[0]}{more}; its labels are skipped, "
                        + ("it trains on a generic target" if generic else "the face is left out of training"))
    if spec.generic:
        rest = [r for r in records if not r.usable_labels]
        log.info(f"XSeg {side}: {len(labelled)} labelled faces (their labels are used"
                 + (f", drawn for {LABELLED_SHARE:.0%} of the samples" if labelled and rest else "")
                 + f") and {len(rest)} on generic (program-made) targets")
        return mix_labelled(labelled, rest), spec
    if labelled:
        log.info(f"XSeg {side}: training on {len(labelled)} labelled faces of {len(records)}")
        return labelled, spec
    if borrowed:
        log.info(f"XSeg {side}: no labelled faces: training on the other side's {len(borrowed)} labelled faces")
        return borrowed, spec
    log.info(f"XSeg {side}: no labelled faces: training on generic (program-made) targets, the face hull "
             f"minus synthetic occluders")
    return records, dataclasses.replace(spec, generic=True)


def mix_labelled(labelled: Sequence[Any], rest: Sequence[Any], share: float = LABELLED_SHARE) -> list:
    """`labelled` followed by `rest`, the labelled faces repeated in turn until they are at least `share`
    of the list: the sampler draws shuffled epochs over the list, so that is their share of the samples
    (a handful of hand labels among thousands of faces would otherwise be drawn almost never)."""
    labelled, rest = list(labelled), list(rest)
    if not labelled or not rest:
        return labelled + rest
    need = max(len(labelled), math.ceil(share / (1.0 - share) * len(rest) - 1e-9))
    whole, part = divmod(need, len(labelled))
    return labelled * whole + labelled[:part] + rest


def _effects(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-like damage on a uint8 face, each with EFFECT_CHANCE: blur, a down/up resize, JPEG."""
    res = img.shape[0]
    if rng.random() < EFFECT_CHANCE:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 2.0)))
    if rng.random() < EFFECT_CHANCE:
        small = max(8, int(res * rng.uniform(0.25, 0.75)))
        how = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (res, res), interpolation=how)
    if rng.random() < EFFECT_CHANCE:
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 90))])
        if ok:
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return img


def _recoloured(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The donor that patches are cut from, with its colour channels swapped or inverted DONOR_RECOLOUR of
    the time: what covers a face is not always skin-toned, and the only donors are faces."""
    if not DONOR_RECOLOUR or rng.random() >= DONOR_RECOLOUR:
        return image
    return np.ascontiguousarray(image[..., rng.permutation(3)]) if rng.random() < 0.7 else 255 - image


def xseg_sample_into(out: Any, k: int, face: Any, donor: Any, spec: Any, rng: np.random.Generator) -> None:
    """Sample `k` of a Batch: `warped` and `target` the augmented face, `mask` its binary target, `em_mask`
    the loss weight: 1 everywhere, or with `spec.hull_loss` inside the landmark hull only for a program-made
    target (outside it the target is a guess, and a hull-gated model's mask is cut there anyway)."""
    from models.augment import _hsv_shift, _to_float
    from models.xseg_targets import occlude, paste_background
    img = face.image
    known = None  # where the target is known (None: everywhere)
    if face.labelled:
        target = face.masks[..., 0].astype(np.float32) / 255.0
    else:
        region = face.masks[..., 1].astype(np.float32) / 255.0
        # the 68 landmarks at img's size put glasses on the eyes and hands over the mouth
        img, target = occlude(img, region, rng, donors=(_recoloured(donor.image, rng),), count=OCCLUDER_COUNT,
                              landmarks=face.landmarks)
        if spec.hull_loss:
            known = (region > 0).astype(np.float32)
    if rng.random() < BACKGROUND_CHANCE:
        img = paste_background(img, target, donor.image, rng)
    params = gen_warp_params(spec.resolution, rng, flip=spec.random_flip, scale_range=spec.scale_range)
    img = warp_image(img, params, warp=spec.random_warp, transform=True, border_replicate=True)
    target = warp_image(np.asarray(target, np.float32), params, warp=spec.random_warp, transform=True,
                        border_replicate=False, interpolation=cv2.INTER_LINEAR)
    img = _effects(np.ascontiguousarray(img), rng)
    face_f = _hsv_shift(_to_float(img), rng, HSV_POWER)
    out.warped[k] = face_f
    out.target[k] = face_f
    out.mask[k, ..., 0] = (target > 0.5).astype(np.float32)
    if known is None:
        out.em_mask[k] = 1.0
    else:
        known = warp_image(known, params, warp=spec.random_warp, transform=True, border_replicate=False,
                           interpolation=cv2.INTER_LINEAR)
        out.em_mask[k, ..., 0] = (known > 0).astype(np.float32)

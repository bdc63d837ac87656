"""XSeg: DFL's face segmentation model (which pixels are face, not hair, hand or background), trained
on the existing trainer, and `load_xseg` for the commands that apply a trained one.

Training: each step sees `batch_size` src and `batch_size` dst samples (models.xseg_samples makes
them) under a `Recipe` (optimizer, learning rate, loss). RECIPES["dfl"] is DFL's: RMSprop at 1e-4
with learning-rate dropout 0.3 and sigmoid cross-entropy. `recipe_for` picks: DFL's for hand labels
and for models imported from DFL (their RMSprop state goes on, and DFL's settings are what labelled
training is known to work with); GENERIC_RECIPE for --generic (program-made targets), where we
measured it (bench/xseg_quality.py; numbers in the issue 13 note).

Keras is imported inside the methods, not at the top: the editor and `xseg apply` import this module
first, and `load_xseg` runs `kb.prepare` before Keras loads, so TensorFlow's start-up banners are
filtered as they are for train and merge.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import keras_backend as kb
from core.errors import UserError
from models.augment import SampleSpec
from models.base import ModelBase
from models.dfl_layout import DFL_LAYOUT
from models.predictor import Prediction
from models.xseg_options import XSEG_OPTIONS

MASK_FLOOR = 0.1  # DFL's XSegNet.extract: values below this are noise, set to 0
INFER_BATCH = 16
# A --generic model's targets are the landmark hull minus occluders: it never saw a face pixel outside the
# hull, so there its output is noise (bench/xseg_quality.py: a third of its errors). Its mask is cut to the
# hull grown by this share of the face's width wherever the caller gives the face's landmarks.
HULL_GATE_GROW = 0.0
# ... and its program-made targets are scored inside the hull only: the network learns what covers a face,
# not where the hull's edge runs (the landmarks say that exactly when the mask is applied).
HULL_LOSS = True


@dataclass(frozen=True)
class Recipe:
    """How XSeg trains: the optimizer ("rmsprop" with DFL's lr-dropout, or "adam"), its learning rate,
    and the weight of a soft dice term added to the per-pixel cross-entropy (0: DFL's loss alone)."""

    optimizer: str
    learning_rate: float
    lr_dropout: float = 1.0
    dice: float = 0.0


RECIPES: dict[str, Recipe] = {
    "dfl": Recipe("rmsprop", 1e-4, lr_dropout=0.3),
    "adam": Recipe("adam", 5e-4),
    "adam_dice": Recipe("adam", 5e-4, dice=1.0),
}
RECIPE = "dfl"  # hand-labelled training
# --generic: Adam + dice fits program-made targets ~5x faster than DFL's RMSprop (fixed batch, 60 steps:
# cross-entropy 0.72 -> 0.06 against 0.72 -> 0.44) and reached the hull's level on unseen people and
# occluder kinds in half the iterations (bench/xseg_quality.py, 64 px: 0.69 at 400 it; DFL's 0.61 at 200)
GENERIC_RECIPE = "adam_dice"


def recipe_for(options: dict[str, Any]) -> Recipe:
    """The recipe a model trains with: DFL's for imported models and hand labels, GENERIC_RECIPE with
    --generic. Switching --generic on or off later switches the recipe (that optimizer starts afresh)."""
    if options.get("dfl_layout"):
        return RECIPES["dfl"]
    return RECIPES[GENERIC_RECIPE if options.get("generic") else RECIPE]


class XSeg(ModelBase):
    CLASS_NAME = "XSeg"
    OPTIONS = XSEG_OPTIONS + (DFL_LAYOUT,)  # dfl_layout: set by importdfl only (no flag)

    def build_nets(self) -> dict[str, Any]:
        from models.xseg_net import build_xseg
        extra = {"dfl_layout": True} if self.options.get("dfl_layout") else {}  # a model imported from DFL
        return {"xseg": build_xseg(self.resolution, int(self.options["dims"]), **extra)}

    def build_training(self) -> None:
        recipe = self.recipe = recipe_for(self.options)
        if recipe.optimizer == "adam":
            import keras
            opt = keras.optimizers.Adam(recipe.learning_rate, name="xseg_adam")
            key = "xseg_adam"  # its own state key: a model that changes recipe starts that optimizer afresh
        else:
            from models.optimizers import make_optimizer
            opt = make_optimizer("rmsprop", recipe.learning_rate, lr_dropout=recipe.lr_dropout, name="xseg_opt")
            key = "xseg"
        opt.base_learning_rate = recipe.learning_rate
        self.optimizers[key] = opt
        self.step = kb.TrainStep(self._loss, self.nets["xseg"].trainable_variables, opt)
        self._last_batch: dict[str, np.ndarray] | None = None

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        spec = SampleSpec(resolution=self.resolution, face_type=self.face_type, random_warp=True,
                          random_flip=True, eyes_mouth=False, target="xseg", generic=bool(self.options["generic"]),
                          hull_loss=HULL_LOSS and hull_gated(self.options))
        return spec, spec

    def _loss(self, b):
        from keras import ops
        n = ops.shape(b["src_in"])[0]
        logits = self.nets["xseg"](ops.concatenate([b["src_in"], b["dst_in"]], axis=0))
        target = ops.concatenate([b["src_mask"], b["dst_mask"]], axis=0)
        weight = ops.concatenate([b["src_weight"], b["dst_weight"]], axis=0)  # 1 where the target is known
        ce = ops.binary_crossentropy(target, logits, from_logits=True)  # (N, R, R, 1)
        ce = ops.sum(ce * weight, axis=(1, 2, 3)) / ops.maximum(ops.sum(weight, axis=(1, 2, 3)), 1.0)  # per sample
        if self.recipe.dice:
            from models.losses import soft_dice
            ce = ce + self.recipe.dice * soft_dice(target * weight, ops.sigmoid(logits) * weight)
        src_loss, dst_loss = ops.mean(ce[:n]), ops.mean(ce[n:])
        return src_loss + dst_loss, {"src_loss": src_loss, "dst_loss": dst_loss}

    def train_iteration(self, src: Any, dst: Any) -> list[float]:
        batch = {"src_in": src.warped, "src_mask": src.mask, "src_weight": src.em_mask,
                 "dst_in": dst.warped, "dst_mask": dst.mask, "dst_weight": dst.em_mask}
        self._last_batch = batch
        metrics = self.step(batch)
        return [metrics["src_loss"], metrics["dst_loss"]]

    def losses_after_last_step(self) -> list[float] | None:
        if self._last_batch is None:
            return None
        metrics = self.step.evaluate(self._last_batch)
        return [metrics["src_loss"], metrics["dst_loss"]]

    # --- inference ------------------------------------------------------------------------------------
    def mask_batch(self, faces: np.ndarray) -> np.ndarray:
        """(N, R, R, 3) float32 BGR 0..1 -> (N, R, R) float32 masks in 0..1, DFL's floor applied."""
        if self._predict_fn is None:
            from keras import ops
            net = self.nets["xseg"]
            self._predict_fn = kb.InferenceFn(lambda x: ops.sigmoid(net(x)), net.weights)
        mask = np.array(self._predict_fn(np.asarray(faces, np.float32)), np.float32)[..., 0]  # a copy: JAX's are read-only
        mask[mask < MASK_FLOOR] = 0.0
        return mask

    def predict_batch(self, faces: np.ndarray) -> Prediction:
        mask = self.mask_batch(faces)
        return Prediction(np.asarray(faces, np.float32), mask, mask)

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        return {"src": self.mask_batch(src_faces), "dst": self.mask_batch(dst_faces)}

    def preview_images(self, src: Any, dst: Any) -> dict[str, np.ndarray]:
        """DFL's XSeg previews: per face, the face | its target mask | the predicted mask over the face."""
        from models.preview import to_u8
        out = {}
        for side, batch in (("src", src), ("dst", dst)):
            pred = self.mask_batch(batch.target)
            if hull_gated(self.options):  # cut to the face's hull (the preview batch's em_mask), as applied
                pred = pred * batch.em_mask[..., 0]
            rows = [np.concatenate([face, np.repeat(target, 3, axis=-1), overlay(face, p)], axis=1)
                    for face, target, p in zip(batch.target, batch.mask, pred)]
            out[f"XSeg {side} faces"] = to_u8(np.concatenate(rows, axis=0))
        return out


def overlay(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The face at full strength inside the mask and green-tinted and dimmed outside (DFL's look)."""
    m = np.asarray(mask, np.float32).reshape(face.shape[0], face.shape[1], 1)
    tint = face * 0.35 + np.array([0.0, 0.35, 0.0], np.float32)
    return face * m + tint * (1.0 - m)


class XSegMasker:
    """A trained XSeg model for applying: `masks(faces)` on uint8 BGR faces of any one size."""

    def __init__(self, model: XSeg):
        self.model = model
        self.resolution: int = model.resolution
        self.face_type = model.face_type
        self.name = model.files.name
        self.iteration = model.iteration
        self.uses_landmarks = hull_gated(model.options)

    def masks(self, faces: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """uint8 BGR [N, H, W, 3] -> float32 masks [N, H, W] in 0..1 at the input size; the faces are
        resized to the model's resolution and the masks back, `INFER_BATCH` at a time. `landmarks`
        ([N, 68, 2] in the faces' pixels): a generic model's masks are cut to the grown hull
        (`uses_landmarks` says whether they are used)."""
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[-1] != 3 or faces.shape[1] < 1 or faces.shape[2] < 1:
            raise ValueError(f"faces must be [N, H, W, 3], got {faces.shape}")
        if landmarks is not None and np.shape(landmarks) != (len(faces), 68, 2):
            raise ValueError(f"landmarks must be [{len(faces)}, 68, 2], got {np.shape(landmarks)}")
        n, h, w = faces.shape[:3]
        res = self.resolution
        out = np.zeros((n, h, w), np.float32)
        for start in range(0, n, INFER_BATCH):
            chunk = faces[start:start + INFER_BATCH]
            shrink = cv2.INTER_AREA if min(h, w) > res else cv2.INTER_CUBIC
            x = np.stack([cv2.resize(f, (res, res), interpolation=shrink) for f in chunk]).astype(np.float32) / 255.0
            pred = self.model.mask_batch(np.clip(x, 0.0, 1.0))
            for k, m in enumerate(pred):
                big = m if (h, w) == (res, res) else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                out[start + k] = np.clip(big, 0.0, 1.0)
        if self.uses_landmarks and landmarks is not None:
            for k, lm in enumerate(np.asarray(landmarks, np.float64)):
                out[k] *= hull_gate((h, w), lm)
        return out


def hull_gated(options: dict[str, Any]) -> bool:
    """Whether a model's masks are cut to the hull (HULL_GATE_GROW): one trained with --generic on
    program-made targets, not one imported from DFL."""
    return bool(options.get("generic")) and not options.get("dfl_layout")


def hull_gate(shape_hw: tuple[int, int], landmarks: np.ndarray, grow: float = HULL_GATE_GROW) -> np.ndarray:
    """The landmark hull (facelib.masks.hull_mask) grown by `grow` of the image width, 0/1 float32."""
    from facelib.masks import hull_mask
    gate = (hull_mask(shape_hw, landmarks) > 0.5).astype(np.uint8)
    px = int(round(grow * shape_hw[1]))
    if px > 0:
        gate = cv2.dilate(gate, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1)))
    return gate.astype(np.float32)


def load_xseg(model_dir: Path, precision: str = "auto") -> XSegMasker:
    """The most recently saved XSeg model of `model_dir`, ready to mask faces. A folder without one is a
    UserError naming the folder (and what it holds instead)."""
    from models.loader import choose_saved_model, saved_options
    from models.model_files import ModelFiles, find_models
    folder = Path(model_dir)
    if not folder.is_dir():
        raise UserError("XSeg model folder not found", folder)
    names = find_models(folder, XSeg.CLASS_NAME)
    if not names:
        choose_saved_model(folder, XSeg.CLASS_NAME, None)  # raises, naming any other model the folder holds
    kb.prepare(precision)
    files = ModelFiles(folder, names[0], XSeg.CLASS_NAME)
    state = files.read_state()
    model = XSeg(files, saved_options(files, XSeg, state.meta), training=False)
    model.load(state)
    return XSegMasker(model)

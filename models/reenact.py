"""Reenact: landmark-driven face reenactment (puppeteering), pix2pix style.

Training (src faceset only): the generator learns to draw each src face from a line drawing of its
own landmarks (facelib.landmark_sketch), with L1 (+ DSSIM) and a conditional PatchGAN. Merging: the
dst face's landmarks, carried onto the src face's proportions (facelib.reenact_geometry.retarget:
src average shape + the dst face's offset from the dst average shape, in the aligned crop), drive
it, so the src person makes the dst's expression and head turn. The learned masks handed to the
merger (both of them) are the hull of the driving landmarks: that is where the drawn face is.

The averages are learnt while training, from the landmarks of the src and dst batches, and saved
with the weights (the `stats` net). Batches carry no landmarks yet, so they are found on each aligned
crop with dlib's predictor in the box where alignment puts the face (~4 ms a face).
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np

from core import keras_backend as kb
from core import log
from facelib.landmark_sketch import sketch_batch, sketch_preview
from facelib.reenact_geometry import crop_landmarks, hull_masks, retarget
from models.augment import SampleSpec
from models.base import ModelBase
from models.predictor import Prediction
from models.reenact_options import REENACT_OPTIONS

STATS_WINDOW = 2000  # faces: the averages are plain means up to this many, then a moving average over as many
DST_STATS_EVERY = 10  # after STATS_WINDOW dst faces, their landmarks are found every this many iterations
PREVIOUS_DROP = 0.5  # temporal input: share of training samples that get no previous frame (a first frame)


class ShapeStats(keras.layers.Layer):
    """The src and dst average landmark shapes (68 x 2, in crop units 0..1) and how many faces made
    each: saved and restored with the weights, never trained."""

    def __init__(self, **kwargs):
        super().__init__(name="shape_stats", **kwargs)
        self.src_mean = self.add_weight(shape=(68, 2), initializer="zeros", trainable=False, name="src_mean",
                                        dtype="float32")
        self.dst_mean = self.add_weight(shape=(68, 2), initializer="zeros", trainable=False, name="dst_mean",
                                        dtype="float32")
        self.counts = self.add_weight(shape=(2,), initializer="zeros", trainable=False, name="counts", dtype="float32")
        self.built = True

    def update(self, side: int, landmarks_unit: np.ndarray) -> None:
        """Fold a batch of landmark sets (crop units) into side 0 (src) or 1 (dst)."""
        lm = np.asarray(landmarks_unit, np.float32).reshape(-1, 68, 2)
        lm = lm[np.isfinite(lm).all(axis=(1, 2))]
        if not len(lm):
            return
        counts = kb.to_numpy(self.counts.value).copy()
        var = self.src_mean if side == 0 else self.dst_mean
        old = kb.to_numpy(var.value)
        weight = len(lm) / min(counts[side] + len(lm), STATS_WINDOW)
        var.assign(old + (lm.mean(axis=0) - old) * np.float32(weight))
        counts[side] += len(lm)
        self.counts.assign(counts)

    def means(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(src mean, dst mean) in crop units, or None before both sides were seen."""
        counts = kb.to_numpy(self.counts.value)
        if counts.min() <= 0:
            return None
        return kb.to_numpy(self.src_mean.value), kb.to_numpy(self.dst_mean.value)

    def count(self, side: int) -> float:
        return float(kb.to_numpy(self.counts.value)[side])


class Reenact(ModelBase):
    CLASS_NAME = "Reenact"
    OPTIONS = REENACT_OPTIONS
    LOSS_NAMES = ("src_loss",)  # the reconstruction (L1 + DSSIM); the GAN terms do not measure progress
    OPTIONAL_NETS = ("D_gan",)
    needs_landmarks = True  # FacePredictor: predict(faces, landmarks=(N, 68, 2) in crop pixels)

    # --- options --------------------------------------------------------------------------------------
    @property
    def temporal(self) -> bool:
        return bool(self.options.get("temporal_input", False))

    @property
    def gan_power(self) -> float:
        return float(self.options.get("gan_power", 0.0) or 0.0)

    # --- networks -------------------------------------------------------------------------------------
    def build_nets(self) -> dict[str, Any]:
        from models.reenact_net import build_discriminator, build_generator
        nets: dict[str, Any] = {"generator": build_generator(self.resolution, int(self.options["g_dims"]), self.temporal),
                                "stats": ShapeStats()}
        if self.training and self.gan_power > 0:
            nets["D_gan"] = build_discriminator(self.resolution, int(self.options["gan_dims"]))
        self._warned_no_landmarks = False
        self._previous: np.ndarray | None = None
        return nets

    def build_training(self) -> None:
        lr = float(self.options["learning_rate"])
        gen_vars = self.nets["generator"].trainable_variables
        self.optimizers["generator"] = self._adam("generator_opt", lr)
        d_vars = self.nets["D_gan"].trainable_variables if "D_gan" in self.nets else []
        self.g_step = kb.TrainStep(self._generator_loss, gen_vars, self.optimizers["generator"], read_vars=d_vars)
        self.d_step = None
        if d_vars:
            self.optimizers["D_gan"] = self._adam("D_gan_opt", lr)
            self.d_step = kb.TrainStep(self._discriminator_loss, d_vars, self.optimizers["D_gan"],
                                       read_vars=self.nets["generator"].weights)
        self._rng = np.random.default_rng()

    @staticmethod
    def _adam(name: str, lr: float) -> Any:
        opt = keras.optimizers.Adam(lr, beta_1=0.5, name=name)
        opt.base_learning_rate = lr
        return opt

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        """Targets only: the drawing is made from each augmented target, so no random warp (it would
        bend the face away from its own landmarks). dst faces feed the shape averages and the preview."""
        src = SampleSpec(resolution=self.resolution, face_type=self.face_type, random_warp=False,
                         random_flip=bool(self.options.get("random_src_flip", False)), eyes_mouth=False)
        dst = SampleSpec(resolution=self.resolution, face_type=self.face_type, random_warp=False, eyes_mouth=False)
        return src, dst

    # --- losses ---------------------------------------------------------------------------------------
    def _generate(self, b):
        inputs = [b["sketch"], b["previous"]] if self.temporal else b["sketch"]
        return self.nets["generator"](inputs)

    def _generator_loss(self, b):
        from keras import ops

        from models import losses as Ls
        out = self._generate(b)
        target = b["target"]
        rec = 10.0 * Ls.mae(target, out)
        if self.options.get("dssim_loss", True):
            rec = rec + Ls.structure_loss(target, out, self.resolution)
        rec = ops.mean(rec)
        total = rec
        if "D_gan" in self.nets and self.gan_power > 0:
            logits = self.nets["D_gan"]([b["sketch"], out])
            total = total + self.gan_power * ops.mean(
                ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))
        return total, {"src_loss": rec}

    def _discriminator_loss(self, b):
        from keras import ops
        fake = ops.stop_gradient(self._generate(b))
        real_logits = self.nets["D_gan"]([b["sketch"], b["target"]])
        fake_logits = self.nets["D_gan"]([b["sketch"], fake])
        loss = 0.5 * (ops.mean(ops.binary_crossentropy(ops.ones_like(real_logits), real_logits, from_logits=True))
                      + ops.mean(ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)))
        return loss, {"D_gan_loss": loss}

    # --- training -------------------------------------------------------------------------------------
    def _jittered_previous(self, target: np.ndarray) -> np.ndarray:
        """Stand-ins for the previous output frame: each target slightly moved, turned and blurred (the
        next frame of a video differs that way), or blank for a share of them (a video's first frame)."""
        import cv2
        res = self.resolution
        out = np.zeros_like(target)
        for k, face in enumerate(target):
            if self._rng.random() < PREVIOUS_DROP:
                continue
            angle, scale = self._rng.uniform(-3, 3), 1.0 + self._rng.uniform(-0.03, 0.03)
            mat = cv2.getRotationMatrix2D((res / 2, res / 2), angle, scale)
            mat[:, 2] += self._rng.uniform(-0.03, 0.03, size=2) * res
            moved = cv2.warpAffine(face, mat, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[k] = cv2.GaussianBlur(moved, (0, 0), max(0.5, res / 128))
        return out

    def _update_stats(self, side: int, landmarks: np.ndarray) -> None:
        self.nets["stats"].update(side, landmarks / np.float32(self.resolution))

    def train_iteration(self, src: Any, dst: Any) -> list[float]:
        target = np.ascontiguousarray(src.target, np.float32)
        lm = crop_landmarks(target, self.face_type)
        self._update_stats(0, lm)
        stats = self.nets["stats"]
        if stats.count(1) < STATS_WINDOW or self.iteration % DST_STATS_EVERY == 0:
            self._update_stats(1, crop_landmarks(dst.target, self.face_type))
        batch = {"sketch": sketch_batch(lm, self.resolution), "target": target}
        if self.temporal:
            batch["previous"] = self._jittered_previous(target)
        return self.run_steps([self.g_step] + ([self.d_step] if self.d_step is not None else []), batch)

    # --- inference ------------------------------------------------------------------------------------
    def driving_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """The dst faces' landmarks (crop pixels) carried onto the src face's proportions; unchanged
        while the model has not seen both facesets (no averages yet)."""
        lm = np.asarray(landmarks, np.float32).reshape(-1, 68, 2)
        means = self.nets["stats"].means()
        if means is None:
            return lm
        src_mean, dst_mean = (m * np.float32(self.resolution) for m in means)
        return retarget(lm, dst_mean, src_mean)

    def render(self, sketches: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """(N, R, R, sketch channels) drawings -> (N, R, R, 3) faces. With the temporal input each face
        gets the face before it (the first gets `previous`, or nothing)."""
        if self._predict_fn is None:
            net = self.nets["generator"]
            self._predict_fn = kb.InferenceFn(lambda *x: net(list(x) if len(x) > 1 else x[0]), net.weights)
        sketches = np.asarray(sketches, np.float32)
        if not self.temporal:
            return np.asarray(self._predict_fn(sketches), np.float32)
        res = self.resolution
        prev = np.zeros((1, res, res, 3), np.float32) if previous is None else np.asarray(previous, np.float32)[None]
        faces = []
        for sketch in sketches:  # one at a time: each frame waits for the one before it
            prev = np.asarray(self._predict_fn(sketch[None], prev), np.float32)
            faces.append(prev[0])
        return np.stack(faces) if faces else np.zeros((0, res, res, 3), np.float32)

    def predict_batch(self, faces: np.ndarray, landmarks: np.ndarray | None = None,
                      previous: np.ndarray | None = None, **_: Any) -> Prediction:
        """The src face making the expression of each dst face. `landmarks`: the dst faces' (N, 68, 2)
        in crop pixels (the merger's hand-over); without them they are found on `faces`. `previous`
        (temporal input): the output for the frame before the first; by default the last output."""
        if landmarks is None:
            if not self._warned_no_landmarks:
                log.info("Reenact: no driving landmarks were handed over; finding them on the dst faces")
                self._warned_no_landmarks = True
            landmarks = crop_landmarks(faces, self.face_type)
        landmarks = np.asarray(landmarks, np.float32)
        if landmarks.shape != (len(faces), 68, 2):
            raise ValueError(f"landmarks must be ({len(faces)}, 68, 2), got {landmarks.shape}")
        drive = self.driving_landmarks(landmarks)
        if previous is None and self._previous is not None and self._previous.shape == faces.shape[1:]:
            previous = self._previous
        face = self.render(sketch_batch(drive, self.resolution), previous)
        if self.temporal and len(face):
            self._previous = face[-1]
        mask = hull_masks(drive, self.resolution)
        return Prediction(np.clip(face, 0.0, 1.0), mask, mask.copy())

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        """SS: src redrawn from its own landmarks; DD: the drawing that drives SD (dst's expression on
        src's proportions); SD: the src face making the dst face's expression."""
        lm_s = crop_landmarks(src_faces, self.face_type)
        drive = self.driving_landmarks(crop_landmarks(dst_faces, self.face_type))
        sk_s, sk_d = sketch_batch(lm_s, self.resolution), sketch_batch(drive, self.resolution)
        ss = self.render(sk_s, None)
        sd = self.render(sk_d, None)
        ssm, sdm = hull_masks(lm_s, self.resolution)[..., None], hull_masks(drive, self.resolution)[..., None]
        return {"SS": ss, "SSm": ssm, "DD": sketch_preview(sk_d), "DDm": sdm, "SD": sd, "SDm": sdm}

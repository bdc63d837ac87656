"""Original: the classic face-swap autoencoder of the first programs (FaceSwap still ships it as "Original").

One shared encoder (four stride-2 5x5 convs, two dense layers, one upscale) and one decoder per person
(three upscales, a 5x5 conv to BGR); the swap is decoder_src(encoder(dst)). At 64 px it is the smallest
model that gives a recognisable swap, and quick on a CPU.

It has no mask network. So the merger's "learned" masks are not learned shapes but each side's *average*
training mask, kept as a running mean while training (a fixed face-shaped blob in the crop); the merge
suggests the dst landmark hull (`default_mask_mode = "dst"`), which follows each face.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from core import keras_backend as kb
from models import layers as L
from models import losses as Ls
from models.augment import SampleSpec
from models.base import ModelBase
from models.optimizers import make_optimizer
from models.original_options import ORIGINAL_OPTIONS
from models.predictor import Prediction

LEARNING_RATE = 2e-4  # DFL Quick96's rate: FaceSwap's 5e-5 (Adam) is for long GPU runs; 4x learns visibly in CPU minutes
MASK_PRIOR_RATE = 0.05  # running-mean weight of each batch's masks


class MaskPrior(keras.layers.Layer):
    """A fixed (R, R, 1) mask broadcast to the batch: the running mean of one side's training masks."""

    def __init__(self, resolution: int, **kwargs):
        super().__init__(**kwargs)
        self.resolution = resolution
        yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / max(1, resolution - 1) - 0.5
        start = ((xx / 0.35) ** 2 + (yy / 0.42) ** 2 <= 1.0).astype(np.float32)[..., None]  # until trained: an oval
        self.mean = self.add_weight(shape=(resolution, resolution, 1), initializer=keras.initializers.Constant(start),
                                    trainable=False, name="mean")

    def call(self, faces):
        return ops.zeros_like(faces[..., :1]) + ops.cast(self.mean, faces.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution}


def build_encoder(res: int, e: int, ae: int) -> keras.Model:
    """(R,R,3) -> (R/8, R/8, ae/2): convs e..8e, Dense(ae), Dense((R/16)^2 ae), reshape, upscale."""
    act = L.activation("leaky")
    inp = keras.Input((res, res, 3), name="face")
    x = inp
    for i, ch in enumerate((e, e * 2, e * 4, e * 8), start=1):
        x = L.downscale(x, ch, f"down{i}", act)
    x = keras.layers.Dense(ae, name="dense1")(keras.layers.Flatten(name="flatten")(x))
    low = res // 16
    x = keras.layers.Reshape((low, low, ae), name="reshape")(keras.layers.Dense(low * low * ae, name="dense2")(x))
    x = L.upscale(x, max(1, ae // 2), "upscale", act)
    return L.build(inp, x, "encoder")


def build_decoder(res: int, ae: int, d: int, name: str) -> keras.Model:
    """(R/8, R/8, ae/2) -> (R,R,3) BGR, sigmoid, float32."""
    act = L.activation("leaky")
    inp = keras.Input((res // 8, res // 8, max(1, ae // 2)), name="code")
    x = inp
    for i, ch in enumerate((d * 4, d * 2, d)):
        x = L.upscale(x, ch, f"upscale{i}", act)
    x = keras.layers.Activation("sigmoid", name="out_sigmoid")(L.conv(x, 3, 5, "out_conv"))
    return L.build(inp, L.to_float32(x, "face"), name)


def build_mask_prior(res: int, name: str) -> keras.Model:
    inp = keras.Input((res, res, 3), name="face")
    return L.build(inp, MaskPrior(res, name="prior")(inp), name)


class Original(ModelBase):
    CLASS_NAME = "Original"
    OPTIONS = ORIGINAL_OPTIONS
    default_mask_mode = "dst"  # no mask network: the dst landmark hull (merger.config.default_config)

    def __init__(self, files, options: dict[str, Any], *, training: bool):
        super().__init__(files, options, training=training)

    def build_nets(self) -> dict[str, Any]:
        o = self.options
        res, ae = int(o["resolution"]), int(o["ae_dims"])
        if res % 16:
            raise ValueError(f"Original's resolution must be a multiple of 16, got {res}")
        return {"encoder": build_encoder(res, int(o["e_dims"]), ae),
                "decoder_src": build_decoder(res, ae, int(o["d_dims"]), "decoder_src"),
                "decoder_dst": build_decoder(res, ae, int(o["d_dims"]), "decoder_dst"),
                "mask_src": build_mask_prior(res, "mask_src"), "mask_dst": build_mask_prior(res, "mask_dst")}

    # --- training -----------------------------------------------------------------------------------------
    def build_training(self) -> None:
        train = [v for n in ("encoder", "decoder_src", "decoder_dst") for v in self.nets[n].trainable_variables]
        opt = make_optimizer("adabelief", LEARNING_RATE, name="src_dst_opt")
        opt.base_learning_rate = LEARNING_RATE
        self.optimizers["src_dst"] = opt
        self.step = kb.TrainStep(self._loss, train, opt)

    def _side_loss(self, target, pred, mask):
        if self.options.get("masked_training", True):
            soft = Ls.soft_mask(mask, self.resolution)
            target, pred = target * soft, pred * soft
        return Ls.structure_loss(target, pred, self.resolution) + 10.0 * Ls.mse(target, pred)

    def _loss(self, b):
        n = ops.shape(b["src_in"])[0]
        code = self.nets["encoder"](ops.concatenate([b["src_in"], b["dst_in"]], axis=0))
        src_loss = self._side_loss(b["src_target"], self.nets["decoder_src"](code[:n]), b["src_mask"])
        dst_loss = self._side_loss(b["dst_target"], self.nets["decoder_dst"](code[n:]), b["dst_mask"])
        src_loss, dst_loss = ops.mean(src_loss), ops.mean(dst_loss)
        return src_loss + dst_loss, {"src_loss": src_loss, "dst_loss": dst_loss}

    def _update_mask_priors(self, src_mask: np.ndarray, dst_mask: np.ndarray) -> None:
        for name, masks in (("mask_src", src_mask), ("mask_dst", dst_mask)):
            var = self.nets[name].weights[0]
            now = kb.to_numpy(var.value)
            var.assign(now + MASK_PRIOR_RATE * (np.asarray(masks, np.float32).mean(axis=0) - now))

    def train_iteration(self, src, dst) -> list[float]:
        losses = self.run_steps([self.step], {"src_in": src.warped, "src_target": src.target, "src_mask": src.mask,
                                              "dst_in": dst.warped, "dst_target": dst.target, "dst_mask": dst.mask})
        self._update_mask_priors(src.mask, dst.mask)
        return losses

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        o = self.options
        common = dict(resolution=self.resolution, face_type=self.face_type, random_warp=bool(o["random_warp"]),
                      eyes_mouth=False)
        return (SampleSpec(random_flip=bool(o["random_src_flip"]), **common),
                SampleSpec(random_flip=bool(o["random_dst_flip"]), **common))

    # --- inference ------------------------------------------------------------------------------------------
    def _inference_vars(self) -> list:
        return [v for net in self.nets.values() for v in net.weights]

    def _swap_fn(self, faces):
        face = self.nets["decoder_src"](self.nets["encoder"](faces))
        return face, self.nets["mask_src"](faces), self.nets["mask_dst"](faces)

    def predict_batch(self, faces: np.ndarray, **_: Any) -> Prediction:
        if self._predict_fn is None:
            self._predict_fn = kb.InferenceFn(self._swap_fn, self._inference_vars())
        face, src_mask, dst_mask = self._predict_fn(faces)
        return Prediction(face.astype(np.float32), src_mask[..., 0].astype(np.float32),
                          dst_mask[..., 0].astype(np.float32))

    def export_model(self) -> keras.Model:
        """face -> [dst mask, swapped face, src mask] (the .dfm order), the same graph as predict()."""
        face_in = keras.Input((self.resolution, self.resolution, 3), name="in_face", dtype="float32")
        face, src_mask, dst_mask = self._swap_fn(face_in)
        return keras.Model(face_in, [dst_mask, face, src_mask], name="Original_export")

    def _views_fn(self, src, dst):
        n = ops.shape(src)[0]
        code = self.nets["encoder"](ops.concatenate([src, dst], axis=0))
        ss, dd, sd = (self.nets["decoder_src"](code[:n]), self.nets["decoder_dst"](code[n:]),
                      self.nets["decoder_src"](code[n:]))
        sm, dm = self.nets["mask_src"](src), self.nets["mask_dst"](dst)
        return ss, sm, dd, dm, sd, sm * dm

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        if getattr(self, "_views", None) is None:
            self._views = kb.InferenceFn(self._views_fn, self._inference_vars())
        ss, ssm, dd, ddm, sd, sdm = self._views(src_faces, dst_faces)
        return {"SS": ss, "SSm": ssm, "DD": dd, "DDm": ddm, "SD": sd, "SDm": sdm}

"""AMP: DFL's morphable model. One encoder, a src and a dst inter head, one shared decoder.

Training: a src sample's code takes a random `morph_factor` share of its channels from inter_src and the
rest from inter_dst (a fresh random subset per sample and step); a dst sample's code is inter_dst alone.
The one decoder learns to draw both people from such codes, so at merge the swap code, the first
morph*inter_dims channels from inter_src(dst) and the rest from inter_dst(dst), slides from the dst face
(morph 0) to the src face (morph 1): the morph factor is a merge setting (MergeConfig.morph_factor).

DFL's final code gives only the encoder's and decoder's weights to the optimizer, so its inter heads stay
at their random initial weights (by all signs a bug: earlier commits trained them). We train them by default;
`train_inters` off keeps DFL's behaviour, for models imported from DFL.

Losses per side: masked DSSIM at two scales (5 each) + 10*MSE, 300*L1 on eyes and mouth (always on, as in
DFL), 10*MSE on the mask; dst adds a weak 0.1*MSE outside the mask; optional GAN on both reconstructions.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from core import keras_backend as kb
from models import losses as Ls
from models.amp_archi import AmpSpec, build_decoder, build_encoder, build_inter
from models.amp_options import AMP_OPTIONS
from models.augment import SampleSpec
from models.base import ModelBase
from models.dfl_layout import DFL_LAYOUT
from models.discriminators import build_patch_discriminator
from models.optimizers import make_optimizer
from models.predictor import Prediction

LEARNING_RATE = 5e-5  # DFL's AMP: AdaBelief, no optimizer choice
LR_DROPOUT_KEEP = 0.3
LR_COS_PERIOD = 500
DEFAULT_MORPH = 0.75  # DeepFaceLive's default for AMP models (merger.config.MergeConfig.morph_factor too)
PREVIEW_MORPHS = (0.25, 0.5, 0.65, 0.75, 1.0)  # DFL's "AMP morph list"


def morph_channels(morph, channels: int):
    """(channels,) 1/0: the first floor(morph * channels) channels are 1. `morph`: a tensor whose mean is the
    factor ((1,) or (1, 1)); the same ops in predict() and the exported graph."""
    m = ops.mean(ops.cast(morph, "float32"))
    idx = ops.arange(1, channels + 1, dtype="float32")
    return ops.cast(ops.less_equal(idx, m * float(channels)), "float32")


def _mix(from_src, from_dst, take_src):
    """Channel-wise mix: take_src (C,) or (N, C) of 1/0 picks inter_src's channel where 1."""
    take = ops.cast(take_src, from_src.dtype)
    take = ops.reshape(take, (-1, 1, 1, take.shape[-1]))
    return from_dst + (from_src - from_dst) * take


def blur_out(target, mask, resolution: int):
    """DFL's blur_out_mask: the background near the mask edge becomes a blur of the background alone, so the
    model does not spend capacity on it (the face inside the mask is untouched)."""
    sigma = max(1.0, resolution / 128.0)
    bg = Ls.gaussian_blur(target * (1.0 - mask), sigma)
    weight = 1.0 - Ls.gaussian_blur(mask, sigma)
    weight = ops.where(ops.equal(weight, 0.0), ops.ones_like(weight), weight)
    return target * mask + (bg / weight) * (1.0 - mask)


class AMP(ModelBase):
    CLASS_NAME = "AMP"
    OPTIONS = AMP_OPTIONS + (DFL_LAYOUT,)  # dfl_layout: set by importdfl only (no flag)
    OPTIONAL_NETS = ("D_gan",)
    has_morph = True  # predict(faces, morph=...) (models/predictor.py)

    def __init__(self, files, options: dict[str, Any], *, training: bool):
        self._rng = np.random.default_rng()
        super().__init__(files, options, training=training)

    @property
    def spec(self) -> AmpSpec:
        o = self.options
        return AmpSpec(int(o["resolution"]), int(o["ae_dims"]), int(o["inter_dims"]), int(o["e_dims"]),
                       int(o["d_dims"]), int(o["d_mask_dims"]), bool(o.get("dfl_layout", False)))

    @property
    def inter_dims(self) -> int:
        return int(self.options["inter_dims"])

    # --- networks ---------------------------------------------------------------------------------------
    def build_nets(self) -> dict[str, Any]:
        spec = self.spec
        spec.validate()
        nets: dict[str, Any] = {"encoder": build_encoder(spec), "inter_src": build_inter(spec, "inter_src"),
                                "inter_dst": build_inter(spec, "inter_dst"), "decoder": build_decoder(spec)}
        if self.training and float(self.options.get("gan_power") or 0) > 0:
            nets["D_gan"] = build_patch_discriminator(spec.resolution, int(self.options["gan_patch_size"]),
                                                      int(self.options["gan_dims"]))
        return nets

    def _mask_net(self) -> keras.Model:
        """The decoder's mask branch alone (same layers): the dst-code mask without drawing its face."""
        if getattr(self, "_mask_only", None) is None:
            dec = self.nets["decoder"]
            self._mask_only = keras.Model(dec.input, dec.outputs[1], name="decoder_mask")
        return self._mask_only

    # --- training -----------------------------------------------------------------------------------------
    def _generator_vars(self) -> tuple[list, list]:
        """(trained, read-only): without train_inters the inter heads are read, never updated (DFL)."""
        names = [n for n in self.nets if n not in self.OPTIONAL_NETS]
        frozen = set() if self.options.get("train_inters", True) else {"inter_src", "inter_dst"}
        train = [v for n in names if n not in frozen for v in self.nets[n].trainable_variables]
        read = [v for n in names if n in frozen for v in self.nets[n].weights]
        return train, read

    def _new_optimizer(self, name: str) -> Any:
        dropout = bool(self.options.get("lr_dropout"))
        opt = make_optimizer("adabelief", LEARNING_RATE, lr_dropout=LR_DROPOUT_KEEP if dropout else 1.0,
                             lr_cos_period=LR_COS_PERIOD if dropout else 0,
                             clipnorm=1.0 if self.options.get("clipgrad") else None, name=name)
        opt.base_learning_rate = LEARNING_RATE
        return opt

    def build_training(self) -> None:
        train, read = self._generator_vars()
        self.optimizers["src_dst"] = self._new_optimizer("src_dst_opt")
        self.steps = [kb.TrainStep(self._generator_loss, train, self.optimizers["src_dst"], read_vars=read)]
        if "D_gan" in self.nets:
            self.optimizers["D_gan"] = self._new_optimizer("D_gan_opt")
            self.steps.append(kb.TrainStep(self._gan_discriminator_loss, self.nets["D_gan"].trainable_variables,
                                           self.optimizers["D_gan"], read_vars=train + read))

    def _reconstruct(self, b):
        """Src (with its random channel mix) and dst reconstructions: faces and masks."""
        n = ops.shape(b["src_in"])[0]
        enc = self.nets["encoder"](ops.concatenate([b["src_in"], b["dst_in"]], axis=0))
        s_enc, d_enc = enc[:n], enc[n:]
        src_code = _mix(self.nets["inter_src"](s_enc), self.nets["inter_dst"](s_enc), b["src_mix"])
        dst_code = self.nets["inter_dst"](d_enc)
        pss, pssm = self.nets["decoder"](src_code)
        pdd, pddm = self.nets["decoder"](dst_code)
        return pss, pssm, pdd, pddm

    def _targets(self, b):
        """Soft masks and targets (background blurred out when blur_out_mask is on)."""
        res = self.resolution
        ts, td = b["src_target"], b["dst_target"]
        if self.options.get("blur_out_mask"):
            ts, td = blur_out(ts, b["src_mask"], res), blur_out(td, b["dst_mask"], res)
        return Ls.soft_mask(b["src_mask"], res), Ls.soft_mask(b["dst_mask"], res), ts, td

    def _side_loss(self, target, pred, pred_mask, soft, mask, em):
        res = self.resolution
        t, p = target * soft, pred * soft
        loss = 5.0 * Ls.dssim(t, p, int(res / 11.6)) + 5.0 * Ls.dssim(t, p, int(res / 23.2)) + 10.0 * Ls.mse(t, p)
        loss += 300.0 * Ls.mae(target * em, pred * em)
        return loss + 10.0 * Ls.mse(mask, pred_mask)

    def _generator_loss(self, b):
        pss, pssm, pdd, pddm = self._reconstruct(b)
        ms, md, ts, td = self._targets(b)
        src_loss = self._side_loss(ts, pss, pssm, ms, b["src_mask"], b["src_em"])
        dst_loss = self._side_loss(td, pdd, pddm, md, b["dst_mask"], b["dst_em"])
        dst_loss += 0.1 * Ls.mse(pdd * (1.0 - md), td * (1.0 - md))  # DFL: a weak pull on the dst background
        total = ops.mean(src_loss) + ops.mean(dst_loss)
        gan = float(self.options.get("gan_power") or 0)
        if "D_gan" in self.nets and gan > 0:
            for fake in (pss * ms, pdd * md):
                logits = self.nets["D_gan"](fake)
                total += gan * ops.mean(ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))
            total += 1e-6 * ops.mean(Ls.total_variation(pss)) + 0.02 * ops.mean(Ls.mse(pss * (1 - ms), ts * (1 - ms)))
        return total, {"src_loss": ops.mean(src_loss), "dst_loss": ops.mean(dst_loss)}

    def _gan_discriminator_loss(self, b):
        pss, _, pdd, _ = self._reconstruct(b)
        ms, md, ts, td = self._targets(b)
        loss = 0.0
        for real, fake in ((ts * ms, pss * ms), (td * md, pdd * md)):
            lr_, lf = self.nets["D_gan"](real), self.nets["D_gan"](ops.stop_gradient(fake))
            loss += (ops.mean(ops.binary_crossentropy(ops.ones_like(lr_), lr_, from_logits=True))
                     + ops.mean(ops.binary_crossentropy(ops.zeros_like(lf), lf, from_logits=True))) * 0.25
        return loss, {"D_gan_loss": loss}

    def random_mix(self, n: int) -> np.ndarray:
        """(n, inter_dims) 1/0: for each sample a random subset of morph_factor*inter_dims channels (DFL's
        shuffled binomial), drawn on the host so the train step has no backend RNG."""
        c = self.inter_dims
        k = int(c * float(self.options["morph_factor"]))
        perm = np.argsort(self._rng.random((n, c)), axis=1)  # a random permutation per row
        return (perm < k).astype(np.float32)

    def train_iteration(self, src, dst) -> list[float]:
        batch = {"src_in": src.warped, "src_target": src.target, "src_mask": src.mask, "src_em": src.em_mask,
                 "dst_in": dst.warped, "dst_target": dst.target, "dst_mask": dst.mask, "dst_em": dst.em_mask,
                 "src_mix": self.random_mix(len(src))}
        return self.run_steps(self.steps, batch)

    def sample_specs(self) -> tuple[SampleSpec, SampleSpec]:
        o = self.options
        ct = None if o.get("ct_mode", "none") == "none" else o["ct_mode"]
        common = dict(resolution=self.resolution, face_type=self.face_type, random_warp=bool(o["random_warp"]),
                      scale_range=(-0.15, 0.15), uniform_yaw=bool(o["uniform_yaw"]), eyes_mouth=True)
        return (SampleSpec(random_flip=bool(o["random_src_flip"]), ct_mode=ct, **common),
                SampleSpec(random_flip=bool(o["random_dst_flip"]), **common))

    # --- inference ------------------------------------------------------------------------------------------
    def _inference_vars(self) -> list:
        return [v for n, net in self.nets.items() if n not in self.OPTIONAL_NETS for v in net.weights]

    def _swap_fn(self, faces, morph):
        """(swapped face, its mask, the dst-code mask) at `morph` (a (1,) or (1, 1) tensor)."""
        enc = self.nets["encoder"](faces)
        from_src, from_dst = self.nets["inter_src"](enc), self.nets["inter_dst"](enc)
        code = _mix(from_src, from_dst, morph_channels(morph, self.inter_dims))
        face, src_mask = self.nets["decoder"](code)
        return face, src_mask, self._mask_net()(from_dst)

    def predict_batch(self, faces: np.ndarray, morph: float = DEFAULT_MORPH, **_: Any) -> Prediction:
        if self._predict_fn is None:
            self._mask_net()  # built outside the traced function
            self._predict_fn = kb.InferenceFn(self._swap_fn, self._inference_vars())
        m = np.array([min(1.0, max(0.0, float(morph)))], np.float32)
        face, src_mask, dst_mask = self._predict_fn(faces, m)
        return Prediction(face.astype(np.float32), src_mask[..., 0].astype(np.float32),
                          dst_mask[..., 0].astype(np.float32))

    def export_model(self) -> keras.Model:
        """[face (N,R,R,3), morph (1,)] -> [dst mask, swapped face, src mask] (the .dfm order), the same graph
        as predict()."""
        self._mask_net()
        res = self.resolution
        face_in = keras.Input((res, res, 3), name="in_face", dtype="float32")
        morph_in = keras.Input((1,), name="morph_value", dtype="float32")
        face, src_mask, dst_mask = self._swap_fn(face_in, morph_in)
        return keras.Model([face_in, morph_in], [dst_mask, face, src_mask], name="AMP_export")

    # --- preview --------------------------------------------------------------------------------------------
    def _views_fn(self, src, dst, morph):
        n = ops.shape(src)[0]
        enc = self.nets["encoder"](ops.concatenate([src, dst], axis=0))
        s_enc, d_enc = enc[:n], enc[n:]
        s_src, s_dst = self.nets["inter_src"](s_enc), self.nets["inter_dst"](s_enc)
        d_src, d_dst = self.nets["inter_src"](d_enc), self.nets["inter_dst"](d_enc)
        half = morph_channels(np.array([self.options["morph_factor"]], np.float32), self.inter_dims)
        ss, ssm = self.nets["decoder"](_mix(s_src, s_dst, half))
        dd, ddm = self.nets["decoder"](d_dst)
        sd, sdm = self.nets["decoder"](_mix(d_src, d_dst, morph_channels(morph, self.inter_dims)))
        return ss, ssm, dd, ddm, sd, sdm * ddm

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray, morph: float = 1.0) -> dict[str, np.ndarray]:
        """SS (src at the training mix), DD, SD at `morph` (DFL's preview: 1.0) and their masks."""
        if getattr(self, "_views", None) is None:
            self._views = kb.InferenceFn(self._views_fn, self._inference_vars())
        ss, ssm, dd, ddm, sd, sdm = self._views(src_faces, dst_faces, np.array([morph], np.float32))
        return {"SS": ss, "SSm": ssm, "DD": dd, "DDm": ddm, "SD": sd, "SDm": sdm}

    def preview_images(self, src, dst) -> dict[str, np.ndarray]:
        """DFL's AMP previews: the usual rows at morph 1.0 (plain and masked) and the morph list (dst, then the
        swap at each of PREVIEW_MORPHS)."""
        from models.preview import preview_rows, to_u8
        out = self.preview_outputs(src.target, dst.target)
        images = {"AMP morph 1.0": preview_rows(src.target, dst.target, out, src.mask, dst.mask, masked=False),
                  "AMP morph 1.0 masked": preview_rows(src.target, dst.target, out, src.mask, dst.mask, masked=True)}
        cols = [dst.target] + [self.predict(dst.target, morph=m).face for m in PREVIEW_MORPHS]
        images["AMP morph list"] = to_u8(np.concatenate([np.concatenate([c[i] for c in cols], axis=1)
                                                         for i in range(len(dst.target))], axis=0))
        return images

"""The shared-encoder face-swap autoencoder behind Quick96 and SAEHD (DFL's DF and LIAE).

DF: one encoder and inter, a decoder per identity; the swap is decoder_src(inter(enc(dst))).
LIAE: one encoder, inter_AB and inter_B, one decoder; the swap decodes [AB(dst), AB(dst)].
Losses per side: DSSIM (one or two scales) + 10*MSE on the softly masked face, 300*L1 on eyes and
mouth when prioritised, 10*MSE on the mask; optional GAN, true-face, face/background style terms.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from core import keras_backend as kb
from models import losses as Ls
from models.archi import ArchiSpec, build_decoder, build_encoder, build_inter
from models.base import ModelBase
from models.discriminators import build_code_discriminator, build_patch_discriminator
from models.optimizers import make_optimizer
from models.predictor import Prediction

LR_DROPOUT_KEEP = 0.3  # DFL: each weight is updated in 30% of the steps when lr_dropout is on
LR_COS_PERIOD = 500


class SwapAutoencoder(ModelBase):
    """Option keys read here (Quick96 fixes them, SAEHD asks them): resolution, face_type, archi,
    ae_dims, e_dims, d_dims, d_mask_dims, masked_training, eyes_mouth_prio, optimizer, learning_rate,
    lr_dropout, clipgrad, random_warp, random_hsv_power, ct_mode, uniform_yaw, random_src_flip,
    random_dst_flip, gan_power, gan_patch_size, gan_dims, true_face_power, face_style_power,
    bg_style_power, batch_size, retrain_unwarped_every."""

    OPTIONAL_NETS = ("D_code", "D_gan")

    # --- options as this run uses them ---------------------------------------------------------------
    def opt(self, key: str) -> Any:
        return self.effective_options().get(key)

    def effective_options(self) -> dict[str, Any]:
        return self.options

    @property
    def spec(self) -> ArchiSpec:
        o = self.options
        return ArchiSpec(int(o["resolution"]), o["archi"], int(o["ae_dims"]), int(o["e_dims"]),
                         int(o["d_dims"]), int(o["d_mask_dims"]), bool(o.get("dfl_layout", False)))

    @property
    def is_liae(self) -> bool:
        return self.spec.kind == "liae"

    # --- networks -------------------------------------------------------------------------------------
    def build_nets(self) -> dict[str, Any]:
        spec = self.spec
        spec.validate()
        nets: dict[str, Any] = {"encoder": build_encoder(spec)}
        if self.is_liae:
            nets["inter_AB"] = build_inter(spec, "inter_AB")
            nets["inter_B"] = build_inter(spec, "inter_B")
            nets["decoder"] = build_decoder(spec, "decoder")
        else:
            nets["inter"] = build_inter(spec, "inter")
            nets["decoder_src"] = build_decoder(spec, "decoder_src")
            nets["decoder_dst"] = build_decoder(spec, "decoder_dst")
        if self.training and not self.is_liae and float(self.opt("true_face_power") or 0) > 0:
            nets["D_code"] = build_code_discriminator(spec)
        if self.training and float(self.opt("gan_power") or 0) > 0:
            nets["D_gan"] = build_patch_discriminator(spec.resolution, int(self.opt("gan_patch_size")),
                                                      int(self.opt("gan_dims")))
        return nets

    def _codes(self, x_src, x_dst):
        """(src code, dst code, swap code) for the decoders, encoding src and dst in one batch."""
        n = ops.shape(x_src)[0]
        enc = self.nets["encoder"](ops.concatenate([x_src, x_dst], axis=0))
        if not self.is_liae:
            code = self.nets["inter"](enc)
            return code[:n], code[n:], code[n:]
        ab = self.nets["inter_AB"](enc)
        ab_src, ab_dst = ab[:n], ab[n:]
        b_dst = self.nets["inter_B"](enc[n:])
        return (ops.concatenate([ab_src, ab_src], axis=-1), ops.concatenate([b_dst, ab_dst], axis=-1),
                ops.concatenate([ab_dst, ab_dst], axis=-1))

    def _decode_src(self, code):
        return self.nets["decoder" if self.is_liae else "decoder_src"](code)

    def _decode_dst(self, code):
        return self.nets["decoder" if self.is_liae else "decoder_dst"](code)

    # --- training -------------------------------------------------------------------------------------
    def _generator_vars(self) -> tuple[list, list]:
        """(trained, read-only) generator variables; LIAE freezes inter_AB without random warp (DFL)."""
        names = [n for n in self.nets if n not in self.OPTIONAL_NETS]
        frozen = {"inter_AB"} if self.is_liae and not self.opt("random_warp") else set()
        train = [v for n in names if n not in frozen for v in self.nets[n].trainable_variables]
        read = [v for n in names if n in frozen for v in self.nets[n].weights]
        return train, read

    def _new_optimizer(self, name: str, lr: float) -> Any:
        dropout = bool(self.opt("lr_dropout"))
        opt = make_optimizer(self.opt("optimizer"), lr, lr_dropout=LR_DROPOUT_KEEP if dropout else 1.0,
                             lr_cos_period=int(self.opt("lr_cos_period") or 0) if dropout else 0,
                             clipnorm=1.0 if self.opt("clipgrad") else None, name=name)
        opt.base_learning_rate = lr
        return opt

    def build_training(self) -> None:
        lr = float(self.opt("learning_rate"))
        train, read = self._generator_vars()
        self.optimizers["src_dst"] = self._new_optimizer("src_dst_opt", lr)
        self.steps = [kb.TrainStep(self._generator_loss, train, self.optimizers["src_dst"], read_vars=read)]
        g_all = train + read
        if "D_code" in self.nets:
            self.optimizers["D_code"] = self._new_optimizer("D_code_opt", lr)
            self.steps.append(kb.TrainStep(self._code_discriminator_loss, self.nets["D_code"].trainable_variables,
                                           self.optimizers["D_code"], read_vars=g_all))
        if "D_gan" in self.nets:
            self.optimizers["D_gan"] = self._new_optimizer("D_gan_opt", lr)
            self.steps.append(kb.TrainStep(self._gan_discriminator_loss, self.nets["D_gan"].trainable_variables,
                                           self.optimizers["D_gan"], read_vars=g_all))

    def _masked(self, b):
        """Blurred masks and the masked-or-not targets the losses compare."""
        res = self.resolution
        ms, md = Ls.soft_mask(b["src_mask"], res), Ls.soft_mask(b["dst_mask"], res)
        return ms, md

    def _generator_loss(self, b):
        res = self.resolution
        masked = bool(self.opt("masked_training"))
        s_code, d_code, sd_code = self._codes(b["src_in"], b["dst_in"])
        pss, pssm = self._decode_src(s_code)
        pdd, pddm = self._decode_dst(d_code)
        ms, md = self._masked(b)
        ts, td = b["src_target"], b["dst_target"]
        ts_o, pss_o = (ts * ms, pss * ms) if masked else (ts, pss)
        td_o, pdd_o = (td * md, pdd * md) if masked else (td, pdd)
        src_loss = Ls.structure_loss(ts_o, pss_o, res) + 10.0 * Ls.mse(ts_o, pss_o)
        dst_loss = Ls.structure_loss(td_o, pdd_o, res) + 10.0 * Ls.mse(td_o, pdd_o)
        if self.opt("eyes_mouth_prio"):
            src_loss += 300.0 * Ls.mae(ts * b["src_em"], pss * b["src_em"])
            dst_loss += 300.0 * Ls.mae(td * b["dst_em"], pdd * b["dst_em"])
        src_loss += 10.0 * Ls.mse(b["src_mask"], pssm)
        dst_loss += 10.0 * Ls.mse(b["dst_mask"], pddm)

        face_style = float(self.opt("face_style_power") or 0) / 100.0
        bg_style = float(self.opt("bg_style_power") or 0) / 100.0
        if face_style > 0 or bg_style > 0:
            psd, psdm = self._decode_src(sd_code)
            if face_style > 0:
                src_loss += 10000.0 * face_style * Ls.style_loss(psd * psdm, td * md, res)
            if bg_style > 0:
                inv = 1.0 - md
                src_loss += 10.0 * bg_style * (Ls.structure_loss(psd * inv, td * inv, res) + 10.0 * Ls.mse(psd * inv, td * inv))

        total = ops.mean(src_loss) + ops.mean(dst_loss)
        true_face = float(self.opt("true_face_power") or 0)
        if "D_code" in self.nets and true_face > 0:
            logits = self.nets["D_code"](s_code)
            total += true_face * ops.mean(ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))
        gan = float(self.opt("gan_power") or 0)
        if "D_gan" in self.nets and gan > 0:
            logits = self.nets["D_gan"](pss_o)
            total += gan * ops.mean(ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))
            if masked:  # DFL: keep the background quiet where the GAN would add bright dots
                total += 1e-6 * ops.mean(Ls.total_variation(pss)) + 0.02 * ops.mean(Ls.mse(pss * (1 - ms), ts * (1 - ms)))
        return total, {"src_loss": ops.mean(src_loss), "dst_loss": ops.mean(dst_loss)}

    def _code_discriminator_loss(self, b):
        s_code, d_code, _ = self._codes(b["src_in"], b["dst_in"])
        ls, ld = self.nets["D_code"](s_code), self.nets["D_code"](d_code)
        loss = (ops.mean(ops.binary_crossentropy(ops.zeros_like(ls), ls, from_logits=True))
                + ops.mean(ops.binary_crossentropy(ops.ones_like(ld), ld, from_logits=True))) * 0.5
        return loss, {"D_code_loss": loss}

    def _gan_discriminator_loss(self, b):
        s_code, _, _ = self._codes(b["src_in"], b["dst_in"])
        pss, _ = self._decode_src(s_code)
        ms = Ls.soft_mask(b["src_mask"], self.resolution)
        masked = bool(self.opt("masked_training"))
        real = b["src_target"] * ms if masked else b["src_target"]
        fake = ops.stop_gradient(pss * ms if masked else pss)
        lr_, lf = self.nets["D_gan"](real), self.nets["D_gan"](fake)
        loss = (ops.mean(ops.binary_crossentropy(ops.ones_like(lr_), lr_, from_logits=True))
                + ops.mean(ops.binary_crossentropy(ops.zeros_like(lf), lf, from_logits=True))) * 0.5
        return loss, {"D_gan_loss": loss}

    def train_iteration(self, src, dst) -> list[float]:
        batch = {"src_in": src.warped, "src_target": src.target, "src_mask": src.mask, "src_em": src.em_mask,
                 "dst_in": dst.warped, "dst_target": dst.target, "dst_mask": dst.mask, "dst_em": dst.em_mask}
        every = int(self.opt("retrain_unwarped_every") or 0)
        if every and self.iteration % every == 0 and self._last_batch is not None:
            batch = dict(self._last_batch, src_in=self._last_batch["src_target"], dst_in=self._last_batch["dst_target"])
        return self.run_steps(self.steps, batch)

    # --- inference ------------------------------------------------------------------------------------
    def _inference_vars(self) -> list:
        return [v for n, net in self.nets.items() if n not in self.OPTIONAL_NETS for v in net.weights]

    def _mask_only(self, decoder_name: str) -> keras.Model:
        """The decoder's mask branch alone (same layers): the merger needs the dst decoder's mask, and
        skipping its face branch saves about a third of the prediction work."""
        cache = self.__dict__.setdefault("_mask_nets", {})
        if decoder_name not in cache:
            dec = self.nets[decoder_name]
            cache[decoder_name] = keras.Model(dec.input, dec.outputs[1], name=f"{decoder_name}_mask")
        return cache[decoder_name]

    def _swap_fn(self, faces):
        if not self.is_liae:
            code = self.nets["inter"](self.nets["encoder"](faces))
            face, src_mask = self.nets["decoder_src"](code)
            return face, src_mask, self._mask_only("decoder_dst")(code)
        enc = self.nets["encoder"](faces)
        ab, b = self.nets["inter_AB"](enc), self.nets["inter_B"](enc)
        face, src_mask = self.nets["decoder"](ops.concatenate([ab, ab], axis=-1))
        return face, src_mask, self._mask_only("decoder")(ops.concatenate([b, ab], axis=-1))

    def export_model(self) -> keras.Model:
        """The swap as one functional model (face -> dst mask, swapped face, src mask: the .dfm output
        order), built from the same networks and the same _swap_fn as predict(), so the exporter needs
        no knowledge of the archi."""
        self._mask_only("decoder" if self.is_liae else "decoder_dst")  # built before the graph uses it
        res = self.resolution
        face_in = keras.Input((res, res, 3), name="in_face", dtype="float32")
        face, src_mask, dst_mask = self._swap_fn(face_in)
        return keras.Model(face_in, [dst_mask, face, src_mask], name=f"{self.CLASS_NAME}_export")

    def _views_fn(self, src, dst):
        s_code, d_code, sd_code = self._codes(src, dst)
        ss, ssm = self._decode_src(s_code)
        dd, ddm = self._decode_dst(d_code)
        sd, sdm = self._decode_src(sd_code)
        _, sd_dm = self._decode_dst(d_code)
        return ss, ssm, dd, ddm, sd, sdm * sd_dm

    def predict_batch(self, faces: np.ndarray) -> Prediction:
        if self._predict_fn is None:
            self._mask_only("decoder" if self.is_liae else "decoder_dst")  # built outside the traced function
            self._predict_fn = kb.InferenceFn(self._swap_fn, self._inference_vars())
        face, src_mask, dst_mask = self._predict_fn(faces)
        return Prediction(face.astype(np.float32), src_mask[..., 0].astype(np.float32), dst_mask[..., 0].astype(np.float32))

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        if getattr(self, "_views", None) is None:
            self._views = kb.InferenceFn(self._views_fn, self._inference_vars())
        ss, ssm, dd, ddm, sd, sdm = self._views(src_faces, dst_faces)
        return {"SS": ss, "SSm": ssm, "DD": dd, "DDm": ddm, "SD": sd, "SDm": sdm}


def reinit_net(net: keras.Model) -> None:
    """Fresh random weights for one network (DFL re-initialises the inters when pretraining ends)."""
    for layer in net.layers:
        for attr in ("kernel", "bias"):
            var = getattr(layer, attr, None)
            init = getattr(layer, f"{attr}_initializer", None)
            if var is not None and init is not None:
                var.assign(init(var.shape, dtype=var.dtype))

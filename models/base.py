"""What every trainable model shares: options, networks, save/load, backups, summary, iteration and
loss history, the collapse guard's snapshots, and the FacePredictor face it shows the merger.

A model subclass declares OPTIONS and implements build_nets, build_training, sample_specs,
train_iteration, preview_outputs and predict_batch.
"""
from __future__ import annotations

import datetime
from typing import Any, ClassVar

import numpy as np

from core import keras_backend as kb
from core import log
from core.errors import UserError
from core.fileio import atomic_write_text
from facelib.face_type import FaceType
from models.collapse_guard import CollapseGuard
from models.model_files import ModelFiles, SavedState
from models.options import Option
from models.predictor import Prediction

STATE_FORMAT = 1
SNAPSHOT_EVERY = 100  # iterations between in-memory copies of the weights for collapse rollback


class ModelBase:
    CLASS_NAME: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    LOSS_NAMES: ClassVar[tuple[str, ...]] = ("src_loss", "dst_loss")
    OPTIONAL_NETS: ClassVar[tuple[str, ...]] = ()  # nets switched on by options later; start fresh when absent
    default_mode = "overlay"

    def __init__(self, files: ModelFiles, options: dict[str, Any], *, training: bool):
        self.files = files
        self.options = dict(options)
        self.training = training
        self.iteration = 0
        self.lr_scale = 1.0
        self._history = np.zeros((1024, len(self.LOSS_NAMES)), np.float32)  # grows by doubling
        self._history_len = 0
        self.preview_samples: dict[str, np.ndarray] = {}
        self.guard = CollapseGuard()
        self._snapshot: list[np.ndarray] | None = None
        self._snapshot_iteration = 0
        self.nets: dict[str, Any] = self.build_nets()
        self.optimizers: dict[str, Any] = {}
        if training:
            self.build_training()
        self._predict_fn: kb.InferenceFn | None = None

    # --- subclass hooks ---------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        return int(self.options["resolution"])

    @property
    def face_type(self) -> FaceType:
        return FaceType.from_string(self.options["face_type"])

    @property
    def batch_size(self) -> int:
        return int(self.options["batch_size"])

    def build_nets(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_training(self) -> None:
        """Create self.optimizers and the train steps."""
        raise NotImplementedError

    def sample_specs(self) -> tuple[Any, Any]:
        """(src SampleSpec, dst SampleSpec)."""
        raise NotImplementedError

    def train_iteration(self, src: Any, dst: Any) -> list[float]:
        """One optimisation step on a src and a dst Batch; returns the losses in LOSS_NAMES order."""
        raise NotImplementedError

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        """SS, DD, SD faces and their masks (SSm, DDm, SDm) for the preview window."""
        raise NotImplementedError

    def predict_batch(self, faces: np.ndarray) -> Prediction:
        raise NotImplementedError

    def summary_rows(self) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.options.items()]

    @property
    def loss_history(self) -> np.ndarray:
        """(iterations, len(LOSS_NAMES)) losses of every iteration so far (a view; copy to keep)."""
        return self._history[: self._history_len]

    @loss_history.setter
    def loss_history(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float32).reshape(-1, len(self.LOSS_NAMES))
        self._history = np.zeros((max(1024, 2 * len(values)), len(self.LOSS_NAMES)), np.float32)
        self._history[: len(values)] = values
        self._history_len = len(values)

    def _append_losses(self, losses: list[float]) -> None:
        if self._history_len == len(self._history):
            self._history = np.concatenate([self._history, np.zeros_like(self._history)])
        self._history[self._history_len] = losses
        self._history_len += 1

    # --- FacePredictor ----------------------------------------------------------------------------
    def predict(self, faces: np.ndarray) -> Prediction:
        faces = np.asarray(faces, np.float32)
        if faces.ndim != 4 or faces.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(f"faces must be (N, {self.resolution}, {self.resolution}, 3), got {faces.shape}")
        return self.predict_batch(faces)

    # --- variables ----------------------------------------------------------------------------------
    def _net_items(self) -> list[tuple[str, Any]]:
        return [(f"net/{name}/{v.path}", v) for name, net in self.nets.items() for v in net.weights]

    def _opt_items(self) -> list[tuple[str, Any]]:
        return [(f"opt/{name}/{i:04d}", v) for name, opt in self.optimizers.items() for i, v in enumerate(opt.variables)]

    def snapshot(self) -> None:
        """Keep a host copy of every weight and optimizer variable (the rollback point)."""
        self._snapshot = kb.get_values([v for _, v in self._net_items() + self._opt_items()])
        self._snapshot_iteration = self.iteration

    def rollback(self, reason: str) -> None:
        """Collapse: restore the last good weights and optimizer state and halve the learning rate."""
        if self._snapshot is None:
            raise UserError(f"training collapsed at iteration {self.iteration} ({reason}) before any good state "
                            f"was kept; lower the learning rate or batch size", self.files.state)
        kb.set_values([v for _, v in self._net_items() + self._opt_items()], self._snapshot)
        self.iteration = self._snapshot_iteration
        self._history_len = min(self._history_len, self.iteration)
        self.lr_scale *= 0.5
        self.apply_lr_scale()
        self.guard.reset()
        log.warning(f"Training collapsed: {reason}. Restored the weights of iteration {self.iteration} "
                    f"and lowered the learning rate to {self.lr_scale:g}x.")

    def apply_lr_scale(self) -> None:
        for opt in self.optimizers.values():
            opt.learning_rate = float(opt.base_learning_rate) * self.lr_scale

    def train_step(self, src: Any, dst: Any) -> list[float] | None:
        """A guarded iteration: the losses, or None when it collapsed and was rolled back."""
        if self._snapshot is None:
            self.snapshot()
        losses = self.train_iteration(src, dst)
        reason = self.guard.check(losses)
        if reason:
            self.rollback(reason)
            return None
        self.iteration += 1
        self._append_losses(losses)
        if self.iteration - self._snapshot_iteration >= SNAPSHOT_EVERY:
            self.snapshot()
        return losses

    # --- save / load --------------------------------------------------------------------------------
    def save(self) -> None:
        arrays = {key: kb.to_numpy(v.value) for key, v in self._net_items() + self._opt_items()}
        arrays["loss_history"] = self.loss_history.copy()
        arrays.update({f"preview/{k}": v for k, v in self.preview_samples.items()})
        meta = {"class": self.CLASS_NAME, "format": STATE_FORMAT, "iteration": self.iteration,
                "options": self.options, "lr_scale": self.lr_scale, "backend": kb.backend_name(),
                "saved_at": datetime.datetime.now().isoformat(timespec="seconds")}
        self.files.write_state(SavedState(meta, arrays))
        self.files.write_options(self.options)
        atomic_write_text(self.files.summary, self.summary_text())

    def load(self, state: SavedState) -> None:
        path = self.files.state
        fresh = {name for name in self.OPTIONAL_NETS
                 if name in self.nets and not any(k.startswith(f"net/{name}/") for k in state.arrays)}
        for name in sorted(fresh):
            log.info(f"{name} is new in this run; it starts from random weights")
        for key, var in self._net_items():
            if key.split("/")[1] in fresh:
                continue
            value = state.arrays.get(key)
            if value is None or tuple(value.shape) != tuple(var.shape):
                what = "missing" if value is None else f"shaped {tuple(value.shape)}, expected {tuple(var.shape)}"
                raise UserError(f"weights {key} are {what}: the file belongs to a model with other options", path)
            var.assign(value)
        self.iteration = state.iteration
        self.lr_scale = float(state.meta.get("lr_scale", 1.0))
        history = state.arrays.get("loss_history")
        if history is not None and history.ndim == 2 and history.shape[1] == len(self.LOSS_NAMES):
            self.loss_history = history[: self.iteration]
        self.preview_samples = {k[len("preview/"):]: v for k, v in state.arrays.items() if k.startswith("preview/")}
        if self.training:
            for name, opt in self.optimizers.items():
                items = [(f"opt/{name}/{i:04d}", v) for i, v in enumerate(opt.variables)]
                if all(key in state.arrays and state.arrays[key].shape == tuple(v.shape) for key, v in items):
                    for key, var in items:
                        var.assign(state.arrays[key])
                elif not any(k.startswith(f"opt/{name}/") for k in state.arrays):
                    log.info(f"Optimizer {name} is new in this run")
                else:
                    log.warning(f"Optimizer {name} state does not match this model's options; it starts fresh")
            self.apply_lr_scale()

    def summary_text(self) -> str:
        rows = [("Model name", self.files.name), ("Model class", self.CLASS_NAME),
                ("Current iteration", str(self.iteration)), ("Backend", kb.backend_name())]
        rows += self.summary_rows()
        if self.lr_scale != 1.0:
            rows.append(("learning rate scale (after collapses)", f"{self.lr_scale:g}"))
        width = max(len(k) for k, _ in rows) + 2
        lines = ["=" * (width + 30), *(f"{k:>{width}} : {v}" for k, v in rows), "=" * (width + 30)]
        return "\n".join(lines) + "\n"

    def loss_means_since(self, iteration: int) -> list[float]:
        recent = self.loss_history[iteration:]
        return [float(v) for v in recent.mean(axis=0)] if len(recent) else []


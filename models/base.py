"""What every trainable model shares: options, networks, save/load, backups, summary, iteration and
loss history, the collapse guard's snapshots, and the FacePredictor face it shows the merger.

A model subclass declares OPTIONS and implements build_nets, build_training, sample_specs,
train_iteration, preview_outputs and predict_batch.
"""
from __future__ import annotations

import datetime
from typing import Any, ClassVar, Iterable

import numpy as np

from core import keras_backend as kb
from core import log
from core.errors import UserError
from core.fileio import atomic_write_text
from core.settings import Option
from facelib.face_type import FaceType
from models.collapse_guard import CollapseGuard
from models.model_files import ModelFiles, SavedState
from models.predictor import Prediction

STATE_FORMAT = 1
SNAPSHOT_EVERY = 100  # iterations between in-memory copies of the weights for collapse rollback
MAX_ROLLBACKS_IN_A_ROW = 5  # collapses without a new good snapshot between them: the run stops


def first_nonfinite(items: Iterable[tuple[str, np.ndarray]]) -> str | None:
    """The key of the first floating-point array holding NaN or inf, or None when all are finite."""
    for key, value in items:
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return key
    return None


class ModelBase:
    CLASS_NAME: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    FIXED_OPTIONS: ClassVar[dict[str, Any]] = {}  # settings the model fixes (Quick96): no flag, no prompt
    LOSS_NAMES: ClassVar[tuple[str, ...]] = ("src_loss", "dst_loss")
    OPTIONAL_NETS: ClassVar[tuple[str, ...]] = ()  # nets switched on by options later; start fresh when absent
    default_mode = "overlay"

    def __init__(self, files: ModelFiles, options: dict[str, Any], *, training: bool):
        self.files = files
        self.options = dict(options)
        self.training = training
        self.iteration = 0
        self._last_batch: dict[str, np.ndarray] | None = None  # run_steps keeps it for the collapse guard
        self._loss_step: Any = None
        self.lr_scale = 1.0
        self._history = np.zeros((1024, len(self.LOSS_NAMES)), np.float32)  # grows by doubling
        self._history_len = 0
        self.preview_samples: dict[str, np.ndarray] = {}
        self.guard = CollapseGuard()
        self._snapshot: list[np.ndarray] | None = None
        self._snapshot_iteration = 0
        self._rollbacks_in_a_row = 0
        self.loaded_stat: Any = None  # os.stat_result of the state file this model was loaded from
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

    def losses_after_last_step(self) -> list[float] | None:
        """The losses of the last step's batch at the current weights (after its update), or None when
        the model cannot tell; the collapse guard checks them before a save."""
        if self._loss_step is None or self._last_batch is None:
            return None
        metrics = self._loss_step.evaluate(self._last_batch)
        return [metrics[name] for name in self.LOSS_NAMES]

    def run_steps(self, steps: list[Any], batch: dict[str, np.ndarray]) -> list[float]:
        """One iteration of train steps on `batch`: the first reports the losses (LOSS_NAMES are its
        metrics), the others (discriminators) follow; the batch is kept for losses_after_last_step."""
        self._last_batch, self._loss_step = batch, steps[0]
        metrics = steps[0](batch)
        for step in steps[1:]:
            step(batch)
        return [metrics[name] for name in self.LOSS_NAMES]

    def preview_outputs(self, src_faces: np.ndarray, dst_faces: np.ndarray) -> dict[str, np.ndarray]:
        """SS, DD, SD faces and their masks (SSm, DDm, SDm) for the preview window."""
        raise NotImplementedError

    def predict_batch(self, faces: np.ndarray, **extra) -> Prediction:
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
    def predict(self, faces: np.ndarray, **extra) -> Prediction:
        """The FacePredictor call; `extra` (morph=, landmarks=) goes to models that declare it."""
        faces = np.asarray(faces, np.float32)
        if faces.ndim != 4 or faces.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(f"faces must be (N, {self.resolution}, {self.resolution}, 3), got {faces.shape}")
        return self.predict_batch(faces, **extra)

    # --- variables ----------------------------------------------------------------------------------
    def _net_items(self) -> list[tuple[str, Any]]:
        return [(f"net/{name}/{v.path}", v) for name, net in self.nets.items() for v in net.weights]

    def _opt_items(self) -> list[tuple[str, Any]]:
        return [(f"opt/{name}/{i:04d}", v) for name, opt in self.optimizers.items() for i, v in enumerate(opt.variables)]

    def snapshot(self) -> bool:
        """Keep a host copy of every weight and optimizer variable (the rollback point). A copy holding
        NaN or inf is never kept (the previous rollback point stays): returns whether it was kept."""
        items = self._net_items() + self._opt_items()
        values = kb.get_values([v for _, v in items])
        bad = first_nonfinite(zip((k for k, _ in items), values))
        if bad is not None:
            log.debug(f"no snapshot at iteration {self.iteration}: {bad} holds NaN or inf")
            return False
        self._snapshot = values
        self._snapshot_iteration = self.iteration
        self._rollbacks_in_a_row = 0
        return True

    def rollback(self, reason: str) -> None:
        """Collapse: restore the last good weights and optimizer state and halve the learning rate.
        After MAX_ROLLBACKS_IN_A_ROW rollbacks with no new good snapshot between them, the run stops:
        halving the learning rate again would not help (bad faces, or a model that cannot train)."""
        if self._snapshot is None:
            raise UserError(f"training collapsed at iteration {self.iteration} ({reason}) before any good state "
                            f"was kept; lower the learning rate or batch size", self.files.state)
        kb.set_values([v for _, v in self._net_items() + self._opt_items()], self._snapshot)
        self.iteration = self._snapshot_iteration
        self._history_len = min(self._history_len, self.iteration)
        self.guard.reset()
        self._rollbacks_in_a_row += 1
        if self._rollbacks_in_a_row > MAX_ROLLBACKS_IN_A_ROW:
            raise UserError(f"training collapsed {self._rollbacks_in_a_row} times in a row from iteration "
                            f"{self.iteration} ({reason}), even at {self.lr_scale:g}x the learning rate; stopped "
                            f"without saving (the file keeps its last good save). Check the faces, or start from "
                            f"an autobackup in {self.files.backups_dir.name}", self.files.state)
        self.lr_scale *= 0.5
        self.apply_lr_scale()
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
        if self.iteration - self._snapshot_iteration >= SNAPSHOT_EVERY and not self.guard.exploding:
            self.snapshot()  # never while the loss is flagged: that would keep the explosion
        return losses

    # --- save / load --------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the state, options and summary. A model whose loss is flagged as exploding, or whose
        weights hold NaN/inf, is rolled back to its last good snapshot first: a save never replaces a
        good file with a broken model."""
        if self.guard.exploding:
            self.rollback("the loss was exploding when the model was saved")
        elif self._snapshot is not None and self.iteration > self._snapshot_iteration and self._history_len \
                and self.guard.level() is not None:
            now = self.losses_after_last_step()
            if now is not None and self.guard.worse_after_update(now, [float(v) for v in self.loss_history[-1]]):
                self.rollback(f"the last update made the loss explode ({sum(now):.3f})")
        arrays = {key: kb.to_numpy(v.value) for key, v in self._net_items() + self._opt_items()}
        bad = first_nonfinite(arrays.items())
        if bad is not None:
            self.rollback(f"{bad} holds NaN or infinite values")
            arrays = {key: kb.to_numpy(v.value) for key, v in self._net_items() + self._opt_items()}
        arrays["loss_history"] = self.loss_history.copy()
        arrays.update({f"preview/{k}": v for k, v in self.preview_samples.items()})
        meta = {"class": self.CLASS_NAME, "format": STATE_FORMAT, "iteration": self.iteration,
                "options": self.options, "lr_scale": self.lr_scale, "backend": kb.backend_name(),
                "loss_level": self.guard.level(),
                "saved_at": datetime.datetime.now().isoformat(timespec="seconds")}
        self.files.write_state(SavedState(meta, arrays))
        self.files.write_options(self.options)
        atomic_write_text(self.files.summary, self.summary_text())

    def load(self, state: SavedState) -> None:
        path = self.files.state
        self._refuse_nonfinite(state)
        self.loaded_stat = state.source_stat
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
        self._seed_guard(state)
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

    def _refuse_nonfinite(self, state: SavedState) -> None:
        """Saved weights or optimizer state with NaN/inf: every step would collapse and roll back to them.
        Stop with the newest autobackup that holds finite values, for the user to go back to."""
        prefixes = ("net/", "opt/") if self.training else ("net/",)
        bad = first_nonfinite((k, v) for k, v in state.arrays.items() if k.startswith(prefixes))
        if bad is None:
            return
        found = self.files.newest_finite_backup()
        if found is None:
            offer = (f"no autobackup in {self.files.backups_dir.name} has finite values: delete the model's files "
                     f"to start it again")
        else:
            folder, iteration = found
            offer = (f"the newest good autobackup is {folder} (iteration {iteration}): copy its files into "
                     f"{self.files.folder} to continue from it")
        raise UserError(f"the saved model holds NaN or infinite values ({bad}) and cannot be trained or used; "
                        f"{offer}", self.files.state)

    def _seed_guard(self, state: SavedState) -> None:
        """The collapse guard starts from the loss level saved with the model (older saves: the median
        of the last saved losses), so an explosion right after a restart is measured against it."""
        level = state.meta.get("loss_level")
        if isinstance(level, list) and len(level) == len(self.LOSS_NAMES) and self.guard.seed(level):
            return
        recent = self.loss_history[-self.guard.window:]
        recent = recent[np.isfinite(recent).all(axis=1)] if len(recent) else recent
        if len(recent) >= self.guard.min_history:
            self.guard.seed([float(v) for v in np.median(recent, axis=0)])

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


"""The only backend-specific code: choosing the Keras backend and precision, one training step
(gradients + optimizer update) and one compiled inference call per backend.

Model code uses Keras layers and keras.ops only; everything here takes plain callables over Keras
variables, so TensorFlow (default), JAX and PyTorch (`KERAS_BACKEND`) train the same models.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

LossFn = Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]


_jit_choice: bool | None = None


def prepare(precision: str = "float32", jit: bool | None = None) -> Any:
    """Import Keras on the chosen backend (default TensorFlow) with quiet logs and the dtype policy;
    `jit` forces XLA/jit compilation of train steps on or off (None: default_jit())."""
    global _jit_choice
    _jit_choice = jit
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # oneDNN banners, harmless grappler errors
    keras = _import_keras_quietly()
    if keras.backend.backend() not in BACKENDS:
        raise RuntimeError(f"unsupported KERAS_BACKEND {keras.backend.backend()!r}; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    keras.config.set_dtype_policy(auto_precision() if precision == "auto" else precision)
    return keras


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU multiplies bfloat16 natively (oneDNN uses it from TensorFlow)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def auto_precision() -> str:
    """mixed_bfloat16 where it is measured faster with the same results in training: TensorFlow on a
    CPU with native bf16 (Quick96 step 1014 -> 588 ms on 2 cores); float32 everywhere else."""
    if backend_name() == "tensorflow" and accelerator_count() == 0 and cpu_has_bf16():
        return "mixed_bfloat16"
    return "float32"


def precision_name() -> str:
    import keras
    return keras.config.dtype_policy().name


# What TensorFlow's C++ runtime prints at import even with TF_CPP_MIN_LOG_LEVEL=3 (absl logs before
# its logging is initialised): banners, not problems.
_IMPORT_NOISE = re.compile(r"absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations|cudart_stub\.cc|"
                           r"cuda_platform\.cc.*cuInit|Unable to register cu(DNN|FFT|BLAS) factory|computation placer|"
                           r"TF-TRT Warning|rebuild TensorFlow with the appropriate compiler flags|"
                           r"This TensorFlow binary is optimized")


def _import_keras_quietly() -> Any:
    """Import Keras (and its backend, with TensorFlow's devices listed) with the start-up banners of
    TensorFlow filtered out of stderr; anything else printed meanwhile is passed on."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, IDEs): nothing to filter
        import keras
        return keras
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            import keras
            if keras.backend.backend() == "tensorflow":  # the GPU platform starts here, not at import:
                import tensorflow as tf                  # its cuInit failure on GPU-less machines is a banner too
                tf.config.list_physical_devices("GPU")
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.strip() and not _IMPORT_NOISE.search(line):
            print(line, file=sys.stderr)
    return keras


def backend_name() -> str:
    import keras
    return keras.backend.backend()


def accelerator_count() -> int:
    """GPUs the current backend sees (0 on CPU-only machines)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_physical_devices("GPU"))
    if name == "jax":
        import jax
        return sum(1 for d in jax.devices() if d.platform == "gpu")
    import torch
    return torch.cuda.device_count()


def default_jit() -> bool:
    """XLA/jit where it pays: always for JAX; for TensorFlow only on GPU (XLA on CPU loses oneDNN's
    bfloat16 kernels: measured 1.31 s vs 0.64 s per Quick96 step); not for torch (compile time)."""
    if _jit_choice is not None:
        return _jit_choice
    name = backend_name()
    if name == "jax":
        return True
    if name == "tensorflow":
        return accelerator_count() > 0
    return False


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch: leave the graph and the device first
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):  # TensorFlow tensors and variables
        return np.asarray(x.numpy())
    return np.asarray(x)  # JAX arrays, NumPy


def get_values(variables: Sequence[Any]) -> list[np.ndarray]:
    return [to_numpy(v.value) for v in variables]


def set_values(variables: Sequence[Any], values: Sequence[np.ndarray]) -> None:
    for var, value in zip(variables, values):
        var.assign(value)


def setup_data_parallel() -> int:
    """Spread every batch over all the devices the backend sees, with the backend's own distribution
    API: keras.distribution.DataParallel on JAX (variables replicated, batches sharded, gradients
    all-reduced by XLA). Call before building models. Returns the device count (1 = no sharding).

    TensorFlow and torch train on one device; with several GPUs visible they say so (use JAX)."""
    name = backend_name()
    if name != "jax":
        if accelerator_count() > 1:
            from core import log
            log.warning(f"Several GPUs are visible but data-parallel training is implemented for KERAS_BACKEND=jax "
                        f"only; {name} trains on one GPU")
        return 1
    import jax
    import keras
    devices = jax.devices()
    if len(devices) < 2:
        return 1
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


def data_parallel_devices() -> int:
    if backend_name() != "jax":
        return 1
    import keras
    dist = keras.distribution.distribution()
    return len(dist.device_mesh.devices.reshape(-1)) if dist is not None else 1


def _to_tensors(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    from keras import ops
    if backend_name() == "jax":
        import keras
        dist = keras.distribution.distribution()
        if dist is not None:  # shard the batch dimension over the devices
            import jax
            return {k: jax.device_put(v, dist.get_data_layout(v.shape).backend_layout) for k, v in batch.items()}
    return {k: ops.convert_to_tensor(v) for k, v in batch.items()}


def needs_loss_scaling() -> bool:
    """float16 compute (mixed_float16) underflows small gradients to zero without loss scaling;
    bfloat16 has float32's exponent range and does not need it."""
    import keras
    return keras.config.dtype_policy().compute_dtype == "float16"


class TrainStep:
    """`step(batch) -> metrics` minimising loss_fn over `train_vars` with `optimizer`.

    `read_vars` are other variables the loss reads but does not train (frozen nets, discriminators);
    JAX needs them listed because it passes every value explicitly. Metrics come back as floats.

    Under mixed_float16 the step uses dynamic loss scaling (keras.optimizers.LossScaleOptimizer around
    `optimizer`, the same on every backend): the loss is multiplied by the scale before the gradients
    are taken, so float16 gradients do not underflow to zero; they are divided by it before the update;
    a step with non-finite gradients is skipped and the scale halved, and the scale doubles again after
    2000 good steps. `optimizer` itself (the model's, saved with it) stays the one that holds the state.
    """

    def __init__(self, loss_fn: LossFn, train_vars: Sequence[Any], optimizer: Any,
                 read_vars: Sequence[Any] = (), jit: bool | None = None, loss_scaling: bool | None = None):
        self.loss_fn = loss_fn
        self.train_vars = list(train_vars)
        ids = {id(v) for v in self.train_vars}
        self.read_vars = [v for v in read_vars if id(v) not in ids]
        self.jit = default_jit() if jit is None else jit
        self.loss_scaling = needs_loss_scaling() if loss_scaling is None else loss_scaling
        if self.loss_scaling:
            import keras
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.optimizer = optimizer
        optimizer.build(self.train_vars)
        self._step = {"tensorflow": self._tf_step, "jax": self._jax_step, "torch": self._torch_step}[backend_name()]()
        self._evaluate: tuple[list[str], InferenceFn] | None = None

    def evaluate(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """The metrics of `batch` at the current weights, without training (a compiled forward pass)."""
        if self._evaluate is None:
            keys = sorted(batch)
            self._evaluate = (keys, InferenceFn(lambda *arrays: self.loss_fn(dict(zip(keys, arrays)))[1],
                                                self.train_vars + self.read_vars))
        keys, fn = self._evaluate
        return {k: float(v) for k, v in fn(*[batch[k] for k in keys]).items()}

    @property
    def loss_scale(self) -> float:
        """The current loss scale (1.0 without loss scaling)."""
        return float(to_numpy(self.optimizer.dynamic_scale.value)) if self.loss_scaling else 1.0

    def _scaled(self, loss: Any) -> Any:
        if not self.loss_scaling:
            return loss
        from keras import ops
        return self.optimizer.scale_loss(ops.cast(loss, "float32"))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        metrics = self._step(batch)
        return {k: float(to_numpy(v)) for k, v in metrics.items()}

    # --- TensorFlow: GradientTape inside a tf.function --------------------------------------------
    def _tf_step(self) -> Callable:
        import tensorflow as tf

        # The update is a chain of elementwise ops over every weight (memory-bound on CPU): XLA fuses it
        # into one pass even when the rest of the step runs without XLA (oneDNN's bf16 kernels).
        @tf.function(jit_compile=True)
        def apply(grads):
            self.optimizer.apply(grads, self.train_vars)

        @tf.function(jit_compile=self.jit, reduce_retracing=True)
        def step(batch):
            with tf.GradientTape() as tape:
                loss, metrics = self.loss_fn(batch)
                loss = self._scaled(loss)
            grads = tape.gradient(loss, [v.value for v in self.train_vars])
            apply(grads)
            return metrics

        return lambda batch: step(_to_tensors(batch))

    # --- JAX: a pure function of all values, jitted; results written back to the variables --------
    def _jax_step(self) -> Callable:
        import jax
        import keras

        train_vars, read_vars, opt = self.train_vars, self.read_vars, self.optimizer

        def loss_of(train_values, read_values, batch):
            mapping = list(zip(train_vars, train_values)) + list(zip(read_vars, read_values))
            with keras.StatelessScope(state_mapping=mapping):
                loss, metrics = self.loss_fn(batch)
            return loss, metrics

        def scaled_loss_of(train_values, read_values, opt_values, batch):
            loss, metrics = loss_of(train_values, read_values, batch)
            if self.loss_scaling:  # the scale is an optimizer variable: read it from the values passed in
                with keras.StatelessScope(state_mapping=list(zip(opt.variables, opt_values))):
                    loss = self._scaled(loss)
            return loss, metrics

        grad_fn = jax.value_and_grad(scaled_loss_of, has_aux=True)

        def pure_step(train_values, read_values, opt_values, batch):
            (_, metrics), grads = grad_fn(train_values, read_values, opt_values, batch)
            new_train, new_opt = opt.stateless_apply(opt_values, grads, train_values)
            return new_train, new_opt, metrics

        compiled = jax.jit(pure_step, donate_argnums=(0, 2)) if self.jit else pure_step

        def step(batch):
            new_train, new_opt, metrics = compiled([v.value for v in train_vars], [v.value for v in read_vars],
                                                   [v.value for v in opt.variables], _to_tensors(batch))
            for var, value in zip(train_vars, new_train):
                var.assign(value)
            for var, value in zip(opt.variables, new_opt):
                var.assign(value)
            return metrics

        return step

    # --- PyTorch: autograd, then the optimizer update without grad tracking -----------------------
    def _torch_step(self) -> Callable:
        import torch

        def step(batch):
            loss, metrics = self.loss_fn(_to_tensors(batch))
            loss = self._scaled(loss)
            params = [v.value for v in self.train_vars]
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                self.optimizer.apply(list(grads), self.train_vars)
            return {k: v.detach() for k, v in metrics.items()}

        return step


class InferenceFn:
    """`fn(inputs...) -> outputs` compiled once (tf.function / jax.jit over variable values / no_grad)."""

    def __init__(self, fn: Callable, variables: Sequence[Any]):
        self.fn = fn
        self.variables = list(variables)
        name = backend_name()
        if name == "tensorflow":
            import tensorflow as tf
            self._call = tf.function(fn, reduce_retracing=True)
        elif name == "jax":
            import jax
            import keras

            def pure(values, *args):
                with keras.StatelessScope(state_mapping=list(zip(self.variables, values))):
                    return fn(*args)

            jitted = jax.jit(pure)
            self._call = lambda *args: jitted([v.value for v in self.variables], *args)
        else:
            import torch

            def no_grad(*args):
                with torch.no_grad():
                    return fn(*args)

            self._call = no_grad

    def __call__(self, *arrays: np.ndarray) -> Any:
        from keras import ops
        out = self._call(*[ops.convert_to_tensor(a) for a in arrays])
        if isinstance(out, (list, tuple)):
            return [to_numpy(o) for o in out]
        if isinstance(out, dict):
            return {k: to_numpy(v) for k, v in out.items()}
        return to_numpy(out)

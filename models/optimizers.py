"""DFL's optimizers as Keras 3 optimizers: RMSprop and AdaBelief, each with lr_dropout and a cosine
learning-rate cycle.

lr_dropout keeps each weight's update with probability p per step (DFL: Bernoulli(p) masks). A
random mask per weight per step would need backend-specific RNG state inside the optimizer, so each
weight instead gets a fixed random phase and is updated when frac(phase + n*golden) < p: every
weight is updated in a fraction p of the steps, at uncorrelated times across weights, with the same
code and the same result on every backend.
"""
from __future__ import annotations

import keras
from keras import ops

_GOLDEN = 0.6180339887498949
_PHASE_PERIOD = 4181  # a Fibonacci number: frac(n * golden) for n < period stays exact in float32


class _DFLOptimizer(keras.optimizers.Optimizer):
    # DFL's names for the per-weight state, in its file order (`<slot>_<weight name>` in `*_opt.npy`)
    DFL_SLOTS: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, *, lr_dropout: float = 1.0, lr_cos_period: int = 0,
                 epsilon: float = 1e-7, name: str, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.lr_dropout = float(lr_dropout)
        self.lr_cos_period = int(lr_cos_period)
        self.epsilon = epsilon

    def _build_dropout(self, var_list) -> None:
        self._phases = []
        if self.lr_dropout < 1.0:
            self._phases = [self.add_variable(v.shape, keras.initializers.RandomUniform(0.0, 1.0, seed=1000 + i),
                                              dtype="float32", name=f"{v.path.replace('/', '_')}_phase")
                            for i, v in enumerate(var_list)]

    def _scaled_step(self, step, variable, learning_rate):
        """Apply the cosine cycle and the dropout mask to a raw update."""
        lr = ops.cast(learning_rate, variable.dtype)
        if self.lr_cos_period:
            it = ops.cast(self.iterations, "float32")
            lr = lr * (ops.cos(it * (2.0 * 3.141592653589793 / self.lr_cos_period)) + 1.0) / 2.0
        step = step * lr
        if self._phases:
            n = ops.cast(ops.mod(self.iterations, _PHASE_PERIOD), "float32")
            offset = ops.mod(n * _GOLDEN, 1.0)
            phase = self._phases[self._get_variable_index(variable)]
            keep = ops.cast(ops.mod(phase + offset, 1.0) < self.lr_dropout, variable.dtype)
            step = step * keep
        return step

    def slot_variables(self, slot: str) -> list:
        """The state variables DFL calls `slot` (one per trained weight, in var_list order): what an
        imported DFL optimizer file is assigned to."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(lr_dropout=self.lr_dropout, lr_cos_period=self.lr_cos_period, epsilon=self.epsilon)
        return config


class RMSprop(_DFLOptimizer):
    """DFL's RMSprop: a <- rho*a + (1-rho)*g^2; w -= lr * g / (sqrt(a) + eps), eps 1e-7 as DFL's."""

    DFL_SLOTS = ("acc",)

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, **kwargs):
        super().__init__(learning_rate, name=kwargs.pop("name", "rmsprop"), **kwargs)
        self.rho = rho

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(var_list, "accumulator")
        self._build_dropout(var_list)

    def slot_variables(self, slot: str) -> list:
        return {"acc": self._accumulators}[slot]

    def update_step(self, gradient, variable, learning_rate):
        g = ops.cast(gradient, variable.dtype)
        acc = self._accumulators[self._get_variable_index(variable)]
        new_acc = self.rho * acc + (1.0 - self.rho) * ops.square(g)
        self.assign(acc, new_acc)
        step = g / (ops.sqrt(new_acc) + self.epsilon)
        self.assign_sub(variable, self._scaled_step(step, variable, learning_rate))


class AdaBelief(_DFLOptimizer):
    """DFL's AdaBelief (no bias correction): m <- b1*m + (1-b1)*g; v <- b2*v + (1-b2)*(g-m)^2;
    w -= lr * m / (sqrt(v) + eps). eps is DFL's, float32's resolution 1e-6 (for every model, imported
    or made here: one update rule, the one DFL users' models were trained with)."""

    DFL_SLOTS = ("ms", "vs")

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999, **kwargs):
        kwargs.setdefault("epsilon", 1e-6)
        super().__init__(learning_rate, name=kwargs.pop("name", "adabelief"), **kwargs)
        self.beta_1, self.beta_2 = beta_1, beta_2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._ms = self.add_optimizer_variables(var_list, "m")
        self._vs = self.add_optimizer_variables(var_list, "v")
        self._build_dropout(var_list)

    def slot_variables(self, slot: str) -> list:
        return {"ms": self._ms, "vs": self._vs}[slot]

    def update_step(self, gradient, variable, learning_rate):
        g = ops.cast(gradient, variable.dtype)
        idx = self._get_variable_index(variable)
        m, v = self._ms[idx], self._vs[idx]
        new_m = self.beta_1 * m + (1.0 - self.beta_1) * g
        new_v = self.beta_2 * v + (1.0 - self.beta_2) * ops.square(g - new_m)
        self.assign(m, new_m)
        self.assign(v, new_v)
        step = new_m / (ops.sqrt(new_v) + self.epsilon)
        self.assign_sub(variable, self._scaled_step(step, variable, learning_rate))


def make_optimizer(kind: str, learning_rate: float, *, lr_dropout: float = 1.0, lr_cos_period: int = 0,
                   clipnorm: float | None = None, name: str | None = None) -> _DFLOptimizer:
    """`rmsprop` or `adabelief`; clipnorm clips the global gradient norm (DFL's clipgrad: 1.0)."""
    cls = {"rmsprop": RMSprop, "adabelief": AdaBelief}[kind]
    kwargs = {"name": name} if name else {}
    return cls(learning_rate, lr_dropout=lr_dropout, lr_cos_period=lr_cos_period,
               global_clipnorm=clipnorm, **kwargs)

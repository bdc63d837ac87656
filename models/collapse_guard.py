"""Detects a collapsing training run (NaN, inf or exploding loss) so the trainer can roll back.

DFL users lose days when a model collapses: the loss turns NaN or jumps to a high plateau and every
later save is garbage. The guard keeps the recent loss level and calls a collapse on a non-finite
loss at once, or on a loss far above the recent median for several iterations in a row (a single
hard batch is not a collapse).

The level it compares against (the recent median of each loss) is saved with the model and seeded
back on the next start: otherwise its history would be empty after every restart, and an explosion in
the first iterations (a learning rate too high for a trained model) would become its baseline. The
first step after a restart is measured on the saved weights, before any update; when even that is far
above the saved level, the data or the loss terms changed (other faces, other options), and the saved
level is dropped instead of calling every step an explosion.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class CollapseGuard:
    explode_factor: float = 4.0  # a loss this many times its recent median counts as exploding...
    patience: int = 8  # ...when it stays there this many iterations in a row
    window: int = 200  # iterations of history for the median
    min_history: int = 20  # no "exploding" verdict before this many good iterations (or a seeded level)
    _recent: deque = field(default_factory=deque, repr=False)
    _bad_run: int = 0
    _seeded: bool = False  # the level came from a saved state and the first step has not confirmed it

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def check(self, losses: list[float]) -> str | None:
        """None when the step is fine; otherwise a short reason for the rollback."""
        if not all(math.isfinite(v) for v in losses):
            self._bad_run = 0
            return "the loss became NaN or infinite"
        values = tuple(float(v) for v in losses)
        level = self.level()
        if self._seeded:
            self._seeded = False
            if level is not None and self._ratio(values, level) > self.explode_factor:
                self._recent.clear()  # the saved weights already score far worse: not comparable
                level = None
        if level is not None:
            ratio = self._ratio(values, level)
            if ratio > self.explode_factor:
                self._bad_run += 1
                if self._bad_run >= self.patience:
                    self._bad_run = 0
                    return f"the loss exploded ({sum(values):.3f}, {ratio:.0f}x its recent median)"
                return None
        self._bad_run = 0
        self._recent.append(values)
        return None

    @staticmethod
    def _ratio(values: tuple[float, ...], level: list[float]) -> float:
        return max(v / max(m, 1e-6) for v, m in zip(values, level))

    def worse_after_update(self, now: list[float], before: list[float]) -> bool:
        """Whether the weights about to be saved exploded: `now` is their loss on the batch of the last
        step and `before` that step's own loss (the weights before its update). Each step reports the
        loss from before its update, so without this a save right after a bad update would keep it."""
        level = self.level()
        if level is None or len(now) != len(level) or len(before) != len(level):
            return False
        if not all(math.isfinite(v) for v in now):
            return True
        return self._ratio(tuple(now), [max(m, b) for m, b in zip(level, before)]) > self.explode_factor

    @property
    def exploding(self) -> bool:
        """The last steps were far above the level: a verdict (rollback or not) is pending."""
        return self._bad_run > 0

    def level(self) -> list[float] | None:
        """The recent median of each loss (the baseline), or None while there is too little history."""
        if len(self._recent) < max(self.min_history, 1):
            return None
        half = len(self._recent) // 2
        return [sorted(column)[half] for column in zip(*self._recent)]

    def seed(self, level: list[float] | None) -> bool:
        """Start from a saved level (one finite positive value per loss); False when it is unusable."""
        try:
            values = tuple(float(v) for v in level) if level is not None else ()
        except (TypeError, ValueError):
            return False
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            return False
        self._recent.clear()
        self._recent.extend([values] * self.min_history)
        self._bad_run = 0
        self._seeded = True
        return True

    def reset(self) -> None:
        """After a rollback the run starts over from the restored weights' level."""
        self._bad_run = 0

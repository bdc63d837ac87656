"""Detects a collapsing training run (NaN, inf or exploding loss) so the trainer can roll back.

DFL users lose days when a model collapses: the loss turns NaN or jumps to a high plateau and every
later save is garbage. The guard keeps the recent loss level and calls a collapse on a non-finite
loss at once, or on a loss far above the recent median for several iterations in a row (a single
hard batch is not a collapse).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class CollapseGuard:
    explode_factor: float = 4.0  # a loss this many times the recent median counts as exploding...
    patience: int = 8  # ...when it stays there this many iterations in a row
    window: int = 200  # iterations of history for the median
    min_history: int = 20  # no "exploding" verdict before this many good iterations
    _recent: deque = field(default_factory=deque, repr=False)
    _bad_run: int = 0

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def check(self, losses: list[float]) -> str | None:
        """None when the step is fine; otherwise a short reason for the rollback."""
        if not all(math.isfinite(v) for v in losses):
            self._bad_run = 0
            return "the loss became NaN or infinite"
        total = float(sum(losses))
        if len(self._recent) >= self.min_history:
            median = sorted(self._recent)[len(self._recent) // 2]
            if total > self.explode_factor * max(median, 1e-6):
                self._bad_run += 1
                if self._bad_run >= self.patience:
                    self._bad_run = 0
                    return f"the loss exploded ({total:.3f}, {total / max(median, 1e-6):.0f}x its recent median)"
                return None
        self._bad_run = 0
        self._recent.append(total)
        return None

    def reset(self) -> None:
        """After a rollback the run starts over from the restored weights' level."""
        self._bad_run = 0

"""Learning-rate schedules as pure functions of the optimiser step.

The loop sets every parameter group's learning rate to ``schedule(step)`` before each
step, so resuming from a checkpoint needs only the step counter (no scheduler object to
pickle) and the curves can be checked against hand-computed values.

- ``cyclic``: triangular2 cyclical LR between ``min_lr`` and ``lr`` (the ECAPA-TDNN
  recipe of Zhang et al. 2023): two cycles over the run, the second at half amplitude, so training
  starts and ends at ``min_lr``.
- ``warmup_decay``: linear warm-up from ``min_lr`` to ``lr`` over ``warmup_epochs``, then
  cosine decay to ``min_lr`` at the last step.
- ``constant``: ``lr`` throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from voxray.config import TrainConfig

#: triangular2 cycles over a whole run.
CYCLES_PER_RUN = 2


@dataclass(frozen=True)
class LRSchedule:
    """``schedule(step) -> lr`` for ``total_steps`` optimiser steps (step counts from 0)."""

    kind: str
    lr: float
    min_lr: float
    total_steps: int
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("cyclic", "warmup_decay", "constant"):
            raise ValueError(
                f"train.scheduler: unknown schedule {self.kind!r} (cyclic, warmup_decay, constant)"
            )
        if self.total_steps < 1:
            raise ValueError(f"an LR schedule needs at least one step, got {self.total_steps}")
        if self.min_lr > self.lr:
            raise ValueError(f"train.min_lr ({self.min_lr}) is above train.lr ({self.lr})")

    @property
    def half_cycle(self) -> int:
        """Steps from the bottom to the top of one triangular2 cycle."""
        return max(1, round(self.total_steps / (2 * CYCLES_PER_RUN)))

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.lr
        if self.kind == "cyclic":
            return triangular2(step, self.min_lr, self.lr, self.half_cycle)
        return warmup_cosine(step, self.min_lr, self.lr, self.warmup_steps, self.total_steps)


def triangular2(step: int, low: float, high: float, half_cycle: int) -> float:
    """Cyclical LR, mode triangular2 (Smith 2017): the amplitude halves every cycle."""
    cycle = math.floor(1 + step / (2 * half_cycle))
    x = abs(step / half_cycle - 2 * cycle + 1)
    return low + (high - low) * max(0.0, 1.0 - x) / (2 ** (cycle - 1))


def warmup_cosine(step: int, low: float, high: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to ``high`` (reached at the last warm-up step), then cosine to ``low``."""
    if step < warmup_steps:
        return low + (high - low) * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(cfg: TrainConfig, steps_per_epoch: int) -> LRSchedule:
    """The schedule ``cfg.scheduler`` names, for ``cfg.epochs`` epochs of ``steps_per_epoch``."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    total = steps_per_epoch * cfg.epochs
    warmup = 0
    if cfg.scheduler == "warmup_decay":
        warmup = max(0, min(total - 1, cfg.warmup_epochs * steps_per_epoch))
    return LRSchedule(cfg.scheduler, cfg.lr, cfg.min_lr, total, warmup)

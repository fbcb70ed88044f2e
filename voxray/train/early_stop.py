"""Early stopping on a validation loss (Lehmann & Stadelmann 2020, section 3.3: "early
stopping terminating after a lack of improvement over 3 epochs"), keeping the best weights."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs in a row without a validation loss below the best one;
    ``best_state`` holds the weights of the best epoch, so the model scored is that one."""

    patience: int
    best: float = math.inf
    best_epoch: int = 0
    stale: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"early stopping patience must be >= 1, got {self.patience}")

    def update(self, epoch: int, loss: float, model: torch.nn.Module) -> bool:
        """Record epoch ``epoch``'s validation ``loss``; True when training should stop."""
        if loss < self.best:
            self.best, self.best_epoch, self.stale = loss, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience

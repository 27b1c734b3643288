"""Step learning-rate schedule (lr × γ at given epochs) after a linear warm-up: the Tf-KD CIFAR schedule, which
``transformers`` has no ``lr_scheduler_type`` for."""

from __future__ import annotations

import bisect
import numbers
from dataclasses import dataclass, field

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class ScheduleConfig:
    """``milestones`` (epochs, increasing) and ``gamma``; when ``milestones`` is empty, ``training.lr_scheduler_type``
    applies. When set, it replaces ``training.lr_scheduler_type``; ``training.warmup_steps`` still sets the warm-up."""

    milestones: list[float] = field(
        default_factory=list, metadata={"help": "Epochs at which the learning rate is multiplied by gamma."}
    )
    gamma: float = field(default=0.2, metadata={"help": "In (0, 1]: the factor applied at each milestone."})

    def __post_init__(self) -> None:
        if any(isinstance(m, bool) or not isinstance(m, numbers.Real) or m <= 0 for m in self.milestones):
            raise ValueError(f"milestones must be positive epoch numbers, got {self.milestones!r}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be strictly increasing, got {self.milestones!r}")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, numbers.Real) or not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")


def multistep_with_warmup(
    optimizer: Optimizer, warmup_steps: int, milestone_steps: list[int], gamma: float
) -> LambdaLR:
    """lr(step) = base_lr · min(1, (step + 1) / warmup_steps) · γ^(number of milestone steps ≤ step)."""

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warmup * gamma ** bisect.bisect_right(milestone_steps, step)

    return LambdaLR(optimizer, factor)

"""PolyLr: polynomial decay with a linear warm-up, stepped every iteration (spec §15.2)."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class PolyLr(LRScheduler):
    """lr(t) = min(b·(0.1·(1 − t/W) + t/W), poly(t)) for t < W, else poly(t), where
    poly(t) = (b − min_lr)·(1 − t/T)^γ + min_lr, b a group's base lr, T = ``max_iteration``
    and W = ``warmup_iteration``. The first iteration (t = 0) uses 0.1·b.

    torch's PolynomialLR has no warm-up nor floor, so this small class keeps the exact formula.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_iteration: int,
        gamma: float = 0.9,
        minimum_lr: float = 1e-7,
        warmup_iteration: int = 12000,
        last_epoch: int = -1,
    ):
        if max_iteration <= 0:
            raise ValueError(f"PolyLr: max_iteration must be positive, got {max_iteration}")
        self.max_iteration = max_iteration
        self.gamma = gamma
        self.minimum_lr = minimum_lr
        self.warmup_iteration = warmup_iteration
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        """Learning rate of a group with base ``base_lr`` at iteration ``t``."""
        progress = min(t / self.max_iteration, 1.0)
        poly = (base_lr - self.minimum_lr) * (1 - progress) ** self.gamma + self.minimum_lr
        if t < self.warmup_iteration:
            ramp = t / self.warmup_iteration
            return min(base_lr * (0.1 * (1 - ramp) + ramp), poly)
        return poly

    def get_lr(self) -> list[float]:
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]

"""Losses, optimiser groups and learning-rate schedules."""

from lib.optim.loss import pyramid_loss, weighted_bce_iou
from lib.optim.optimizer import build_optimizer, parameter_groups
from lib.optim.scheduler import PolyLr

__all__ = ["PolyLr", "build_optimizer", "parameter_groups", "pyramid_loss", "weighted_bce_iou"]

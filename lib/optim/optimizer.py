"""Optimiser construction: backbone and head parameter groups (spec §15.2)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

HEAD_LR_FACTOR = 10.0
OPTIMIZERS = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "SGD": torch.optim.SGD}


def parameter_groups(model: nn.Module, lr: float) -> list[dict]:
    """Backbone parameters (name contains 'backbone') at ``lr``, all others at 10·lr."""
    backbone, head = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (backbone if "backbone" in name else head).append(parameter)
    return [{"params": backbone, "lr": lr}, {"params": head, "lr": lr * HEAD_LR_FACTOR}]


def build_optimizer(model: nn.Module, cfg: Mapping) -> torch.optim.Optimizer:
    """Optimiser from a config's ``Train.Optimizer`` section (type, lr, weight_decay)."""
    kind = cfg.get("type", "Adam")
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of {sorted(OPTIMIZERS)}")
    groups = parameter_groups(model, float(cfg["lr"]))
    return OPTIMIZERS[kind](groups, lr=float(cfg["lr"]), weight_decay=cfg.get("weight_decay", 0))

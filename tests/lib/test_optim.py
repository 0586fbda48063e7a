"""PolyLr with warm-up and the backbone/head learning-rate groups (spec §15.2)."""

from itertools import pairwise

import pytest
import torch

from lib.optim import PolyLr, build_optimizer


def make(lr=1e-5, total=100, warmup=10):
    model = torch.nn.ModuleDict(
        {"backbone": torch.nn.Linear(2, 2), "decoder": torch.nn.Linear(2, 1)}
    )
    optimizer = build_optimizer(model, {"type": "Adam", "lr": lr, "weight_decay": 0.0})
    return optimizer, PolyLr(optimizer, total, gamma=0.9, minimum_lr=1e-7, warmup_iteration=warmup)


def test_head_lr_is_ten_times_backbone_lr_and_first_step_uses_a_tenth():
    optimizer, _ = make()
    backbone, head = optimizer.param_groups
    assert backbone["lr"] == pytest.approx(1e-6) and head["lr"] == pytest.approx(1e-5)


def test_schedule_follows_the_formula():
    optimizer, scheduler = make(lr=1e-4, total=100, warmup=10)
    seen = []
    for _ in range(100):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    b, floor = 1e-4, 1e-7

    def poly(t):
        return (b - floor) * (1 - t / 100) ** 0.9 + floor

    for t in (0, 5, 9):
        assert seen[t] == pytest.approx(min(b * (0.1 * (1 - t / 10) + t / 10), poly(t)))
    for t in (10, 50, 99):
        assert seen[t] == pytest.approx(poly(t))
    assert seen == sorted(seen[:10]) + seen[10:]  # warm-up rises
    assert all(a >= c for a, c in pairwise(seen[10:]))  # then decays


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown optimizer 'Adamm'"):
        build_optimizer(torch.nn.Linear(1, 1), {"type": "Adamm", "lr": 1e-3})

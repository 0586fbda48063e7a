"""utils/export/band_ties.py and the export check's comparison (utils/export/exporter.compare):
a band value within the margin of 0.5 is taken both ways, everything else is compared plainly."""

import math

import numpy as np
import pytest
import torch

from lib.modules.transition import Transition
from utils.export.band_ties import band_threshold, bracket_ties
from utils.export.exporter import MAP_TOLERANCE, compare


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def tie_input(delta: float) -> torch.Tensor:
    """A 7×7 logit map whose band (max σ − min σ around the centre) is 0.5 + ``delta``."""
    x = torch.full((1, 1, 7, 7), logit(0.25))
    x[0, 0, 3, 3] = logit(0.75 + delta)
    return x


def test_band_threshold_moves_every_transition_and_restores_it():
    model = torch.nn.Sequential(Transition(5), Transition(9))
    with band_threshold(model, 0.4):
        assert [m.threshold for m in model] == [0.4, 0.4]
    assert [m.threshold for m in model] == [0.5, 0.5]
    with pytest.raises(RuntimeError), band_threshold(model, 0.6):
        raise RuntimeError("inside")
    assert [m.threshold for m in model] == [0.5, 0.5]


def test_bracket_takes_a_tie_both_ways():
    transition = Transition(5)
    x = tie_input(1e-6)
    outputs = bracket_ties(transition, lambda: transition(x).numpy(), margin=1e-3)
    assert outputs.shape == (3, 1, 1, 7, 7)
    assert outputs[1, 0, 0, 3, 3] == 1 and outputs[2, 0, 0, 3, 3] == 0  # 0.5 − m, 0.5 + m
    # no band value within the margin of 0.5: one run, the plain one
    clear = bracket_ties(transition, lambda: transition(tie_input(0.01)).numpy(), margin=1e-3)
    assert clear.shape == (1, 1, 1, 7, 7) and clear[0, 0, 0, 3, 3] == 1
    assert not transition._forward_hooks  # the counting hook is gone
    # no margin: one run
    assert bracket_ties(transition, lambda: transition(x).numpy(), margin=0).shape[0] == 1


def test_compare_measures_the_distance_from_the_references_range():
    rng = np.random.default_rng(0)
    plain = rng.normal(0, 4, (2, 1, 16, 16)).astype(np.float32)
    tied = plain.copy()
    tied[0, 0, :4, :4] += 3.0  # a band-mask tie: PyTorch's other answer in one corner
    references = np.stack([plain, tied, plain])
    # the exported graph took the tie the other way, with float noise: accepted
    exported = tied + rng.uniform(-1e-4, 1e-4, tied.shape).astype(np.float32)
    check = compare(references, exported)
    assert check["max_logit_diff"] <= 2e-4 and check["map_fraction_over_1_255"] == 0
    assert 0 < check["tie_pixels"] <= 16 / 256
    # off both references: measured
    exported[1, 0, 5, 5] += 0.5
    check = compare(references, exported)
    assert check["max_logit_diff"] == pytest.approx(0.5, abs=1e-3)
    assert check["map_fraction_over_1_255"] > 0 and check["max_map_diff_255"] > 255 * MAP_TOLERANCE

"""An epoch made of fixed shares of several training sets, split over the processes.

    Train:
      Dataset:
        root: data/RGB_Dataset/Train_Dataset
        sets: [MySet-TR, DUTS-TR]
        weights: {DUTS-TR: 0.1}    # each epoch: all of MySet-TR and a fresh tenth of DUTS-TR

``weights`` maps a set name to its share of that set per epoch (sets not named: 1). A share
below 1 draws that many of the set's samples without replacement, afresh every epoch; above 1
repeats the whole set ``floor(share)`` times plus a drawn remainder. So an epoch always holds
the same number of samples (``sum(round(share · size))``) and the learning-rate schedule is
fixed. The draws and the order follow ``(seed, epoch)`` only, so a resumed epoch sees the same
samples; under torchrun every process draws the same epoch and takes every ``world_size``-th
sample of it (padded by repeating its start, as ``torch.utils.data.DistributedSampler`` does).

``torch.utils.data.WeightedRandomSampler`` is not used: it knows nothing of processes and its
draws with replacement give each set a random share per epoch, not the one asked for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch.utils.data import Sampler


def set_ranges(set_names: Sequence[str]) -> dict[str, range]:
    """The index range of each set in a dataset whose samples' sets are ``set_names`` (in
    order, each set's samples contiguous, as ``data.dataset`` lists them)."""
    ranges: dict[str, range] = {}
    start = 0
    for name, group in itertools.groupby(set_names):
        count = len(list(group))
        ranges[name] = range(start, start + count)
        start += count
    return ranges


def check_weights(weights: Mapping[str, object], sets: Sequence[str]) -> dict[str, float]:
    """``weights`` as floats; ValueError naming the entry when it is no listed set or not a
    finite number >= 0, or when every set would get no sample."""
    checked = {}
    for name, value in weights.items():
        if name not in sets:
            raise ValueError(f"weights names {name!r}, which is not one of the sets {list(sets)}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of {name} must be a number >= 0, got {value!r}")
        checked[name] = float(value)
    if sets and all(checked.get(name, 1.0) == 0 for name in sets):
        raise ValueError("every set has weight 0: no training sample left")
    return checked


class WeightedSetSampler(Sampler[int]):
    """Indices of one epoch for this process (module docstring). ``set_names``: the set of
    every sample of the dataset, in order; ``weights``: share per set (default 1)."""

    def __init__(
        self,
        set_names: Sequence[str],
        weights: Mapping[str, float],
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.ranges = set_ranges(list(set_names))
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.ranges}
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0
        self.counts = {name: round(self.weights[name] * len(r)) for name, r in self.ranges.items()}
        self.total = sum(self.counts.values())
        self.num_samples = math.ceil(self.total / num_replicas) if self.total else 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the shares and order of ``epoch`` (call before each epoch)."""
        self.epoch = epoch

    def epoch_indices(self) -> list[int]:
        """Every process's samples of this epoch, before the split."""
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100_003 + self.epoch)
        indices: list[int] = []
        for name, indices_of_set in self.ranges.items():
            count, size = self.counts[name], len(indices_of_set)
            whole, rest = divmod(count, size)
            drawn = torch.randperm(size, generator=generator)[:rest].tolist()
            picks = list(range(size)) * whole + sorted(drawn)
            indices += [indices_of_set[i] for i in picks]
        if self.shuffle:
            order = torch.randperm(len(indices), generator=generator).tolist()
            indices = [indices[i] for i in order]
        return indices

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        padded = self.num_samples * self.num_replicas
        if indices and len(indices) < padded:
            indices += (indices * math.ceil(padded / len(indices)))[: padded - len(indices)]
        return iter(indices[self.rank : padded : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

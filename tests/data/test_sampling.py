"""data/sampling.py: fixed shares of several training sets per epoch, split over processes."""

from collections import Counter

import pytest

from data.sampling import WeightedSetSampler, check_weights, set_ranges

SETS = ["mine"] * 4 + ["big"] * 20  # indices 0-3: mine, 4-23: big


def test_set_ranges():
    assert set_ranges(SETS) == {"mine": range(0, 4), "big": range(4, 24)}


def test_each_epoch_holds_the_asked_shares_drawn_afresh():
    sampler = WeightedSetSampler(SETS, {"big": 0.25, "mine": 2}, seed=7)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == len(sampler) == 8 + 5
        counts = Counter(indices)
        assert all(counts[i] == 2 for i in range(4))  # mine twice
        big = [i for i in indices if i >= 4]
        assert len(big) == len(set(big)) == 5  # a quarter of big, without repeats
        epochs.append(sorted(big))
    assert len({tuple(e) for e in epochs}) > 1  # another quarter in another epoch
    sampler.set_epoch(1)
    assert sorted(i for i in sampler if i >= 4) == epochs[1]  # an epoch repeats (resume)


def test_processes_split_one_epoch():
    shares = []
    for rank in range(2):
        sampler = WeightedSetSampler(SETS, {"big": 0.25}, num_replicas=2, rank=rank, seed=3)
        sampler.set_epoch(4)
        shares.append(list(sampler))
    whole = WeightedSetSampler(SETS, {"big": 0.25}, seed=3)
    whole.set_epoch(4)
    epoch = whole.epoch_indices()  # 9 samples: padded to 10 with its first
    assert [len(share) for share in shares] == [5, 5]
    assert sorted(shares[0] + shares[1]) == sorted(epoch + epoch[:1])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"other": 1}, "weights names 'other', which is not one of the sets"),
        ({"big": -1}, "weight of big must be a number >= 0"),
        ({"big": "a lot"}, "weight of big must be a number >= 0"),
        ({"big": 0, "mine": 0}, "every set has weight 0"),
    ],
)
def test_bad_weights_are_named(weights, message):
    with pytest.raises(ValueError, match=message):
        check_weights(weights, ["mine", "big"])

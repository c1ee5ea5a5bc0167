"""The training data module's samplers: seeded epochs, and the cap on near-duplicate groups."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.training.data import EpochSeededSampler, GroupCappedSampler

# 3 singletons, a pair and a group of 5 copies: rows 0..9.
GROUPS = np.array([7, 3, 3, 9, 5, 5, 5, 5, 5, 1])


def _epoch(sampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_epoch_seeded_sampler_is_a_permutation_fixed_by_seed_and_epoch():
    s = EpochSeededSampler(10, seed=3)
    first = _epoch(s, 0)
    assert sorted(first) == list(range(10))
    assert _epoch(s, 0) == first and _epoch(s, 1) != first


def test_group_cap_keeps_at_most_cap_copies_of_each_group_per_epoch():
    s = GroupCappedSampler(GROUPS, cap=2, seed=0)
    assert len(s) == 3 + 2 + 2  # singletons whole, the pair whole, 2 of the 5 copies
    for epoch in range(5):
        rows = _epoch(s, epoch)
        assert len(rows) == len(s) == len(set(rows))
        picked = GROUPS[rows]
        assert {g: int((picked == g).sum()) for g in np.unique(GROUPS)} == \
            {1: 1, 3: 2, 5: 2, 7: 1, 9: 1}


def test_group_cap_draws_other_copies_each_epoch_and_repeats_an_epoch_exactly():
    s = GroupCappedSampler(GROUPS, cap=1, seed=0)
    epochs = [_epoch(s, e) for e in range(12)]
    assert _epoch(s, 4) == epochs[4]  # a resumed run sees the same epoch
    copies_seen = {r for rows in epochs for r in rows if GROUPS[r] == 5}
    assert copies_seen == {4, 5, 6, 7, 8}  # every copy is trained on over the run
    assert len({tuple(rows) for rows in epochs}) > 1


@pytest.mark.parametrize("cap, expected", [(1, [2.0, 1.0, 1.0]), (2, [3.0, 2.0, 2.0]),
                                           (10, [5.0, 3.0, 2.0])])
def test_expected_class_counts_follow_the_cap(cap, expected):
    # class 0: a singleton and a group of 4; class 1: a group of 3; class 2: a pair
    groups = np.array([0, 1, 1, 1, 1, 2, 2, 2, 3, 3])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    s = GroupCappedSampler(groups, cap=cap, seed=0)
    assert s.expected_class_counts(labels, 3).tolist() == expected


@pytest.mark.parametrize("make", [lambda: EpochSeededSampler(10, seed=3),
                                  lambda: GroupCappedSampler(GROUPS, cap=2, seed=0)],
                         ids=["seeded", "group-capped"])
def test_under_ddp_the_ranks_split_each_epoch_of_our_sampler(make):
    # Under DDP Lightning wraps a custom sampler in DistributedSamplerWrapper (shuffle off,
    # since ours is not a RandomSampler) and calls set_epoch on the wrapper; the ranks must
    # then share out our sampler's epoch, and the next epoch must be a new draw.
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    own = make()
    for epoch in (0, 1):
        shards = []
        for rank in (0, 1):
            wrapper = DistributedSamplerWrapper(make(), num_replicas=2, rank=rank,
                                                shuffle=False)
            wrapper.set_epoch(epoch)
            shards.append(list(wrapper))
        assert len(shards[0]) == len(shards[1]) == (len(own) + 1) // 2
        expected = _epoch(own, epoch)
        padded = expected + expected[:len(shards[0]) * 2 - len(expected)]
        assert [r for pair in zip(*shards, strict=True) for r in pair] == padded
    assert _epoch(own, 0) != _epoch(own, 1)

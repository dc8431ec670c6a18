"""TrainSampler: seeded epochs, exact mid-epoch resume, disjoint rank shards."""
from __future__ import annotations

import pytest

from zoo.data import TrainSampler


def items(sampler: TrainSampler) -> list[tuple[int, int]]:
    return list(sampler)


def test_deterministic_per_epoch_and_different_across_epochs():
    a, b = TrainSampler(50, seed=3), TrainSampler(50, seed=3)
    assert items(a) == items(b)
    first = items(a)
    a.set_epoch(1)
    assert items(a) != first and sorted(i for i, _ in items(a)) == list(range(50))
    assert items(TrainSampler(50, seed=4)) != first
    assert len({s for _, s in first}) == 50  # every position gets its own seed


def test_unshuffled_order_is_the_identity():
    assert [i for i, _ in TrainSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]


def test_set_start_skips_exactly_and_is_forgotten_in_the_next_epoch():
    sampler = TrainSampler(20, seed=1)
    sampler.set_epoch(2)
    full = items(sampler)
    sampler.set_start(7)
    assert items(sampler) == full[7:] and len(sampler) == 13
    sampler.set_epoch(2)  # re-announcing the same epoch keeps the resume point
    assert len(sampler) == 13
    sampler.set_epoch(3)
    assert len(sampler) == 20
    with pytest.raises(ValueError):
        sampler.set_start(21)


def test_rank_shards_are_disjoint_and_cover_the_epoch():
    shards = [items(TrainSampler(12, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    indices = [{i for i, _ in s} for s in shards]
    assert set.union(*indices) == set(range(12)) and sum(map(len, indices)) == 12
    single = items(TrainSampler(12, seed=5))
    assert sorted(p for s in shards for p in s) == sorted(single)  # same (index, seed) pairs as one process


def test_uneven_length_is_padded_like_distributed_sampler():
    shards = [items(TrainSampler(10, seed=0, rank=r, world_size=4)) for r in range(4)]
    assert [len(s) for s in shards] == [3, 3, 3, 3]
    assert set(p for s in shards for p in s) == set(items(TrainSampler(10, seed=0)))  # same pairs, two repeated

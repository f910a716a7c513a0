"""The copies' generator: a pure function of (seed, draw number), whether drawn in a group or alone,
and uniform enough for the ops' choices."""

from __future__ import annotations

import collections
import random

import pytest

from augment import rng


def test_a_stream_is_the_same_drawn_in_a_group_or_alone_past_the_pool():
    seeds = [0, 1, 7, 2**53 - 1, 123456789]
    grouped = rng.for_seeds(seeds)
    for seed, generator in zip(seeds, grouped):
        alone = rng.CopyRandom(seed)
        drawn = [generator.random() for _ in range(rng.POOL + 10)]  # past the pool: computed in Python
        assert drawn == [alone.random() for _ in range(rng.POOL + 10)]
        assert drawn[:3] == [(rng.draw(seed, i) >> 11) / 2**53 for i in range(3)]
    assert len({g.random() for g in rng.for_seeds(seeds)}) == len(seeds)  # seeds give different streams


def test_uniforms_are_the_same_draws_as_random():
    one, other = rng.CopyRandom(42), rng.CopyRandom(42)
    one.random()
    other.random()
    assert one.uniforms(rng.POOL + 5) == [other.random() for _ in range(rng.POOL + 5)]
    reference = random.Random(3)  # any other generator: its own random(), n times
    assert rng.uniforms(random.Random(3), 4) == [reference.random() for _ in range(4)]


def test_the_ops_choices_are_uniform():
    counts = collections.Counter()
    picks = collections.Counter()
    for seed in range(20_000):
        generator = rng.CopyRandom(seed * 2654435761)
        counts[generator.randint(1, 6)] += 1
        picks[tuple(sorted(generator.sample(range(5), 2)))] += 1
        assert 0.0 <= generator.random() < 1.0
    assert set(counts) == set(range(1, 7)) and max(counts.values()) / min(counts.values()) < 1.1
    assert len(picks) == 10 and max(picks.values()) / min(picks.values()) < 1.15
    shuffled = list(range(10))
    rng.CopyRandom(5).shuffle(shuffled)
    assert sorted(shuffled) == list(range(10)) and shuffled != list(range(10))


def test_more_than_64_bits_at_once_is_refused():
    with pytest.raises(ValueError, match="64 bits"):
        rng.CopyRandom(1).getrandbits(65)

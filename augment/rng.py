"""The generator each augmented copy draws from: SplitMix64 over the copy's seed, with
`random.Random`'s methods, whose draw `i` is a pure function of (seed, i).

Why not `random.Random(seed)`: seeding the Mersenne Twister fills 624 words of state, about 7 µs,
which was a tenth of a row's whole cost, while an op draws a handful of numbers. Here a group's
first draws come from one vectorized NumPy pass (`for_seeds`), and any draw past them is computed in
Python from the same formula, so a copy never depends on the group it was made in: `replay`, which
makes one copy alone, gets the same numbers.
"""

from __future__ import annotations

import random

import numpy as np

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_UNIT = 1.0 / (1 << 53)
POOL = 32  # draws made in advance per copy: enough for most ops on most rows


def draw(seed: int, i: int) -> int:
    """Draw `i` (from 0) of the stream for `seed`: SplitMix64's output for state seed + (i+1)·γ."""
    z = (seed + (i + 1) * _GAMMA) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def _pools(seeds: list[int], size: int) -> list[list[int]]:
    """The first `size` draws of each seed's stream, computed together (what `draw` gives)."""
    z = np.asarray(seeds, dtype=np.uint64)[:, None] + _STEPS[:size]  # uint64 wraps modulo 2**64, as wanted
    z ^= z >> _30
    z *= _M1
    z ^= z >> _27
    z *= _M2
    z ^= z >> _31
    return z.tolist()


_STEPS = np.arange(1, POOL + 1, dtype=np.uint64) * np.uint64(_GAMMA)
_30, _27, _31, _M1, _M2 = (np.uint64(v) for v in (30, 27, 31, _MIX1, _MIX2))


class CopyRandom:
    """The `random.Random` methods the ops call (choice, sample, shuffle, randrange, randint, random),
    over one copy's stream. Not a subclass: a Random carries the Twister's 2.5 KB of state, and
    allocating it for every copy cost as much as the draws."""

    __slots__ = ("_seed", "_pool", "_next")

    # random.Random's own algorithms, which only call _randbelow and random().
    choice = random.Random.choice
    sample = random.Random.sample
    shuffle = random.Random.shuffle
    randrange = random.Random.randrange
    randint = random.Random.randint
    _randbelow = random.Random._randbelow_with_getrandbits

    def __init__(self, seed: int, pool: list[int] | None = None):
        self._seed = seed
        self._pool = pool or []  # the stream's first draws when made in advance; the rest on demand
        self._next = 0

    def _draw(self) -> int:
        i = self._next
        self._next = i + 1
        pool = self._pool
        return pool[i] if i < len(pool) else draw(self._seed, i)

    def getrandbits(self, k: int) -> int:
        if k > 64:
            raise ValueError("at most 64 bits per draw")
        return self._draw() >> (64 - k)

    def random(self) -> float:
        return (self._draw() >> 11) * _UNIT

    def uniforms(self, n: int) -> list[float]:
        """`n` calls of random() at once (delete draws one per word)."""
        i = self._next
        self._next = i + n
        pool = self._pool
        values = pool[i:i + n] if i + n <= len(pool) else [pool[j] if j < len(pool) else draw(self._seed, j)
                                                           for j in range(i, i + n)]
        return [(value >> 11) * _UNIT for value in values]


def for_seeds(seeds: list[int]) -> list[CopyRandom]:
    """One generator per seed, their first draws made in one pass."""
    return [CopyRandom(seed, pool) for seed, pool in zip(seeds, _pools(seeds, POOL))]


def uniforms(rng: random.Random, n: int) -> list[float]:
    """`n` draws of rng.random(), in order, at once when the generator allows it."""
    return rng.uniforms(n) if isinstance(rng, CopyRandom) else [rng.random() for _ in range(n)]

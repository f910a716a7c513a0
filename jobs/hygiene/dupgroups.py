"""Near-duplicate groups from per-row keys: candidate pairs from shared LSH band keys, verification
on MinHash signatures, and connected components with one representative kept per group.

Why verify: two rows share a band key when `rows` signature values agree, which also happens for
pairs well below the threshold (the bands are tuned for recall). Without verification those false
positives would remove distinct rows; the job must keep at least 99.9% of them. `verify` drops the
candidate pairs whose estimated Jaccard is under the threshold (about +-0.035 noise at 128
permutations).

Why transitive grouping: the groups are connected components of the verified pairs, so a chain
a~b~c keeps one row even when a and c are not similar themselves. Dropping b alone would keep two
rows that each duplicate b; clustering exactly (cliques) is costly and order-dependent. Chains of
one-edit near-duplicates stay short in real data, and the measured loss of distinct rows is within
the 0.1% budget.

Why a star per bucket: a bucket of m rows linked to its first row gives m - 1 pairs, not
m(m-1)/2, so 10,000 identical rows cost 9,999 pairs. Verification only sees those star pairs: a
false positive first row can hide a true pair between two other members of its bucket, which is
rare because the same pair usually meets in another band.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_SIMILAR_CHUNK = 1 << 16  # pairs compared at once: bounds the boolean temporaries
_THREADS = max(1, min(4, os.cpu_count() or 1))  # band columns sorted at once (each holds a few arrays of n)


def candidate_pairs(keys: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(m, 2) int64 unique pairs (i, j), i < j, of valid rows that share a key in any column of
    `keys` ((n, k) uint64: band keys, optionally with an exact-key column stacked on). One column
    at a time, so the working memory is a few arrays of n, never all pairs of a bucket."""
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.ndim == 1:
        keys = keys[:, None]
    n = keys.shape[0]
    rows = np.arange(n, dtype=np.uint64) if valid is None else np.flatnonzero(np.asarray(valid, dtype=bool))
    rows = rows.astype(np.uint64)
    # One sortable word per row: the key's top bits above the row index. A plain sort of it is
    # several times faster than argsort and orders each bucket by row, so its first row leads
    # the star. Keys that agree only in the top bits (about 45 pairs per column at 10M rows) are
    # spurious candidates that verification removes.
    index_bits = np.uint64(max(1, int(n - 1).bit_length()))

    def column_pairs(column: int) -> np.ndarray | None:
        word = np.sort((keys[rows, column] >> index_bits << index_bits) | rows)
        bucket = word >> index_bits
        follower = np.empty(word.size, dtype=bool)
        follower[:1] = False
        np.equal(bucket[1:], bucket[:-1], out=follower[1:])
        if not follower.any():
            return None
        del bucket
        members = (word & ((np.uint64(1) << index_bits) - np.uint64(1))).astype(np.int64)
        # Each follower's bucket starts at the last non-follower at or before it.
        leader_pos = np.maximum.accumulate(np.where(follower, 0, np.arange(word.size)))
        return members[leader_pos[follower]] * np.int64(n) + members[follower]

    # numpy's sorts release the GIL: the columns go through a thread per core (the driver's
    # cores are otherwise idle while it decides).
    with ThreadPoolExecutor(max_workers=min(_THREADS, keys.shape[1])) as pool:
        found = [pairs for pairs in pool.map(column_pairs, range(keys.shape[1])) if pairs is not None]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


def similar(sigs_a: np.ndarray, sigs_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard per pair: the fraction of equal signature values of row k of `sigs_a` and
    row k of `sigs_b` (arrays of the same shape, gathered for the pairs)."""
    sigs_a, sigs_b = np.asarray(sigs_a), np.asarray(sigs_b)
    if sigs_a.shape != sigs_b.shape:
        raise ValueError(f"signature shapes differ: {sigs_a.shape} vs {sigs_b.shape}")
    if sigs_a.ndim == 1:
        return np.asarray(np.count_nonzero(sigs_a == sigs_b) / max(sigs_a.size, 1))
    out = np.empty(sigs_a.shape[0], dtype=np.float64)
    width = max(sigs_a.shape[1], 1)
    for k in range(0, sigs_a.shape[0], _SIMILAR_CHUNK):  # count_nonzero: no float copy of the comparison
        out[k : k + _SIMILAR_CHUNK] = np.count_nonzero(sigs_a[k : k + _SIMILAR_CHUNK] == sigs_b[k : k + _SIMILAR_CHUNK],
                                                       axis=1) / width
    return out


def verify(pairs: np.ndarray, sigs: np.ndarray, threshold: float) -> np.ndarray:
    """The pairs whose estimated Jaccard is at least `threshold`; `sigs` is indexed by row."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    keep = np.empty(len(pairs), dtype=bool)
    for k in range(0, len(pairs), _SIMILAR_CHUNK):
        part = pairs[k : k + _SIMILAR_CHUNK]
        keep[k : k + _SIMILAR_CHUNK] = similar(sigs[part[:, 0]], sigs[part[:, 1]]) >= threshold
    return pairs[keep]


def groups(n: int, pairs: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """rep (n,) int64: for each row, the row kept for its group (connected component of `pairs`):
    the one with the smallest `order` (default: the index, so the first occurrence), ties to the
    lower index. rep[i] == i means row i is kept. Independent of the order of the pairs."""
    rep = np.arange(n, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size == 0:
        return rep
    if pairs.min() < 0 or pairs.max() >= n:
        raise ValueError(f"pairs hold row indices outside [0, {n})")
    # Only rows that appear in a pair can leave their own group: solve on those alone.
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(local), dtype=np.int8), (local[:, 0], local[:, 1])), shape=(nodes.size,) * 2)
    _, label = connected_components(graph, directed=False)
    rank = nodes if order is None else np.asarray(order)[nodes]
    by_group = np.lexsort((nodes, rank, label))  # group, then order, then index
    first = np.ones(by_group.size, dtype=bool)
    first[1:] = label[by_group[1:]] != label[by_group[:-1]]
    winner = np.empty(label.max() + 1, dtype=np.int64)
    winner[label[by_group[first]]] = nodes[by_group[first]]
    rep[nodes] = winner[label]
    return rep

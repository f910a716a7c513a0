"""Order-independent digests of row ids: the identity check behind exactly-once.

A digest is the sum, modulo 2**128, of each id's 128-bit BLAKE2b hash, with the count beside it.
Sums combine across parts and shards in any order, and unlike XOR a doubled id does not cancel
out: a stage that drops one row and doubles another changes the digest though not the count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MODULUS = 1 << 128


def id_digest(ids: Iterable[str]) -> str:
    total = 0
    for row_id in ids:
        total += int.from_bytes(hashlib.blake2b(row_id.encode("utf-8", "surrogatepass"), digest_size=16).digest(),
                                "big")
    return f"{total % MODULUS:032x}"


def combine(digests: Iterable[str]) -> str:
    return f"{sum(int(d, 16) for d in digests) % MODULUS:032x}"

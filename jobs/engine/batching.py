"""How the transformers backend groups units into forward passes: padding is where a plain loop
wastes its time, so batches hold inputs of similar length under a row and token budget."""

from __future__ import annotations

# Encoder slices (see encoder_slices): big enough for efficient matmuls, tight enough to pad little.
_SLICE_MIN_TOKENS, _SLICE_MAX_TOKENS, _SLICE_MIN_EFFICIENCY = 1024, 8192, 0.95


def plan_batches(lengths: list[int], batch_size: int, max_batch_tokens: int | None,
                 extra_tokens: int = 0) -> list[list[int]]:
    """Group indices into batches of similar length: sorted by length, at most `batch_size` rows and
    rows × (longest + `extra_tokens`) ≤ `max_batch_tokens`. A row over the budget alone gets its own
    batch. Longest batches come first, so memory trouble shows at the start of a block."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        rows = len(current) + 1
        cost = rows * (lengths[index] + extra_tokens)  # sorted: this row is the longest so far
        if current and (rows > batch_size or (max_batch_tokens and cost > max_batch_tokens)):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches[::-1]


def encoder_slices(lengths: list[int], min_tokens: int = _SLICE_MIN_TOKENS, max_tokens: int = _SLICE_MAX_TOKENS,
                   min_efficiency: float = _SLICE_MIN_EFFICIENCY) -> list[list[int]]:
    """Split one decode batch into encoder calls over length-sorted neighbours. A slice grows while
    it stays under `max_tokens` padded tokens and either is still small (under `min_tokens`, where
    per-call overhead outweighs padding) or keeps real/padded tokens at or above `min_efficiency`."""
    slices: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        length = lengths[index]
        padded = (len(current) + 1) * length  # sorted: this row sets the slice's width
        small = len(current) * (lengths[current[-1]] if current else 0) < min_tokens
        if current and (padded > max_tokens or not (small or (real + length) / padded >= min_efficiency)):
            slices.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        slices.append(current)
    return slices

"""Seeds per row, and per-row sampling for the transformers backend: a row samples the same text
whatever batch, block or worker it lands in, and the global RNG is never used. (The vLLM backend
passes the same seed to vLLM per request.)"""

from __future__ import annotations

import hashlib


def row_seed(run_seed: int, stage_index: int, row_id: str, copy: int) -> int:
    """A row's sampling seed from the job seed, the stage, the row id and the sample copy."""
    digest = hashlib.sha256(f"{run_seed}\x1f{stage_index}\x1f{row_id}\x1f{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def row_picker(seeds: list[int], temperature: float, top_k: int, top_p: float, device: str):
    """`pick(scores, rows)` draws the next token of each of `rows` (positions in `seeds`) from that
    row's own generator after temperature, top-k and top-p."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = [TemperatureLogitsWarper(temperature)]
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def pick(scores, rows: list[int]):
        for warper in warpers:
            scores = warper(None, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        return torch.cat([torch.multinomial(probs[i], 1, generator=generators[row]) for i, row in enumerate(rows)])

    return pick


class RowSampler:
    """A logits processor for `generate` that leaves only each row's sampled token possible, so that
    greedy selection picks it."""

    def __init__(self, pick):
        self.pick = pick

    def __call__(self, input_ids, scores):
        picks = self.pick(scores, list(range(scores.shape[0])))
        forced = scores.new_full(scores.shape, float("-inf"))
        return forced.scatter_(1, picks[:, None], 0.0)

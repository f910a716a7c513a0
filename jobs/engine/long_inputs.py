"""Over-long inputs, checked in tokens before any model call (vLLM would fail a whole call on one
bad prompt): truncate them, chunk them into parts that fit, or fail the row alone."""

from __future__ import annotations

from typing import Any

from jobs.errors import RowError

COUNTERS = {"truncate": "inputs_truncated", "chunk": "inputs_chunked"}


def cut_points(offsets: list[tuple[int, int]], text: str, keep: int) -> list[int]:
    """Character positions that split `text` into pieces of at most `keep` tokens, cut at token
    starts and moved back to a space when one is near, so words stay whole."""
    points = []
    start_token = 0
    while len(offsets) - start_token > keep:
        end_token = start_token + keep
        cut = offsets[end_token][0]
        floor = offsets[start_token][0] + (cut - offsets[start_token][0]) // 2
        space = text.rfind(" ", floor, cut + 1)
        if space > floor:
            cut = space
            while end_token > start_token + 1 and offsets[end_token - 1][0] >= cut:
                end_token -= 1
        points.append(cut)
        start_token = end_token
    return points



class LongInputs:
    """Fits rows to `limit` tokens by shortening their `cut_field`, re-rendering the prompt around it."""

    def __init__(self, prompter, limit: int | None, cut_field: str, is_seq2seq: bool):
        self.prompter, self.limit, self.cut_field, self.is_seq2seq = prompter, limit, cut_field, is_seq2seq
        self.tokenizer = prompter.tokenizer

    def too_long(self, ids: list[int]) -> bool:
        return bool(self.limit) and len(ids) > self.limit

    def fit(self, fields: dict[str, Any], ids: list[int], mode: str) -> list[list[int]]:
        """Shorten an over-long row: truncate or chunk its `cut_field` (mode), or raise RowError."""
        limit = self.limit
        if mode == "fail":
            raise RowError("input_too_long", f"{len(ids)} input tokens; the limit is {limit} (long_input: fail)")
        cut = self.cut_field
        text = str(fields[cut])
        overhead = len(ids) - len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if limit - overhead <= 0:
            raise RowError("input_too_long", f"the prompt without {cut!r} already has {overhead} tokens; "
                           f"the limit is {limit}")
        truncate = mode == "truncate"
        queue = self.split(text, limit - overhead, first_only=truncate)
        out = []
        while queue:
            part = queue.pop(0)
            part_ids = self.prompter.encode([self.prompter.prompt_text({**fields, cut: part})])[0]
            if len(part_ids) > limit:
                # A cut can tokenize differently in context: split this piece smaller (its text is kept)
                # or, for truncate, shorten it; each retry is strictly shorter, so this ends.
                keep = len(self.tokenizer(part, add_special_tokens=False)["input_ids"]) - (len(part_ids) - limit)
                smaller = self.split(part, keep, first_only=truncate) if keep > 0 else [part]
                if smaller != [part]:
                    queue[:0] = smaller
                    continue
                part_ids = self.hard_truncate(part_ids)
            out.append(part_ids)
        return out

    def split(self, text: str, keep: int, first_only: bool = False) -> list[str]:
        """`text` in pieces of at most `keep` tokens, cut between words; only the first if asked."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        bounds = [0, *cut_points(offsets, text, keep), len(text)]
        pieces = [text[a:b].strip() for a, b in zip(bounds, bounds[1:])]
        pieces = [p for p in pieces if p]
        return pieces[:1] if first_only else pieces

    def hard_truncate(self, ids: list[int]) -> list[int]:
        if self.is_seq2seq:  # keep the end-of-sequence token the encoder was trained with
            return ids[: self.limit - 1] + ids[-1:]
        return ids[-self.limit:]  # keep the chat template's assistant header, next to generation

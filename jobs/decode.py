"""A lean decoding loop for encoder-decoder models: greedy or per-row sampled, one sequence per row.

`model.generate` pays on every step for machinery this common case does not use: minimum-length and
forced-token processors that rewrite the whole (rows × vocabulary) logits tensor with `where` and
copies, stopping criteria, input preparation (profiled on a CPU with a minimum length set: about a
third of a step). This loop calls the same model forward with the same cache, so its greedy tokens
are the ones `generate` picks; it masks only the few columns a rule touches, and it drops finished
rows from the batch once enough of them are done, so one long output does not keep a whole batch of
finished rows computing.

Any generation setting this loop does not implement (beams, repetition penalties, banned words, ...)
makes `unsupported_settings` name it, and the engine uses `generate` instead.
"""

from __future__ import annotations

from typing import Callable

# Settings that leave this loop's result unchanged at these values; anything else needs `generate`.
_NEUTRAL_SETTINGS = {
    "num_beams": (None, 1),
    "num_beam_groups": (None, 1),
    "num_return_sequences": (None, 1),
    "min_length": (None, 0),  # counts the decoder start token; the engine sets min_new_tokens instead
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "sequence_bias": (None,),
    "forced_decoder_ids": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "penalty_alpha": (None,),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "max_time": (None,),
    "do_sample": (None, False),  # the engine samples per row itself, never through generate
    "use_cache": (None, True),
}
# A finished row stays in the batch (its output ignored) until this share of the batch is finished:
# dropping rows copies the caches, which costs about as much as a few steps.
_SHRINK_SHARE = 0.25

# Picks the next token of each active row: (float logits [rows, vocab], active row numbers, step).
Chooser = Callable[["torch.Tensor", "torch.Tensor", int], "torch.Tensor"]  # noqa: F821


def unsupported_settings(generation_config) -> list[str]:
    """The generation settings that need `model.generate`; empty when the lean loop gives the same result."""
    found = []
    for key, neutral in _NEUTRAL_SETTINGS.items():
        value = getattr(generation_config, key, None)
        if value not in neutral:
            found.append(f"{key}={value!r}")
    banned = getattr(generation_config, "bad_words_ids", None) or []
    if any(len(words) != 1 for words in banned):  # banned sequences need generate; single tokens are masked here
        found.append("bad_words_ids with multi-token entries")
    return found


def banned_tokens(generation_config, eos_ids: set[int]) -> tuple[set[int], set[int]]:
    """Tokens never to generate, and tokens not to generate first (Marian bans its pad token, say).
    As in `generate`, an EOS token listed in `bad_words_ids` stays allowed."""
    always = {words[0] for words in (getattr(generation_config, "bad_words_ids", None) or [])} - set(eos_ids)
    always |= set(getattr(generation_config, "suppress_tokens", None) or [])
    first = set(getattr(generation_config, "begin_suppress_tokens", None) or [])
    return always, first


def greedy_chooser(logits, active, step):
    return logits.argmax(dim=-1)


def decode_seq2seq(model, encoder_hidden, attention_mask, *, groups: list[list[int]], start_id: int,
                   max_new_tokens: int, min_new_tokens: int, eos_ids: set[int], forced_bos_id: int | None = None,
                   forced_eos_id: int | None = None, banned: tuple[set[int], set[int]] = (set(), set()),
                   choose: Chooser = greedy_chooser) -> list[list[int]]:
    """Generate up to `max_new_tokens` tokens per row after `start_id`; returns each row's new tokens,
    ending with its EOS token when it made one. `encoder_hidden` and `attention_mask` are the padded
    encoder output and its mask (rows × width); `groups` partitions the rows into sets of similar
    length (the encoder's slices); `banned` holds tokens never to pick and tokens not to pick first.
    Rows are independent of one another.

    Cross-attention is where a wide decode batch wastes work: every step reads every row's keys to the
    batch's longest input. So the first step runs group by group (each group's keys are projected at
    its own width), and later steps attend group by group (`_GroupedCrossAttention`), while the
    projections, feed-forward layers and output layer still run over all rows at once."""
    import torch

    device = encoder_hidden.device
    order = [row for group in groups for row in group]
    sizes = [len(group) for group in groups]
    lengths = attention_mask.sum(dim=1).tolist()
    widths = [max(lengths[row] for row in group) for group in groups]
    index = torch.tensor(order, device=device)
    encoder_hidden, attention_mask = encoder_hidden[index], attention_mask[index]
    active = index.clone()  # original row number of each batch position
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    never = torch.tensor(sorted(banned[0]), dtype=torch.long, device=device)
    not_first = torch.tensor(sorted(banned[0] | banned[1]), dtype=torch.long, device=device)
    first_free_step = 1 if forced_bos_id is not None else 0  # begin-suppression follows a forced token

    logits, cache = _first_step(model, encoder_hidden, attention_mask, sizes, widths, start_id)
    running = torch.ones(len(order), dtype=torch.bool, device=device)  # batch positions still generating
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []  # (row numbers, their tokens) per step
    grouped = _GroupedCrossAttention(cache, sizes, widths)
    with grouped:
        for step in range(max_new_tokens):
            if step:
                out = model(encoder_outputs=(encoder_hidden,), attention_mask=attention_mask,
                            decoder_input_ids=tokens, past_key_values=cache, use_cache=True)
                logits = out.logits[:, -1, :].float()
            if step < min_new_tokens and len(eos):
                logits[:, eos] = float("-inf")
            masked = not_first if step == first_free_step else never
            if len(masked):
                logits[:, masked] = float("-inf")
            if step == max_new_tokens - 1 and forced_eos_id is not None:  # generate applies it last: it wins
                picked = torch.full((len(active),), forced_eos_id, dtype=torch.long, device=device)
            elif step == 0 and forced_bos_id is not None:
                picked = torch.full((len(active),), forced_bos_id, dtype=torch.long, device=device)
            else:
                picked = choose(logits, active, step)
            steps.append((active[running], picked[running]))
            running &= ~torch.isin(picked, eos)
            if not bool(running.any()):
                break
            tokens = picked[:, None]
            if float(running.sum()) <= (1 - _SHRINK_SHARE) * len(active):
                keep = running.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                grouped.keep(running)
                active, running, tokens = active[keep], running[keep], tokens[keep]
                attention_mask, encoder_hidden = attention_mask[keep], encoder_hidden[keep]
    return _collect(steps, len(order))


def _first_step(model, encoder_hidden, attention_mask, sizes: list[int], widths: list[int], start_id: int):
    """The first decoding step, one group at a time at the group's own width; returns the logits of all
    rows and one cache holding every row (cross-attention keys zero-padded to the widest group)."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    def new_cache():
        return EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))

    logits, caches, start = [], [], 0
    for size, width in zip(sizes, widths):
        rows = slice(start, start + size)
        cache = new_cache()
        tokens = torch.full((size, 1), start_id, dtype=torch.long, device=encoder_hidden.device)
        out = model(encoder_outputs=(encoder_hidden[rows, :width],), attention_mask=attention_mask[rows, :width],
                    decoder_input_ids=tokens, past_key_values=cache, use_cache=True)
        logits.append(out.logits[:, -1, :].float())
        caches.append(cache)
        start += size
    if len(caches) == 1:
        return logits[0], caches[0]
    merged = new_cache()
    for layer in range(len(caches[0].self_attention_cache.layers)):
        if not getattr(caches[0].self_attention_cache.layers[layer], "is_initialized", True):
            continue  # the cache is sized from the config, which may count more layers than the decoder has
        own = [c.self_attention_cache.layers[layer] for c in caches]
        merged.self_attention_cache.update(torch.cat([c.keys for c in own]), torch.cat([c.values for c in own]), layer)
        cross = [c.cross_attention_cache.layers[layer] for c in caches]
        keys = _stack_padded([c.keys for c in cross], encoder_hidden.shape[1])
        values = _stack_padded([c.values for c in cross], encoder_hidden.shape[1])
        # Hand the merged tensors to the cache as they are: `update` would copy them once more.
        target = merged.cross_attention_cache.layers[layer]
        target.lazy_initialization(keys, values)
        target.keys, target.values = keys, values
        merged.is_updated[layer] = True
    return torch.cat(logits), merged


def _stack_padded(parts, width: int):
    """Stack (rows, heads, length, dim) states of several groups along rows, zero-padded to `width`
    positions (the mask hides the padding; zeros keep it finite)."""
    first = parts[0]
    out = first.new_empty((sum(p.shape[0] for p in parts), first.shape[1], width, first.shape[3]))
    start = 0
    for part in parts:
        rows, length = part.shape[0], part.shape[2]
        out[start:start + rows, :, :length] = part
        out[start:start + rows, :, length:] = 0
        start += rows
    return out


class _GroupedCrossAttention:
    """While active, cross-attention calls that read this cache's keys run once per length group,
    each over its group's own width; every other attention call goes to the model's usual function.
    Masked padding contributes nothing to attention, so the result is the same, with less reading.

    It wraps transformers' `sdpa` attention function for the duration (models loaded with another
    attention implementation simply attend over the full width)."""

    def __init__(self, cache, sizes: list[int], widths: list[int]):
        self.cache, self.sizes, self.widths = cache, list(sizes), list(widths)
        self.original = None

    def keep(self, running) -> None:
        """Follow the cache when finished rows are dropped from the batch."""
        kept, start = [], 0
        for size in self.sizes:
            kept.append(int(running[start:start + size].sum()))
            start += size
        pairs = [(k, w) for k, w in zip(kept, self.widths) if k]
        self.sizes, self.widths = [k for k, _ in pairs], [w for _, w in pairs]

    def __enter__(self):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        if len(self.sizes) > 1:
            self.had_local = "sdpa" in ALL_ATTENTION_FUNCTIONS._local_mapping
            self.original = ALL_ATTENTION_FUNCTIONS["sdpa"]
            ALL_ATTENTION_FUNCTIONS["sdpa"] = self.attend
        return self

    def __exit__(self, *exc):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        if self.original is not None:
            if self.had_local:
                ALL_ATTENTION_FUNCTIONS["sdpa"] = self.original
            else:
                del ALL_ATTENTION_FUNCTIONS["sdpa"]
            self.original = None
        return False

    def _is_cross(self, key) -> bool:
        layers = self.cache.cross_attention_cache.layers
        return any(getattr(layer, "keys", None) is key for layer in layers)

    def attend(self, module, query, key, value, attention_mask, **kwargs):
        import torch

        if query.shape[2] != 1 or len(self.sizes) < 2 or not self._is_cross(key):
            return self.original(module, query, key, value, attention_mask, **kwargs)
        outputs, start = [], 0
        bias = kwargs.pop("position_bias", None)
        for size, width in zip(self.sizes, self.widths):
            rows = slice(start, start + size)
            out, _ = self.original(module, query[rows], key[rows, :, :width], value[rows, :, :width],
                                   _cut(attention_mask, rows, width), position_bias=_cut(bias, rows, width), **kwargs)
            outputs.append(out)
            start += size
        return torch.cat(outputs), None


def _cut(tensor, rows: slice, width: int):
    """A mask or bias for some rows and the first `width` keys (a batch dimension of 1 broadcasts)."""
    if tensor is None:
        return None
    if tensor.shape[0] != 1:
        tensor = tensor[rows]
    return tensor[..., :width]


def _collect(steps, rows: int) -> list[list[int]]:
    """Each row's tokens in step order from the per-step (row numbers, tokens) pairs."""
    outputs: list[list[int]] = [[] for _ in range(rows)]
    for row_numbers, picked in steps:
        for row, token in zip(row_numbers.tolist(), picked.tolist()):
            outputs[row].append(token)
    return outputs

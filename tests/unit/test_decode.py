"""The lean decoding loop against `model.generate` on the same encoder output: the same greedy tokens
with length groups, with rows that finish early and leave the batch, with forced and minimum-length
tokens; and the settings it leaves to `generate`."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from jobs import decode
from jobs.engine import EngineConfig
from jobs.engine.hf_backend import TransformersEngine as Engine
from tests.conftest import eda_sentences

TEXTS = [text for _, text in eda_sentences(limit=40)]


def mixed_texts(count: int = 12) -> list[str]:
    """Inputs from one sentence to several, so the groups have clearly different widths."""
    return [" ".join(TEXTS[i:i + 1 + (i * 5) % 4]) for i in range(count)]


def load(path):
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path)


def encoded(model, tokenizer, texts):
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=60)
    with torch.inference_mode():
        hidden = model.get_encoder()(**batch).last_hidden_state
    return hidden, batch["attention_mask"]


def length_groups(mask, count: int) -> list[list[int]]:
    lengths = mask.sum(dim=1).tolist()
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    size = -(-len(order) // count)
    return [order[i:i + size] for i in range(0, len(order), size)]


def reference(model, hidden, mask, eos: set[int], **settings) -> list[list[int]]:
    """What `generate` makes from the same encoder output: new tokens up to and including EOS."""
    with torch.inference_mode():
        out = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                             do_sample=False, num_beams=1, eos_token_id=sorted(eos), **settings)
    rows = []
    for row in out[:, 1:].tolist():
        end = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
        rows.append(row[:end])
    return rows


def lean(model, hidden, mask, groups, eos: set[int], **settings) -> list[list[int]]:
    settings.setdefault("min_new_tokens", 0)
    with torch.inference_mode():
        return decode.decode_seq2seq(model, hidden, mask, groups=groups, start_id=model.config.decoder_start_token_id,
                                     eos_ids=eos, **settings)


@pytest.mark.parametrize("name", ["t5", "marian"])
def test_greedy_tokens_equal_generate_when_attending_group_by_group(tiny_models, name, monkeypatch):
    model, tokenizer = load(getattr(tiny_models, name))
    hidden, mask = encoded(model, tokenizer, mixed_texts())
    grouped_calls = []
    original_cut = decode._cut
    monkeypatch.setattr(decode, "_cut", lambda *a: grouped_calls.append(1) or original_cut(*a))
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    eos = {model.generation_config.eos_token_id}

    tokens = lean(model, hidden, mask, length_groups(mask, 3), eos, max_new_tokens=10)

    assert model.config._attn_implementation == "sdpa" and grouped_calls  # the grouped path really ran
    assert ALL_ATTENTION_FUNCTIONS["sdpa"] is sdpa  # and the usual attention is back afterwards
    assert tokens == reference(model, hidden, mask, eos, max_new_tokens=10)
    assert len({tuple(t) for t in tokens}) > (len(tokens) // 2 if name == "t5" else 1)  # not degenerate
    assert lean(model, hidden, mask, length_groups(mask, 1), eos, max_new_tokens=10) == tokens


def test_rows_that_finish_early_leave_the_batch_and_the_rest_go_on(tiny_models, monkeypatch):
    model, tokenizer = load(tiny_models.t5)
    hidden, mask = encoded(model, tokenizer, mixed_texts(16))
    # A token some rows make early and others later or never stands in for EOS: rows finish at
    # different steps, as a trained model's do.
    free = reference(model, hidden, mask, {-1}, max_new_tokens=12, min_new_tokens=12)
    first_seen = {}
    for row in free:
        for step, token in enumerate(row):
            first_seen.setdefault(token, []).append(step) if token not in row[:step] else None
    stop = max(first_seen, key=lambda t: (len(set(first_seen[t])) > 1) * len(first_seen[t]))
    assert 1 < len(first_seen[stop]) < len(free)
    drops = []
    original = EncoderDecoderCache.batch_select_indices
    monkeypatch.setattr(EncoderDecoderCache, "batch_select_indices",
                        lambda self, keep: drops.append(len(keep)) or original(self, keep))

    tokens = lean(model, hidden, mask, length_groups(mask, 3), {stop}, max_new_tokens=12)

    assert drops  # finished rows were dropped from the batch
    assert tokens == reference(model, hidden, mask, {stop}, max_new_tokens=12)
    assert {len(t) for t in tokens} != {12}


def test_forced_first_token_and_minimum_length_as_generate_applies_them(tiny_models):
    model, tokenizer = load(tiny_models.m2m)
    hidden, mask = encoded(model, tokenizer, mixed_texts(8))
    de = tokenizer.convert_tokens_to_ids("__de__")
    eos = {model.generation_config.eos_token_id}
    settings = {"max_new_tokens": 8, "min_new_tokens": 5}

    tokens = lean(model, hidden, mask, length_groups(mask, 2), eos, forced_bos_id=de, **settings)

    assert tokens == reference(model, hidden, mask, eos, forced_bos_token_id=de, **settings)
    assert all(row[0] == de and len(row) >= 5 for row in tokens)


def test_settings_the_loop_does_not_implement_go_to_generate(tiny_models):
    lean_engine = Engine(EngineConfig(model=str(tiny_models.t5), max_new_tokens=6))
    beams = Engine(EngineConfig(model=str(tiny_models.t5), max_new_tokens=6, num_beams=2))
    penalty = Engine(EngineConfig(model=str(tiny_models.t5), max_new_tokens=6, repetition_penalty=1.3))
    assert lean_engine.decoding == "lean"
    assert beams.decoding == "generate (num_beams=2)"
    assert penalty.decoding == "generate (repetition_penalty=1.3)"
    rows = [{"text": t} for t in mixed_texts(6)]
    for eng in (lean_engine, beams, penalty):
        results = eng.run(rows)
        assert all(r.error is None and r.texts[0] for r in results)
    assert decode.unsupported_settings(lean_engine.generation_config) == []


def test_banned_tokens_are_never_picked_as_generate_bans_them(tiny_models):
    """Marian's configs ban the pad token; single banned tokens are masked in the loop itself."""
    model, tokenizer = load(tiny_models.t5)
    hidden, mask = encoded(model, tokenizer, mixed_texts(8))
    eos = {model.generation_config.eos_token_id}
    free = [t for row in reference(model, hidden, mask, eos, max_new_tokens=8) for t in row]
    favourite = max(set(free), key=free.count)  # the token the model picks most often
    model.generation_config.bad_words_ids = [[favourite]]
    assert decode.unsupported_settings(model.generation_config) == []
    tokens = lean(model, hidden, mask, length_groups(mask, 2), eos, max_new_tokens=8,
                  banned=decode.banned_tokens(model.generation_config, eos))
    assert not any(favourite in row for row in tokens)
    assert tokens == reference(model, hidden, mask, eos, max_new_tokens=8, bad_words_ids=[[favourite]])
    model.generation_config.bad_words_ids = [[favourite, 5]]
    assert decode.unsupported_settings(model.generation_config) == ["bad_words_ids with multi-token entries"]


@pytest.mark.parametrize("settings", [
    {"max_new_tokens": 1, "forced_bos_id": "__de__", "forced_eos_id": 1},  # forced EOS wins, as in generate
    {"max_new_tokens": 6, "forced_bos_id": "__de__", "begin_suppress": True},  # suppression follows the forced token
])
def test_rules_that_meet_apply_in_generates_order(tiny_models, settings):
    model, tokenizer = load(tiny_models.m2m)
    hidden, mask = encoded(model, tokenizer, mixed_texts(8))
    eos = {model.generation_config.eos_token_id}
    gen = {"max_new_tokens": settings["max_new_tokens"]}
    own = {"max_new_tokens": settings["max_new_tokens"]}
    if "forced_bos_id" in settings:
        gen["forced_bos_token_id"] = own["forced_bos_id"] = tokenizer.convert_tokens_to_ids("__de__")
    if "forced_eos_id" in settings:
        gen["forced_eos_token_id"] = own["forced_eos_id"] = settings["forced_eos_id"]
    free = reference(model, hidden, mask, eos, max_new_tokens=3, forced_bos_token_id=gen.get("forced_bos_token_id"))
    common = max({t for row in free for t in row[1:]}, key=lambda t: sum(row.count(t) for row in free))
    if settings.get("begin_suppress"):
        model.generation_config.begin_suppress_tokens = [common]
    try:
        tokens = lean(model, hidden, mask, length_groups(mask, 2), eos,
                      banned=decode.banned_tokens(model.generation_config, eos), **own)
        expected = reference(model, hidden, mask, eos, begin_suppress_tokens=model.generation_config.begin_suppress_tokens,
                             bad_words_ids=model.generation_config.bad_words_ids, **gen)
    finally:
        model.generation_config.begin_suppress_tokens = model.generation_config.bad_words_ids = None
    assert tokens == expected


def test_decoder_shallower_than_the_encoder(tiny_models):
    """T5 variants with fewer decoder than encoder layers: the cache has layers the decoder never fills."""
    from transformers import T5Config, T5ForConditionalGeneration

    _, tokenizer = load(tiny_models.t5)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=1,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, initializer_factor=5.0)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).eval()
    hidden, mask = encoded(model, tokenizer, mixed_texts())
    tokens = lean(model, hidden, mask, length_groups(mask, 3), {1}, max_new_tokens=6)
    assert tokens == reference(model, hidden, mask, {1}, max_new_tokens=6)


def test_half_precision_decodes_in_one_group(tiny_models, monkeypatch):
    """Group-by-group attention moves bf16/fp16 sums at rounding level: the engine keeps one group there."""
    seen = []
    original = decode.decode_seq2seq
    monkeypatch.setattr(decode, "decode_seq2seq", lambda *a, groups, **k: seen.append(len(groups)) or original(
        *a, groups=groups, **k))
    rows = [{"text": t} for t in mixed_texts(40) * 3]
    for dtype in ("float32", "bfloat16"):
        eng = Engine(EngineConfig(model=str(tiny_models.t5), max_new_tokens=4, dtype=dtype))
        eng.run(rows)
    assert seen[0] > 1 and seen[-1] == 1


def test_an_eos_listed_among_bad_words_still_ends_rows_as_in_generate(tiny_models):
    model, tokenizer = load(tiny_models.t5)
    hidden, mask = encoded(model, tokenizer, mixed_texts(16))
    free = reference(model, hidden, mask, {-1}, max_new_tokens=10, min_new_tokens=10)
    counts = Counter(t for row in free for t in set(row))
    stop = max(counts, key=lambda t: (counts[t] < len(free)) * counts[t])  # in many rows, not all
    model.generation_config.bad_words_ids = [[stop]]
    try:
        assert decode.banned_tokens(model.generation_config, {stop}) == (set(), set())
        tokens = lean(model, hidden, mask, length_groups(mask, 2), {stop}, max_new_tokens=10,
                      banned=decode.banned_tokens(model.generation_config, {stop}))
    finally:
        model.generation_config.bad_words_ids = None
    assert tokens == reference(model, hidden, mask, {stop}, max_new_tokens=10, bad_words_ids=[[stop]])
    assert any(row[-1] == stop for row in tokens)

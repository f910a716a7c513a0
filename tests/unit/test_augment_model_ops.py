"""Model-backed augment ops without Ray: contextual insertion with a masked LM and back-translation
through two translation models (tiny random models: the mechanics, not the quality), their
determinism whatever the batch, their preflight, and that they send the stage to actors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from augment import ops
from augment import params as op_params
from augment import tokens as tok
from augment.model_ops import model_op
from augment.augmenter import Augmenter
from augment.params import AugmentParams
from augment.stage import AugmentStage
from jobs.errors import SpecError
from tests.conftest import eda_sentences

TEXTS = [text for _, text in eda_sentences(limit=60) if len(text.split()) >= 6][:24]
MIXED = ["这部电影非常好看，演员的表演也很精彩。", "I love this 电影 so much, the acting is great"]


def insert_op(tiny_models, **kw) -> op_params.InsertOp:
    return op_params.InsertOp(op="insert", model=str(tiny_models.masked_lm), **{"rate": 0.2, **kw})


def augment_params(op: dict, **kw) -> AugmentParams:
    return AugmentParams.model_validate({"use": "augment", "column": "text", "copies": 2, "ops": [op],
                                         "min_english": 0, **kw})


def test_contextual_insert_adds_whole_words_where_the_masks_went(tiny_models):
    op = insert_op(tiny_models)
    impl = model_op(op, "cpu")
    outs = impl.apply_batch(TEXTS, [random.Random(i) for i in range(len(TEXTS))])
    assert all(outs)
    vocabulary = impl.tokenizer.get_vocab()
    for text, out in zip(TEXTS, outs):
        before, after = text.split(), out.split()
        added = Counter(after) - Counter(before)
        assert sum(added.values()) == ops.edits_for(tok.word_count(text), op)  # rate × words, at least one
        assert after[0] == before[0]  # never inserted first
        # Each inserted word is one whole-word entry of the model's vocabulary (a word-start piece).
        assert all(word.isalpha() and f"Ġ{word}" in vocabulary for word in added)
        kept = iter(after)
        assert all(any(w == k for k in kept) for w in before)  # the original words, in order
    assert len({out for out in outs}) == len(outs)


def test_contextual_insert_depends_on_the_copy_not_the_batch(tiny_models):
    op = insert_op(tiny_models, batch_size=5)
    impl = model_op(op, "cpu")
    seeds = list(range(len(TEXTS)))
    together = impl.apply_batch(TEXTS, [random.Random(s) for s in seeds])
    reversed_order = impl.apply_batch(TEXTS[::-1], [random.Random(s) for s in seeds[::-1]])[::-1]
    alone = [impl.apply_batch([t], [random.Random(s)])[0] for t, s in zip(TEXTS[:6], seeds[:6])]
    assert together == reversed_order and together[:6] == alone
    assert impl.apply_batch(TEXTS[:1], [random.Random(99)]) != together[:1]  # another seed, another copy


def test_contextual_insert_takes_chinese_and_mixed_text(tiny_models):
    impl = model_op(insert_op(tiny_models), "cpu")
    outs = impl.apply_batch(MIXED, [random.Random(1), random.Random(2)])
    assert outs[1] is not None and outs[1] != MIXED[1]
    # Chinese is segmented into words, so the masked LM inserts between them, without spaces.
    assert outs[0] is not None and outs[0] != MIXED[0] and " " not in outs[0]
    kept = iter(outs[0])
    assert all(ch in kept for ch in MIXED[0])  # every original character, in order


def test_a_model_without_a_mask_token_is_refused(tiny_models):
    with pytest.raises(SpecError, match="no mask token"):
        model_op(op_params.InsertOp(op="insert", model=str(tiny_models.t5)), "cpu")


def test_augment_block_with_a_model_op_is_the_same_whatever_the_block(tiny_models):
    p = augment_params({"op": "insert", "model": str(tiny_models.masked_lm), "rate": 0.2}, copies=3)
    augmenter = Augmenter(p, seed=5, lexicon=None)
    ids = [f"r{i}" for i in range(len(TEXTS))]
    whole = augmenter.augment_block(TEXTS, ids)
    halves = augmenter.augment_block(TEXTS[:10], ids[:10]) + augmenter.augment_block(TEXTS[10:], ids[10:])
    assert [[(c.text, c.seed) for c in r.copies] for r in whole] == [[(c.text, c.seed) for c in r.copies]
                                                                       for r in halves]
    made = [c for r in whole for c in r.copies]
    assert len(made) > len(TEXTS) * 2 and all(c.op == "insert" for c in made)
    # aug_seed replays a copy exactly, model op included.
    copy = whole[3].copies[1]
    assert augmenter.replay(TEXTS[3], copy.seed, p.ops) == copy.text


def test_back_translation_round_trips_through_the_pivot(tiny_models):
    op = op_params.BackTranslateOp(op="back_translate", model=str(tiny_models.m2m), back_model=str(tiny_models.m2m),
                             source_lang="en", pivot_lang="de", max_new_tokens=12, temperature=1.0)
    impl = model_op(op, "cpu")
    assert impl.there.generation_config.forced_bos_token_id == impl.there.tokenizer.convert_tokens_to_ids("__de__")
    assert impl.back.generation_config.forced_bos_token_id == impl.back.tokenizer.convert_tokens_to_ids("__en__")
    outs = impl.apply_batch(TEXTS[:6] + MIXED, [random.Random(i) for i in range(8)])
    assert all(outs) and outs != TEXTS[:6] + MIXED
    again = impl.apply_batch(TEXTS[:6] + MIXED, [random.Random(i) for i in range(8)])
    assert again == outs  # sampled, but seeded by the copy


def test_greedy_back_translation_makes_one_paraphrase_and_does_not_retry(tiny_models):
    p = augment_params({"op": "back_translate", "model": str(tiny_models.t5), "back_model": str(tiny_models.t5),
                        "max_new_tokens": 8}, copies=3, retries=3)
    augmenter = Augmenter(p, seed=1, lexicon=None)
    results = augmenter.augment_block(TEXTS[:5], [f"r{i}" for i in range(5)])
    counts = augmenter.take_counts()
    assert all(len(r.copies) == 1 for r in results)  # greedy: copies 2 and 3 would repeat copy 1
    assert counts["op_back_translate_dropped_duplicate"] == 10 and counts["op_back_translate_retries"] == 0
    assert all(r.skipped == "back_translate:duplicate" for r in results)


def test_model_ops_send_the_stage_to_actors_and_preflight_checks_their_files(tiny_models, tmp_path):
    rules = augment_params({"op": "delete"})
    model = augment_params({"op": "insert", "model": str(tiny_models.masked_lm)})
    assert not AugmentStage.runs_in_actors(rules) and AugmentStage.runs_in_actors(model)
    assert not model.needs_lexicon  # contextual insertion needs no WordNet (the English guard is off here)
    AugmentStage.preflight(model)
    missing = augment_params({"op": "back_translate", "model": str(tiny_models.m2m),
                              "back_model": str(tmp_path / "nope")})
    with pytest.raises(SpecError, match=r"ops\[0\] \(back_translate\)\.model: .*nope: no such folder"):
        AugmentStage.preflight(missing)


def test_texts_holding_the_mask_token_and_ids_past_the_tokenizer_are_left_alone(tiny_models):
    impl = model_op(insert_op(tiny_models), "cpu")
    texts = [f"a film that is a {impl.tokenizer.mask_token} mess of ideas and bad execution", TEXTS[0]]
    outs = impl.apply_batch(texts, [random.Random(0), random.Random(1)])
    assert outs[0] is None and outs[1] is not None  # its own masks would be ambiguous: no copy, no crash
    assert impl.word(len(impl.tokenizer) + 5) is None  # an output column the tokenizer has no entry for

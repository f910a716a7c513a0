"""The engine without Ray: batch planning, order and batch invariance, long inputs, out-of-memory
back-off, prefix rules, language tokens, per-row seeds, and the model checks behind preflight."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from jobs.engine import EngineConfig, check_model_files, template_fields
from jobs.engine.batching import encoder_slices, plan_batches
from jobs.engine.hf_backend import TransformersEngine as Engine
from jobs.engine.long_inputs import cut_points
from jobs.engine.prompting import render
from jobs.engine.sampling import row_seed
from jobs.errors import SpecError
from tests.conftest import eda_sentences

TEXTS = [text for _, text in eda_sentences(limit=40)]
SHORT = min(TEXTS, key=len)
ROWS = [{"text": t} for t in TEXTS]


def engine(path, **settings) -> Engine:
    settings.setdefault("max_new_tokens", 8)
    return Engine(EngineConfig(model=str(path), **settings))


def texts(results):
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return [r.texts for r in results]


def long_text(sentences: int) -> str:
    return " ".join(TEXTS[:sentences])


# ---- batch planning --------------------------------------------------------------------------


def test_plan_batches_bounds_rows_and_tokens_and_covers_every_index_once():
    lengths = [5, 40, 7, 12, 40, 3, 90, 8, 8, 30]
    batches = plan_batches(lengths, batch_size=3, max_batch_tokens=100, extra_tokens=10)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        if len(batch) > 1:
            assert len(batch) * (max(lengths[i] for i in batch) + 10) <= 100
    assert batches[0] == [6]  # over the budget alone: its own batch, and the longest batch runs first
    flat = [lengths[i] for b in reversed(batches) for i in b]
    assert flat == sorted(lengths)  # batches hold neighbours in length order


def test_plan_batches_without_token_budget_fills_to_batch_size():
    batches = plan_batches([4, 1, 3, 2, 5], batch_size=2, max_batch_tokens=None)
    assert batches == [[4], [2, 0], [1, 3]]  # by length 5 | 3, 4 | 1, 2


def test_encoder_slices_pad_little_yet_are_not_tiny():
    lengths = [7, 9, 12, 20, 21, 22, 60, 61, 64, 120, 125, 200, 250, 259] * 4
    slices = encoder_slices(lengths, min_tokens=100, max_tokens=600, min_efficiency=0.9)
    assert sorted(i for s in slices for i in s) == list(range(len(lengths)))
    for s in slices:
        width, real = max(lengths[i] for i in s), sum(lengths[i] for i in s)
        assert len(s) == 1 or len(s) * width <= 600
        # Below the efficiency bound only while the slice was still small when its last row joined.
        assert real / (len(s) * width) >= 0.9 or (len(s) - 1) * sorted(lengths[i] for i in s)[-2] < 100
    assert max(len(s) for s in slices) > 4  # short rows share a slice
    everything = encoder_slices(lengths, min_tokens=0, max_tokens=10**6, min_efficiency=0.0)
    assert len(everything) == 1  # no bound: one call


# ---- templates and cutting -------------------------------------------------------------------


def test_template_fields_and_render_keep_braces_in_values():
    assert template_fields("Q about {title}: {text} ({title})") == ["title", "text"]
    assert render("say {text}!", {"text": "{not a field}"}) == "say {not a field}!"
    with pytest.raises(ValueError, match="plain column name"):
        template_fields("{text.upper}")
    with pytest.raises(ValueError, match="plain column name"):
        template_fields("{text:>10}")


def test_cut_points_split_at_spaces_into_pieces_of_at_most_keep_tokens(tiny_models):
    eng = engine(tiny_models.marian)
    text = long_text(6)
    piece = eng.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    points = cut_points(piece["offset_mapping"], text, keep=20)
    bounds = [0, *points, len(text)]
    parts = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert "".join(parts) == text and len(parts) > 2
    assert all(text[p] == " " for p in points)  # no word is split
    for part in parts:
        assert len(eng.tokenizer(part, add_special_tokens=False)["input_ids"]) <= 21  # a space may tokenize alone


# ---- batching: order and invariance ----------------------------------------------------------


@pytest.mark.parametrize("model", ["t5", "llama_chat"])
def test_greedy_outputs_do_not_depend_on_batch_composition(tiny_models, model):
    """Batched (sorted, padded: right for seq2seq, left for causal) equals one row at a time."""
    eng = engine(getattr(tiny_models, model), batch_size=6, max_batch_tokens=400, template="{text}")
    batched = texts(eng.run(ROWS))
    stats = eng.take_stats()
    assert stats["batches"] > 1 and stats["tokens_in_padded"] > stats["tokens_in"]
    alone = [texts(eng.run([row]))[0] for row in ROWS]
    assert batched == alone
    assert len({t[0] for t in batched}) > len(ROWS) // 2  # a degenerate model would prove nothing
    assert texts(eng.run(ROWS[::-1])) == batched[::-1]  # order restored whatever the input order


def test_sorting_pads_less_than_input_order(tiny_models):
    eng = engine(tiny_models.t5, batch_size=8)
    rows = [{"text": long_text(1 + (i * 7) % 5)} for i in range(32)]  # mixed lengths
    eng.run(rows)
    stats = eng.take_stats()
    lengths = [len(ids) for ids in eng.encode([eng.prompt_text(r) for r in rows])]
    input_order_padded = sum(8 * max(lengths[i:i + 8]) for i in range(0, 32, 8))
    assert stats["tokens_in"] == sum(lengths)
    assert stats["tokens_in_padded"] < input_order_padded
    assert stats["tokens_out"] > 0 and stats["generate_seconds"] > 0


# ---- long inputs -----------------------------------------------------------------------------


def test_truncate_cuts_over_long_inputs_to_the_model_limit_and_counts_them(tiny_models):
    eng = engine(tiny_models.marian, long_input="truncate")
    assert eng.max_input_tokens == 64  # the tokenizer's declared limit (the model has 64 positions)
    rows = [{"text": long_text(8)}, {"text": SHORT}]
    result = texts(eng.run(rows))
    assert eng.take_stats()["inputs_truncated"] == 1
    kept = eng.long_inputs.fit(rows[0], eng.encode([rows[0]["text"]])[0], "truncate")
    assert len(kept) == 1 and 50 < len(kept[0]) <= 64
    assert rows[0]["text"].startswith(eng.tokenizer.decode(kept[0], skip_special_tokens=True).strip())
    assert result[0] == texts(eng.run([{"text": eng.tokenizer.decode(kept[0], skip_special_tokens=True)}]))[0]


def test_fail_mode_dead_letters_over_long_rows_only(tiny_models):
    eng = engine(tiny_models.marian, long_input="fail")
    results = eng.run([{"text": long_text(8)}, {"text": SHORT}])
    assert results[0].error[0] == "input_too_long" and "limit is 64" in results[0].error[1]
    assert results[1].error is None and results[1].texts


def test_chunk_and_join_equals_translating_the_pieces(tiny_models):
    eng = engine(tiny_models.marian, long_input="chunk", chunk_merge="join")
    text = long_text(8)
    joined = texts(eng.run([{"text": text}]))[0][0]
    assert eng.take_stats()["inputs_chunked"] == 1
    parts = eng.long_inputs.fit({"text": text}, eng.encode([text])[0], "chunk")
    assert len(parts) >= 3 and all(len(p) <= 64 for p in parts)
    pieces = [eng.tokenizer.decode(p, skip_special_tokens=True) for p in parts]
    assert " ".join(pieces) == text  # nothing lost, nothing repeated, no word split
    assert joined == " ".join(t for t in (texts(eng.run([{"text": p}]))[0][0] for p in pieces) if t)


def test_chunk_then_summarize_the_summaries(tiny_models):
    settings = {"long_input": "chunk", "max_input_tokens": 40, "task": "summarization", "max_new_tokens": 4}
    summarize = engine(tiny_models.t5, chunk_merge="summarize", **settings)
    join = engine(tiny_models.t5, chunk_merge="join", **settings)
    text = long_text(5)
    parts = join.long_inputs.fit({"text": text}, join.encode([join.prompt_text({"text": text})])[0], "chunk")
    assert len(parts) >= 3 and all(len(p) <= 40 for p in parts)
    pieces = [join.tokenizer.decode(p, skip_special_tokens=True).removeprefix("summarize: ") for p in parts]
    assert " ".join(pieces) == text  # every word in exactly one part
    result = texts(summarize.run([{"text": text}]))[0][0]
    stats = summarize.take_stats()
    assert stats["inputs_chunked"] == 1 and stats["merge_rounds"] >= 1
    joined = texts(join.run([{"text": text}]))[0][0]  # the first pass: the parts' summaries, joined
    assert result == texts(summarize.run([{"text": joined}]))[0][0]  # then summarized (again if long)


# ---- out-of-memory back-off ------------------------------------------------------------------


def test_out_of_memory_halves_the_batch_and_a_row_failing_alone_is_dead_lettered(tiny_models, monkeypatch):
    eng = engine(tiny_models.t5, batch_size=8)
    expected = texts(eng.run(ROWS[:12]))
    poison = eng.encode([eng.prompt_text(ROWS[5])])[0]
    real = eng.generate_batch
    sizes = []

    def flaky(units):
        """Out of memory above 2 rows, and always for row 5, as a too-big batch or row would be."""
        sizes.append(len(units))
        if len(units) > 2 or any(u.ids == poison for u in units):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(units)

    monkeypatch.setattr(eng, "generate_batch", flaky)
    results = eng.run(ROWS[:12])
    assert results[5].error[0] == "out_of_memory" and "alone" in results[5].error[1]
    assert [r.texts for i, r in enumerate(results) if i != 5] == [t for i, t in enumerate(expected) if i != 5]
    assert eng.take_stats()["oom_retries"] >= 3
    # Longest batch first (4 rows), then 8 shorter rows: the learned cap splits those before they run.
    assert sizes[0] == 4 and max(sizes) == 4


# ---- prompting: prefixes, chat template, languages -------------------------------------------


def test_task_prefix_only_from_model_config_or_spec(tiny_models):
    assert engine(tiny_models.t5, task="summarization").prefix == "summarize: "
    assert engine(tiny_models.t5, task="translation_en_to_de").prefix == "translate English to German: "
    assert engine(tiny_models.t5, task="translation_en_to_fr").prefix == ""  # not declared: nothing added
    assert engine(tiny_models.t5, task="summarization", prefix="").prefix == ""
    assert engine(tiny_models.t5_plain, task="summarization").prefix == ""
    assert engine(tiny_models.t5_plain, task="summarization", prefix="tl;dr: ").prefix == "tl;dr: "
    eng = engine(tiny_models.t5, task="summarization")
    assert eng.prompt_text({"text": "a film"}) == "summarize: a film"


def test_chat_template_wraps_the_prompt_and_can_be_turned_off(tiny_models):
    eng = engine(tiny_models.llama_chat, template="Ask about: {text}", system_prompt="Be brief.")
    prompt = eng.prompt_text({"text": "a film"})
    assert prompt.startswith("<s><|system|> Be brief.") and prompt.endswith("<|assistant|> ")
    assert "<|user|> Ask about: a film" in prompt
    assert eng.encode([prompt])[0].count(eng.tokenizer.bos_token_id) == 1  # the template's BOS, not a second
    assert engine(tiny_models.llama_chat, chat_template=False).prompt_text({"text": "x"}) == "x"
    assert engine(tiny_models.llama).prompt_text({"text": "x"}) == "x"
    with pytest.raises(SpecError, match="no chat template"):
        engine(tiny_models.llama, chat_template=True)


def test_language_codes_force_the_first_generated_token(tiny_models):
    eng = engine(tiny_models.m2m, source_lang="en", target_lang="de")
    de = eng.tokenizer.convert_tokens_to_ids("__de__")
    assert eng.generation_config.forced_bos_token_id == de
    ids = eng.encode([TEXTS[0]])[0]
    with torch.inference_mode():
        out = eng.model.generate(input_ids=torch.tensor([ids]), generation_config=eng.generation_config)
    assert out[0, 1].item() == de
    assert "__de__" not in texts(eng.run(ROWS[:2]))[0][0]
    with pytest.raises(SpecError, match="not a language code"):
        engine(tiny_models.m2m, source_lang="en", target_lang="xx")


def test_causal_input_limit_leaves_room_for_new_tokens(tiny_models):
    assert engine(tiny_models.llama, max_new_tokens=56).max_input_tokens == 256 - 56
    assert engine(tiny_models.llama, max_new_tokens=8, max_input_tokens=100).max_input_tokens == 100
    with pytest.raises(SpecError, match="no room for the prompt"):
        engine(tiny_models.llama, max_new_tokens=300)


def test_cpu_runs_fp32(tiny_models):
    eng = engine(tiny_models.t5)
    assert eng.device == "cpu" and next(eng.model.parameters()).dtype == torch.float32


# ---- seeds ----------------------------------------------------------------------------------


def test_row_seed_depends_on_run_stage_row_and_copy_only():
    base = row_seed(7, 1, "file.parquet:12", 0)
    assert base == row_seed(7, 1, "file.parquet:12", 0)
    assert len({base, row_seed(8, 1, "file.parquet:12", 0), row_seed(7, 2, "file.parquet:12", 0),
                row_seed(7, 1, "file.parquet:13", 0), row_seed(7, 1, "file.parquet:12", 1)}) == 5


def test_sampling_is_seeded_per_row_not_by_batch_or_global_rng(tiny_models):
    eng = engine(tiny_models.llama_chat, temperature=1.0, top_p=0.95, top_k=50, n=3, batch_size=4)
    ids = [f"r{i}" for i in range(10)]
    before = torch.random.get_rng_state()
    first = texts(eng.run(ROWS[:10], row_ids=ids, run_seed=3))
    assert torch.equal(before, torch.random.get_rng_state())  # global RNG untouched
    assert all(len(samples) == 3 and len(set(samples)) > 1 for samples in first)
    eng.config.batch_size = 3  # another batch composition, another order: the same samples per row
    again = texts(eng.run(ROWS[:10][::-1], row_ids=ids[::-1], run_seed=3))[::-1]
    assert again == first
    assert texts(eng.run(ROWS[:10], row_ids=ids, run_seed=4)) != first


# ---- model checks (preflight) ----------------------------------------------------------------


def test_model_checks_missing_path_and_remote_code(tiny_models, tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="no such folder"):
        check_model_files(str(tmp_path / "nope"), None, False, False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpecError, match="not in the Hugging Face cache"):
        check_model_files("no-such-org/no-such-model", None, False, False)
    assert check_model_files(str(tiny_models.t5), None, False, False)["model_type"] == "t5"
    remote = tmp_path / "remote"
    shutil.copytree(tiny_models.t5, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_x.XModel"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match="trust_remote_code"):
        check_model_files(str(remote), None, False, False)
    assert check_model_files(str(remote), None, True, False)


def test_pickle_weights_are_refused_unless_allowed(tiny_models, tmp_path):
    """A *.bin checkpoint is a pickle (it can run code when loaded): preflight and loading refuse it."""
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_models.t5, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(SpecError, match="allow_pickle: true"):
        check_model_files(str(pickled), None, False, False)
    with pytest.raises(OSError):
        engine(pickled)
    assert check_model_files(str(pickled), None, False, True)
    assert texts(engine(pickled, allow_pickle=True).run(ROWS[:2])) == texts(engine(tiny_models.t5).run(ROWS[:2]))


# ---- GPU (skipped without CUDA) --------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
def test_gpu_loads_half_precision_by_default(tiny_models):
    eng = engine(tiny_models.llama_chat, batch_size=8)
    assert eng.device == "cuda" and next(eng.model.parameters()).dtype in (torch.bfloat16, torch.float16)
    results = texts(eng.run(ROWS))
    assert len(results) == len(ROWS) and eng.take_stats()["tokens_out"] > 0


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("model", ["t5", "llama_chat"])
def test_gpu_greedy_fp32_does_not_depend_on_batch_composition(tiny_models, model):
    eng = engine(getattr(tiny_models, model), dtype="float32", batch_size=6, template="{text}")
    assert texts(eng.run(ROWS)) == [texts(eng.run([row]))[0] for row in ROWS]


def test_guided_choice_on_the_transformers_engine_gives_only_choices(tiny_models):
    choices = ["positive", "negative", "neutral film"]
    for model in (tiny_models.llama, tiny_models.t5):
        eng = engine(model, guided={"choice": choices}, max_new_tokens=10)
        outputs = texts(eng.run(ROWS[:10]))
        assert all(t[0] in choices for t in outputs), outputs
        assert eng.decoding in ("generate", "generate (guided)")
    sampled = engine(tiny_models.llama, guided={"choice": choices}, temperature=1.5, n=4, max_new_tokens=10)
    copies = texts(sampled.run(ROWS[:10]))
    assert all(t in choices for row in copies for t in row)
    assert len({t for row in copies for t in row}) > 1  # sampling among the choices, not one forced answer


def test_token_counts_per_row_cover_prompt_and_output(tiny_models):
    eng = engine(tiny_models.llama, max_new_tokens=6)
    results = eng.run(ROWS[:5])
    for row, result in zip(ROWS[:5], results):
        assert result.tokens_in == len(eng.encode([eng.prompt_text(row)])[0])
        assert 0 < result.tokens_out <= 6
    stats = eng.take_stats()
    assert stats["tokens_out"] == sum(r.tokens_out for r in results)

"""Which engine runs a model stage, and the spec errors for a key the chosen engine lacks: found at
validate time (`check_engine`), naming the key, before any model loads."""

from __future__ import annotations

import pytest

from jobs.engine import choose_engine
from jobs.errors import SpecError
from jobs.stages.generate import GenerateParams, GenerateStage


def params(model, **keys) -> GenerateParams:
    return GenerateParams(use="generate", model=str(model), prompt="Ask about: {text}", **keys)


def test_auto_picks_vllm_only_for_a_model_it_can_run(tiny_models):
    import json

    def config(path):
        return json.loads((path / "config.json").read_text())

    assert choose_engine("auto", "qwen2", config(tiny_models.qwen2)) == "vllm"
    assert choose_engine("auto", "t5", config(tiny_models.t5)) == "transformers"  # seq2seq
    assert choose_engine("auto", "llama", config(tiny_models.llama)) == "transformers"  # head size 8 on CPU
    assert choose_engine("auto", "odd", {"architectures": ["NoSuchForCausalLM"]}) == "transformers"
    assert choose_engine("transformers", "qwen2", config(tiny_models.qwen2)) == "transformers"


@pytest.mark.parametrize("model, keys, fragment", [
    ("qwen2", {"engine": "transformers", "engine_kwargs": {"gpu_memory_utilization": 0.9}},
     "engine_kwargs.gpu_memory_utilization: the transformers engine has no such setting"),
    ("qwen2", {"engine": "transformers", "guided": {"json_schema": {"type": "object"}}},
     "guided.json_schema: the transformers engine supports guided choice only"),
    ("qwen2", {"engine": "transformers", "batch_invariant": True}, "batch_invariant: is a vLLM mode"),
    ("qwen2", {"engine": "vllm", "num_beams": 2}, "num_beams: the vllm engine runs no beam search"),
    ("qwen2", {"engine": "vllm", "no_repeat_ngram_size": 3}, "no_repeat_ngram_size: the vllm engine"),
    ("qwen2", {"engine": "vllm", "engine_kwargs": {"max_model_lenn": 512}},
     "engine_kwargs.max_model_lenn: not a vLLM engine argument (did you mean max_model_len?)"),
    ("qwen2", {"engine": "vllm", "engine_kwargs": {"dtype": "half"}}, "engine_kwargs.dtype: set by the stage itself"),
    ("t5", {"engine": "vllm"}, "is a seq2seq model"),
    ("llama", {"engine": "vllm"}, "attention head size 8 is not one vLLM's CPU attention supports"),
])
def test_a_key_the_chosen_engine_lacks_is_a_spec_error(tiny_models, model, keys, fragment):
    with pytest.raises(SpecError) as caught:
        GenerateStage.check_engine(params(getattr(tiny_models, model), **keys))
    assert fragment in str(caught.value)


def test_good_engine_settings_pass(tiny_models):
    GenerateStage.check_engine(params(tiny_models.qwen2, engine="vllm", guided={"regex": "[ab]+"},
                                   engine_kwargs={"max_model_len": 256, "enable_prefix_caching": True}))
    GenerateStage.check_engine(params(tiny_models.llama, engine="transformers", guided={"choice": ["yes", "no"]},
                                   engine_kwargs={"attn_implementation": "eager"}))


@pytest.mark.parametrize("guided, fragment", [
    ({"choice": ["a"], "regex": "a"}, "exactly one of"),
    ({"choice": ["a", "a"]}, "distinct"),
    ({"regex": "("}, "regex does not compile"),
    ({"json_schema": {"type": "nope"}}, "not a valid JSON Schema"),
    ({"grammar": "x"}, "Extra inputs"),
])
def test_a_bad_guided_constraint_is_refused(guided, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=fragment):
        params("m", guided=guided)

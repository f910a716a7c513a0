"""Model stage specs and the stage call without Ray: key checks, defaults, input and output columns,
and rows the stage sends to the dead letter before the model sees them."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from jobs.stages.base import ERROR_TYPE, StageContext, StageRunner
from jobs.stages.generate import GenerateParams, GenerateStage
from jobs.stages.summarize import SummarizeParams, SummarizeStage
from jobs.stages.translate import TranslateParams

CTX = StageContext("t", 3, 0, "generate")


@pytest.mark.parametrize("params, message", [
    (dict(use="summarize", model="m", column="text", temperature=0.5, num_beams=2), "do not mix"),
    (dict(use="summarize", model="m", column="text", min_new_tokens=9, max_new_tokens=8), "min_new_tokens"),
    (dict(use="summarize", model="m"), "give column"),
    (dict(use="summarize", model="m", column="text", prompt="Summarize: {body}"), "does not use column"),
    (dict(use="summarize", model="m", column="text", prompt="{text.title}"), "plain column name"),
    (dict(use="summarize", model="m", column="text", prompt="no fields"), "at least one column"),
    (dict(use="translate", model="m", column="text", source_lang="en"), "needs target_lang"),
])
def test_inconsistent_keys_are_rejected(params, message):
    cls = TranslateParams if params["use"] == "translate" else SummarizeParams
    with pytest.raises(ValidationError, match=message):
        cls.model_validate(params)


def test_generate_specific_rules():
    with pytest.raises(ValidationError, match="needs temperature > 0"):
        GenerateParams(use="generate", model="m", prompt="{text}", n=2)
    with pytest.raises(ValidationError, match="long_input"):
        GenerateParams(use="generate", model="m", prompt="{text}", long_input="chunk")
    params = GenerateParams(use="generate", model="m", prompt="About {topic}: {text}", column="text")
    assert GenerateStage.input_columns(params) == {"topic": "any", "text": "string"}
    assert GenerateStage.output_columns(params) == ["generated", "generated_tokens_in", "generated_tokens_out"]
    no_column = GenerateParams(use="generate", model="m", prompt="{title} / {text}")
    assert no_column.text_column() == "title"


def test_model_stages_ask_for_a_gpu_unless_told_otherwise():
    assert SummarizeParams(use="summarize", model="m", column="t").resources.num_gpus == 1
    assert SummarizeParams(use="summarize", model="m", column="t", resources={"replicas": 2}).resources.num_gpus == 1
    assert SummarizeParams(use="summarize", model="m", column="t", resources={"num_gpus": 0}).resources.num_gpus == 0
    assert SummarizeStage.uses_actors and GenerateStage.uses_actors


def test_null_empty_and_bad_bytes_rows_go_to_the_dead_letter(tiny_models):
    params = SummarizeParams(use="summarize", model=str(tiny_models.t5), column="text", max_new_tokens=4,
                             resources={"num_gpus": 0})
    runner = StageRunner(SummarizeStage(params, CTX))
    batch = pa.table({"row_id": ["a", "b", "c", "d", "e"],
                      "text": pa.array([b"a fine film", None, b"  ", b"\xff\xfe broken", b"dull"], pa.binary())})
    out, stats = runner(batch)
    rows = {r["row_id"]: r for r in out.to_pylist()}
    assert {k: rows[k][ERROR_TYPE] for k in "bcd"} == {"b": "null_input", "c": "empty_input", "d": "invalid_utf8"}
    assert rows["a"]["summary"] and rows["e"]["summary"] and rows["a"][ERROR_TYPE] is None
    assert (stats["rows_in"], stats["rows_out"], stats["rows_dead"]) == (5, 2, 3)
    assert stats["tokens_in"] > 0 and stats["tokens_out"] > 0


def test_n_samples_make_a_list_column(tiny_models):
    params = GenerateParams(use="generate", model=str(tiny_models.llama_chat), prompt="Ask about: {text}",
                            max_new_tokens=4, temperature=1.0, n=3, resources={"num_gpus": 0})
    out = GenerateStage(params, CTX)(pa.table({"row_id": ["a", "b"], "text": ["a fine film", "dull"]}))
    assert out.schema.field("generated").type == pa.list_(pa.string())
    assert [len(v) for v in out["generated"].to_pylist()] == [3, 3]

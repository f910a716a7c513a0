"""The fine-tuning formats: prompt/completion and chat messages from templates, and an export that
reads only committed outputs."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from typer.testing import CliRunner

from jobs.cli import app
from jobs.export import ExportError, FinetuneExportParams, FinetuneExportStage, committed_table
from jobs.stages.base import StageContext


def stage(**kw) -> FinetuneExportStage:
    params = FinetuneExportParams.model_validate({"use": "finetune_export", "column": "text", **kw})
    return FinetuneExportStage(params, StageContext("t", 0, 1, "finetune_export"))


def test_prompt_completion_and_messages_from_templates():
    table = pa.table({"row_id": ["a", "b"], "text": ["a fine film", "dull"], "label": [1, 0],
                      "source": ["sst2", "cr"]})
    out = stage(label_column="label", labels=["negative", "positive"], system="Be brief.",
                prompt="[{source}] {text}", completion="{label_name} ({label})")(table)
    assert out["prompt"].to_pylist() == ["[sst2] a fine film", "[cr] dull"]
    assert out["completion"].to_pylist() == [" positive (1)", " negative (0)"]  # a trainer appends it as is
    assert out["messages"][0].as_py() == [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "[sst2] a fine film"},
                                          {"role": "assistant", "content": "positive (1)"}]
    params = stage(prompt="{source}: {text}", label_column="label").params
    assert FinetuneExportStage.input_columns(params) == {"text": "string", "label": "any", "source": "any"}


def test_the_completion_is_separated_from_a_prompt_unless_whitespace_already_joins_them():
    table = pa.table({"text": ["Is it good?", "Label:\n", ""], "label": [1, 0, 1]})
    out = stage(label_column="label", labels=["no", "yes"], completion="{label_name}")(table)
    assert [p + c for p, c in zip(out["prompt"].to_pylist(), out["completion"].to_pylist())] == \
        ["Is it good? yes", "Label:\nno", "yes"]
    tight = stage(label_column="label", labels=["no", "yes"], completion="{label_name}", separator="")(table)
    assert tight["completion"].to_pylist() == ["yes", "no", "yes"]
    assert [m[-1]["content"] for m in out["messages"].to_pylist()] == ["yes", "no", "yes"]  # chats need none


def test_formats_and_label_mapping_from_yaml_style_keys():
    table = pa.table({"text": ["x"], "label": [7]})
    out = stage(label_column="label", labels={1: "positive"}, formats=["messages"])(table)
    assert "prompt" not in out.column_names
    assert out["messages"][0].as_py()[-1]["content"] == "7"  # an unmapped label is used as is
    assert stage(label_column="label", labels={0: "neg"}).params.labels == {"0": "neg"}


def test_templates_are_checked():
    with pytest.raises(ValidationError, match="label_column"):
        stage(completion="{label_name}")
    with pytest.raises(ValidationError, match="bad template"):
        stage(prompt="{text", label_column="label")


def test_export_refuses_an_uncommitted_output(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(ExportError, match="_SUCCESS missing"):
        committed_table(tmp_path)
    refused = CliRunner().invoke(app, ["export", str(tmp_path), "--to", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "_SUCCESS missing" in refused.output
    assert CliRunner().invoke(app, ["export", str(tmp_path), "--files", "csv"]).exit_code == 2

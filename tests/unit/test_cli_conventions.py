"""The CLI conventions people expect from ray job, huggingface-cli or dbt: --version and -h, help
without type noise, errors in our words with a "did you mean", a spec on stdin, --json for scripts
and --dry-run for the plan. All before Ray starts."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from jobs.cli import app
from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "reviews"


def invoke(*args, stdin: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def spec_text(tmp_path, **change) -> str:
    spec = {"name": "cli", "input": {"path": str(SAMPLE), "id_column": "id"},
            "output": {"path": str(tmp_path / "out")}, "stages": [{"use": "clean", "column": "text"}]}
    spec.update(change)
    return yaml.safe_dump(spec)


def test_version_and_short_help_and_no_type_noise_on_flags():
    from importlib import metadata

    version = invoke("--version")
    assert version.exit_code == 0 and version.output.strip() == f"raybatch {metadata.version('raybatch')}"
    for args in (["-h"], ["run", "-h"], ["train", "-h"]):
        shown = invoke(*args)
        assert shown.exit_code == 0 and "Usage:" in shown.output and "<bool>" not in shown.output
    assert "--overwrite" in invoke("run", "-h").output and "--dry-run" in invoke("run", "-h").output


@pytest.mark.parametrize("change, expected", [
    ({"input": {"path": str(SAMPLE), "id_colum": "id"}}, "input.id_colum: unknown key; did you mean 'id_column'?"),
    ({"stages": [{"use": "clean", "colum": "text"}]}, "stages[0].colum: unknown key; did you mean 'column'?"),
    ({"stages": [{"use": "claen", "column": "text"}]}, "unknown stage 'claen'; did you mean 'clean'?"),
    ({"stages": []}, "stages: must not be empty"),
    ({"seeds": 1}, "seeds: unknown key; did you mean 'seed'?"),
])
def test_spec_errors_suggest_the_key_or_stage_meant_in_one_line(tmp_path, change, expected):
    path = tmp_path / "job.yaml"
    path.write_text(spec_text(tmp_path, **change))
    result = invoke("validate", path)
    assert result.exit_code == 2 and f"{path}: " in result.output and expected in result.output
    assert "List should" not in result.output and "Traceback" not in result.output


def test_train_spec_keys_get_suggestions_too(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({"name": "sft", "output": {"path": str(tmp_path / "o")},
                                    "train": {"data": "d", "model": "m", "learning_rat": 1e-4}}))
    result = invoke("validate", path)
    assert result.exit_code == 2 and "train.learning_rat: unknown key; did you mean 'learning_rate'?" in result.output


def test_a_spec_on_stdin_validates_and_names_stdin_in_errors(tmp_path):
    ok = invoke("validate", "-", stdin=spec_text(tmp_path))
    assert ok.exit_code == 0 and ok.output.startswith("ok: cli: 2 input file(s), 600 rows")
    bad = invoke("validate", "-", stdin=spec_text(tmp_path, stages=[{"use": "clean", "column": "body"}]))
    assert bad.exit_code == 2 and "<stdin>: stages[0].column: stage 'clean' needs column 'body'" in bad.output


def test_validate_json_and_run_dry_run_print_the_plan_and_start_nothing(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(spec_text(tmp_path))
    checked = json.loads(invoke("validate", path, "--json").output)
    assert checked["ok"] and checked["rows_in"] == 600 and checked["shards"] == 2
    assert [f["rows"] for f in checked["files"]] == [300, 300]
    assert checked["stages"] == [{"use": "clean", "runs_in": "tasks", "whole_input": False,
                                  "resources": {"num_gpus": 0, "num_cpus": 1, "replicas": 1}}]
    planned = invoke("run", path, "--dry-run", "--json")
    assert planned.exit_code == 0 and json.loads(planned.output)["dry_run"] is True
    text = invoke("run", path, "--dry-run").output
    assert text.startswith("plan: cli: 600 rows in 2 file(s), 2 shard(s)") and "stage 0: clean (tasks" in text
    assert not (tmp_path / "out").exists()


def test_an_impossible_date_is_refused_with_exit_2(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(spec_text(tmp_path))
    result = invoke("validate", path, "--date", "2026-13-01")
    assert result.exit_code == 2 and "--date '2026-13-01': not a calendar date" in result.output

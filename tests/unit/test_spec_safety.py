"""Spec loading that cannot be abused or misread: alias bombs, non-string stage names, impossible
dates, credentials in URIs; and a job fingerprint that follows the code."""

from __future__ import annotations

import importlib
import sys
import time

import pytest

from jobs.errors import SpecError
from jobs.plan import code_digest
from jobs.secrets import redact_uri
from jobs.spec import load_spec, load_yaml, parse_spec

BASE = {"name": "j", "input": {"path": "/data/in"}, "output": {"path": "/data/out/{date}"},
        "stages": [{"use": "clean", "column": "text"}]}


def test_an_alias_bomb_is_refused_quickly_and_ordinary_aliases_still_work(tmp_path):
    levels = "\n".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10))
    started = time.time()
    with pytest.raises(SpecError, match="aliases expand to more than"):
        load_yaml(f"l0: &l0 [x]\n{levels}\n")
    assert time.time() - started < 2
    shared = load_yaml("common: &c {column: text}\nstages: [{<<: *c, use: clean}, {<<: *c, use: clean}]")
    assert shared["stages"][1] == {"column": "text", "use": "clean"}


def test_a_stage_name_must_be_a_string():
    with pytest.raises(SpecError, match=r"stages\[0\]\.use: must be a stage name \(a string\), not a dict"):
        parse_spec({**BASE, "stages": [{"use": {"a": 1}}]})


@pytest.mark.parametrize("date", ["2026-13-45", "2026-02-30", "2026-2-3", "20260203", "2026-02-03T00:00"])
def test_impossible_or_malformed_dates_are_refused(date):
    with pytest.raises(SpecError, match="not a calendar date"):
        parse_spec(BASE, date=date)


def test_a_leap_day_is_a_date():
    assert parse_spec(BASE, date="2028-02-29").output.path == "/data/out/2028-02-29"


def test_new_job_keys_are_validated(tmp_path):
    with pytest.raises(SpecError, match=r"max_dead_letter_fraction: must be <= 1"):
        parse_spec({**BASE, "max_dead_letter_fraction": 2})
    with pytest.raises(SpecError, match=r"input.duplicate_ids"):
        parse_spec({**BASE, "input": {"path": "/x", "duplicate_ids": "ignore"}})


def test_credentials_are_masked_in_uris_and_in_the_resolved_spec():
    uri = "s3://AKIAKEY:s3cr3t@bucket/in?region=eu-west-1&X-Amz-Signature=abc123&X-Amz-Credential=AKIA/x"
    assert redact_uri(uri) == "s3://***@bucket/in?region=eu-west-1&X-Amz-Signature=***&X-Amz-Credential=***"
    assert redact_uri(f"error: {uri}: cannot open") == f"error: {redact_uri(uri)}: cannot open"
    assert redact_uri("https://host/f.parquet?token=t0k&sig=s1g") == "https://host/f.parquet?token=***&sig=***"
    assert redact_uri("/plain/local/path") == "/plain/local/path"
    resolved = parse_spec({**BASE, "input": {"path": uri}}).resolved()
    assert "s3cr3t" not in str(resolved) and "abc123" not in str(resolved) and "AKIAKEY" not in str(resolved)


def test_the_fingerprint_follows_a_stages_code(tmp_path, monkeypatch):
    module = tmp_path / "my_stage.py"
    source = "from jobs.stages.base import Stage\n\nclass Mine(Stage):\n    name = 'mine'\n"
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = importlib.import_module("my_stage").Mine
    before = code_digest([cls])
    assert code_digest([cls]) == before
    module.write_text(source + "    # a fix\n")
    assert code_digest([cls]) != before
    sys.modules.pop("my_stage", None)


def test_a_spec_file_that_holds_an_alias_bomb_names_the_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    levels = "\n".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10))
    path.write_text(f"l0: &l0 [x]\n{levels}\n")
    with pytest.raises(SpecError, match=rf"{path}: YAML aliases expand"):
        load_spec(path)


def test_secrets_with_slashes_and_uris_nested_in_query_values_are_masked():
    assert redact_uri("s3://AKIA:abc/def+ghi@bucket/path") == "s3://***@bucket/path"
    assert redact_uri("s3://b/p?endpoint_override=http://u:pw@h:9") == "s3://b/p?endpoint_override=http://***@h:9"
    assert redact_uri("gs://bucket/a@b.parquet") == "gs://bucket/a@b.parquet"  # no userinfo: kept


def test_deep_nesting_and_alias_bombs_in_set_values_are_one_line_errors():
    from jobs.spec import apply_override

    with pytest.raises(SpecError, match="nested too deeply"):
        load_yaml("[" * 5000)
    levels = ", ".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8))
    with pytest.raises(SpecError, match=r"--set seed: .*aliases expand"):
        apply_override({}, f"seed=[&l0 [x], {levels}]")


def test_the_date_counts_in_the_fingerprint_only_through_the_paths_it_fills(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.plan import plan_job

    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "in" / "a.parquet")
    plain = {**BASE, "input": {"path": str(tmp_path / "in")}, "output": {"path": str(tmp_path / "out")}}
    dated = {**plain, "output": {"path": str(tmp_path / "out" / "{date}")}}
    assert plan_job(parse_spec(plain, date="2026-12-01")).fingerprint() == \
        plan_job(parse_spec(plain, date="2026-12-02")).fingerprint()
    assert plan_job(parse_spec(dated, date="2026-12-01")).fingerprint() != \
        plan_job(parse_spec(dated, date="2026-12-02")).fingerprint()


def test_the_spec_text_kept_for_the_report_masks_credentials_and_tokens(tmp_path):
    token = "hf_" + "aB3" * 12
    text = (f"# pulled with {token}\nname: j\ninput: {{path: 's3://AKIAIOSFODNN7EXAMPLE:s3cr3tValue@bucket/in'}}\n"
            f"output: {{path: /data/out}}\nstages: [{{use: clean, column: text}}]\n")
    (tmp_path / "job.yaml").write_text(text, encoding="utf-8")
    spec = load_spec(tmp_path / "job.yaml", ["stages.0.min_chars=2"])
    assert token not in spec.text and "s3cr3tValue" not in spec.text and "AKIAIOSFODNN7EXAMPLE" not in spec.text
    assert spec.text.startswith("# pulled with <SECRET>\nname: j\n") and spec.text.endswith("# --set stages.0.min_chars=2")

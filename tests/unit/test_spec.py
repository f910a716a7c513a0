"""Spec loading: valid specs, errors that name file and key path, --set overrides, placeholders."""

from __future__ import annotations

import pytest

from jobs.errors import SpecError
from jobs.spec import apply_override, load_spec, parse_spec

GOOD = """
name: sample
seed: 3
input: {path: data/*.parquet, id_column: id}
output: {path: "out/{name}/{date}"}
stages:
  - {use: clean, column: text, min_chars: 1, max_chars: 100, normalize: NFKC}
"""


def write(tmp_path, text, name="job.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_spec_fills_name_and_date(tmp_path):
    spec = load_spec(write(tmp_path, GOOD), date="2026-02-03")
    assert spec.name == "sample" and spec.seed == 3
    assert spec.output.path == "out/sample/2026-02-03"
    assert spec.output_template == "out/{name}/{date}"
    assert spec.stages[0].max_chars == 100 and spec.stages[0].normalize == "NFKC"
    assert spec.resolved()["stages"][0]["use"] == "clean"


def test_default_date_is_today_utc(tmp_path):
    import datetime as dt

    spec = load_spec(write(tmp_path, GOOD))
    assert spec.output.path.endswith(dt.datetime.now(dt.timezone.utc).date().isoformat())


@pytest.mark.parametrize("old, new, expected", [
    ("max_chars: 100", "max_charz: 100", "stages[0].max_charz: unknown key"),
    ("max_chars: 100", "max_chars: 0", "stages[0].max_chars: must be > 0"),
    ("normalize: NFKC", "normalize: NFD", "stages[0].normalize: must be 'NFC', 'NFKC' or 'none'"),
])
def test_stage_errors_name_file_and_key(tmp_path, old, new, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_top_level_unknown_key_and_missing_key(tmp_path):
    with pytest.raises(SpecError, match=r"outptu: unknown key"):
        load_spec(write(tmp_path, GOOD + "outptu: {path: x}\n"))
    with pytest.raises(SpecError, match=r"input: required key is missing"):
        load_spec(write(tmp_path, GOOD.replace("input: {path: data/*.parquet, id_column: id}\n", "")))


def test_unknown_stage_lists_known_ones(tmp_path):
    with pytest.raises(SpecError, match=r"stages\[0\]\.use: unknown stage 'cleen'; did you mean 'clean'\? known stages: .*clean"):
        load_spec(write(tmp_path, GOOD.replace("use: clean", "use: cleen")))


def test_cross_field_check(tmp_path):
    with pytest.raises(SpecError, match=r"min_chars \(500\) must be <= max_chars \(100\)"):
        load_spec(write(tmp_path, GOOD.replace("min_chars: 1", "min_chars: 500")))


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="a spec is a YAML mapping"):
        load_spec(write(tmp_path, "- just a list\n"))


def test_overrides_by_dotted_path(tmp_path):
    spec = load_spec(write(tmp_path, GOOD), ["output.path=/tmp/x", "stages.0.column=body", "seed=9",
                                             "stages.0.max_chars=50"])
    assert spec.output.path == "/tmp/x" and spec.seed == 9
    assert spec.stages[0].column == "body" and spec.stages[0].max_chars == 50


def test_override_errors():
    raw = {"stages": [{"use": "clean"}]}
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        apply_override(raw, "output.path")
    with pytest.raises(SpecError, match="no list item 3"):
        apply_override(raw, "stages.3.column=x")


def test_bad_date_and_bad_name():
    raw = {"name": "x", "input": {"path": "a"}, "output": {"path": "b"}, "stages": [{"use": "clean", "column": "t"}]}
    with pytest.raises(SpecError, match="expected YYYY-MM-DD"):
        parse_spec(raw, date="31-01-2026")
    with pytest.raises(SpecError, match="name"):
        parse_spec({**raw, "name": "has space"})
    with pytest.raises(SpecError, match="stages: "):
        parse_spec({**raw, "stages": []})

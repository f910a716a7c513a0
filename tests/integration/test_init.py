"""`raybatch init [KIND]`: a commented spec and example rows that validate and run as written, in a
folder of the user's, without overwriting anything there."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from jobs.starter import EXAMPLE_ROWS, TEMPLATES


def raybatch(folder, *args):
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True, cwd=folder,
                          timeout=600)


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_init_writes_a_spec_that_validates_as_written_and_never_overwrites(tmp_path, kind):
    made = raybatch(tmp_path, "init", kind)
    assert made.returncode == 0, made.stderr
    spec = tmp_path / f"{kind}.yaml"
    assert f"wrote {spec.name}" in made.stdout and "next: raybatch validate" in made.stdout
    assert pq.read_table(tmp_path / "data" / "example.parquet").num_rows == EXAMPLE_ROWS
    assert spec.read_text().count("#") >= 3  # commented for a reader
    checked = raybatch(tmp_path, "validate", spec.name, "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["ok"] and json.loads(checked.stdout)["rows_in"] == EXAMPLE_ROWS
    spec.write_text(spec.read_text() + "# my edit\n")
    again = raybatch(tmp_path, "init", kind)
    assert again.returncode == 2 and "exists; nothing was written" in again.stderr
    assert spec.read_text().endswith("# my edit\n")


def test_init_augment_runs_as_written(tmp_path):
    assert raybatch(tmp_path, "init").returncode == 0  # augment is the default kind
    ran = raybatch(tmp_path, "run", "augment.yaml", "--json")
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = json.loads(ran.stdout)
    assert summary["rows_in"] == EXAMPLE_ROWS and summary["rows_out"] > EXAMPLE_ROWS  # copies were added
    rows = pq.read_table(f"{summary['output']}/data")
    assert set(rows["split"].to_pylist()) == {"train", "validation"}
    unknown = raybatch(tmp_path, "init", "dedupe")
    assert unknown.returncode == 2 and "choose one of: clean, augment, hygiene" in unknown.stderr

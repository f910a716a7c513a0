"""Helpers to write specs, run jobs in-process and read committed outputs in tests."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from jobs.plan import plan_job
from jobs.runner import run_job
from jobs.spec import load_spec


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def read_output(out: str | Path) -> tuple[pa.Table, pa.Table, dict]:
    """(data rows, dead-letter rows, manifest) of a committed output, data sorted by row_id."""
    out = Path(out)
    data_files = sorted(glob.glob(str(out / "data" / "*.parquet")))
    dead_files = sorted(glob.glob(str(out / "_dead_letter" / "*.parquet")))
    data = pa.concat_tables([pq.read_table(f) for f in data_files]) if data_files else pa.table({})
    dead = pa.concat_tables([pq.read_table(f) for f in dead_files]) if dead_files else pa.table({})
    if data.num_rows:
        data = data.sort_by("row_id")
    manifest = json.loads((out / "_manifest.json").read_text())
    return data, dead, manifest


def read_filtered(out: str | Path) -> pa.Table:
    """The rows stages removed on purpose (_filtered/), sorted by row_id."""
    files = sorted(glob.glob(str(Path(out) / "_filtered" / "*.parquet")))
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive") if files else pa.table({})
    return table.sort_by("row_id") if table.num_rows else table


REQUIRED_MANIFEST_KEYS = {"rows_in", "rows_out", "rows_dead_letter", "files", "stages", "spec", "seed",
                          "started_at", "finished_at", "versions"}


def run(spec_path, *overrides, date="2026-01-31", overwrite=False):
    return run_job(plan_job(load_spec(spec_path, list(overrides), date)), overwrite=overwrite)


def assert_accounted(out, rows_in):
    data, dead, manifest = read_output(out)
    filtered = read_filtered(out)
    assert REQUIRED_MANIFEST_KEYS <= manifest.keys()
    assert manifest["rows_in"] == rows_in == data.num_rows + dead.num_rows + filtered.num_rows
    assert (manifest["rows_out"], manifest["rows_dead_letter"], manifest["rows_filtered"]) == (
        data.num_rows, dead.num_rows, filtered.num_rows)
    ids = [i for t in (data, dead, filtered) if t.num_rows for i in t["row_id"].to_pylist()]
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert sorted(f["path"] for f in manifest["files"]) == sorted(
        os.path.relpath(p, out) for p in glob.glob(f"{out}/data/*.parquet"))
    assert os.path.exists(f"{out}/_SUCCESS")
    return data, dead, manifest

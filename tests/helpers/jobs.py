"""Helpers to write specs and read committed outputs in tests."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml


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

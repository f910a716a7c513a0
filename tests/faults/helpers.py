"""Running the real CLI as cron does, and comparing an output with the input it came from."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers.jobs import read_filtered, read_output, write_spec

RAYBATCH = [sys.executable, "-m", "jobs"]
SAMPLE = ROOT / "sample_data" / "reviews"


def cli(*args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*RAYBATCH, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """The run failed with `code` and said why in exactly one `error:` line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def job_spec(path: Path, output: Path, name: str = "faulty", input_path: Path = SAMPLE, stages=None,
             input_keys: dict | None = None, **top) -> Path:
    return write_spec(path, {
        "name": name, **top,
        "input": {"path": str(input_path), "id_column": "id", "shard_rows": 50, **(input_keys or {})},
        "output": {"path": str(output)},
        "stages": stages or [{"use": "clean", "column": "text"},
                             {"use": "tests.helpers.stages:UpperStage", "column": "text", "sleep_per_batch": 0.1}]})


def lost_and_doubled(out: Path, input_ids: list[str]) -> tuple[int, int]:
    """Input rows missing from data + dead letter + _filtered/, and rows present more than once."""
    data, dead, _ = read_output(out)
    ids = [i for t in (data, dead, read_filtered(out)) if t.num_rows for i in t["row_id"].to_pylist()]
    counts = Counter(ids)
    lost = sum(1 for i in input_ids if i not in counts)
    doubled = sum(n - 1 for n in counts.values() if n > 1)
    return lost, doubled


def same_rows(a: Path, b: Path) -> bool:
    data_a, dead_a, _ = read_output(a)
    data_b, dead_b, _ = read_output(b)
    return data_a.equals(data_b) and dead_a.num_rows == dead_b.num_rows and read_filtered(a).equals(read_filtered(b))

"""What planning refuses before anything runs: outputs overlapping the input (file:// too), made-up
row ids that collide with real ones; and row ids planned later (while Ray starts) planned alike."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.errors import InputDataError, OutputConflict
from jobs.plan import plan_job
from jobs.spec import parse_spec


def spec(input_path, output_path, **input_keys):
    return parse_spec({"name": "j", "input": {"path": str(input_path), **input_keys},
                       "output": {"path": str(output_path)}, "stages": [{"use": "clean", "column": "text"}]})


def test_an_output_inside_a_file_uri_input_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "in" / "a.parquet")
    with pytest.raises(OutputConflict, match="sits inside the input"):
        plan_job(spec(f"file://{tmp_path / 'in'}", tmp_path / "in" / "out"))


def test_a_made_up_id_equal_to_a_real_one_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a.parquet:1", None], "text": ["x", "y"]}), tmp_path / "in" / "a.parquet")
    with pytest.raises(InputDataError, match=r"row 1: .* 'a.parquet:1', is a real id"):
        plan_job(spec(tmp_path / "in", tmp_path / "out", id_column="id"))


def test_row_ids_planned_later_give_the_same_shards_and_a_fingerprint_only_then(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}), tmp_path / "in" / "a.parquet")
    job = spec(tmp_path / "in", tmp_path / "out", id_column="id", duplicate_ids="dead_letter", shard_rows=2)
    now, later = plan_job(job), plan_job(job, row_ids=False)
    assert [s.digest for s in later.shards] == ["", ""] and not later.row_ids_planned
    with pytest.raises(RuntimeError, match="row ids"):
        later.fingerprint()
    later = later.with_row_ids()
    assert later.shards == now.shards and [s.duplicates for s in later.shards] == [(), (2,)]
    assert later.fingerprint() == now.fingerprint()
    with pytest.raises(InputDataError, match="already used by"):
        plan_job(spec(tmp_path / "in", tmp_path / "out", id_column="id"), row_ids=False).with_row_ids()

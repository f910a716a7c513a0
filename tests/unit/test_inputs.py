"""Input discovery, schema checks, shard planning and reading, without Ray."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from jobs.errors import InputDataError
from jobs.inputs import list_input_files, plan_shards, read_schema
from jobs.reader import read_shard
from jobs.stages.base import ERROR_TYPE, SOURCE


def make(path, n, start=0, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"r{start + i}" for i in range(n)], "text": [f"t {i}" for i in range(n)],
                             **extra}), path, row_group_size=7)
    return path


def test_directory_glob_and_file(tmp_path):
    make(tmp_path / "in" / "b.parquet", 5)
    make(tmp_path / "in" / "a.parquet", 3)
    make(tmp_path / "in" / "sub" / "c.parquet", 2)
    (tmp_path / "in" / "_SUCCESS").write_text("")
    _, files = list_input_files(str(tmp_path / "in"))
    assert [f.name for f in files] == ["a.parquet", "b.parquet", "sub/c.parquet"]
    assert [f.num_rows for f in files] == [3, 5, 2]
    _, files = list_input_files(str(tmp_path / "in" / "*.parquet"))
    assert [f.name for f in files] == ["a.parquet", "b.parquet"]
    _, files = list_input_files(str(tmp_path / "in" / "a.parquet"))
    assert len(files) == 1


def test_missing_empty_and_corrupt_inputs_name_the_place(tmp_path):
    with pytest.raises(InputDataError, match="input not found"):
        list_input_files(str(tmp_path / "nope"))
    with pytest.raises(InputDataError, match="no files match"):
        list_input_files(str(tmp_path / "*.parquet"))
    bad = tmp_path / "bad" / "broken.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputDataError, match=r"broken\.parquet: not a readable Parquet file"):
        list_input_files(str(bad.parent))


def test_column_type_mismatch_between_files(tmp_path):
    make(tmp_path / "a.parquet", 2)
    pq.write_table(pa.table({"id": ["x"], "text": [5]}), tmp_path / "b.parquet")
    fs, files = list_input_files(str(tmp_path))
    with pytest.raises(InputDataError, match=r"b\.parquet: column 'text' is int64"):
        read_schema(fs, files)


def test_shards_cover_every_row_once(tmp_path):
    make(tmp_path / "a.parquet", 25)
    make(tmp_path / "b.parquet", 4)
    fs, files = list_input_files(str(tmp_path))
    shards = plan_shards(files, 10)
    assert [(s.name, s.row_start, s.row_end) for s in shards] == [
        ("a.parquet", 0, 10), ("a.parquet", 10, 20), ("a.parquet", 20, 25), ("b.parquet", 0, 4)]
    schema = read_schema(fs, files)
    ids = [i for s in shards for i in read_shard(fs, s, schema, "id")["row_id"].to_pylist()]
    assert ids == [f"r{i}" for i in range(25)] + [f"r{i}" for i in range(4)]
    middle = read_shard(fs, shards[1], schema, None)
    assert middle["row_id"].to_pylist()[0] == "a.parquet:10"  # file + index when no id column
    assert middle["text"].to_pylist() == [f"t {i}" for i in range(10, 20)]
    assert all(middle[SOURCE].to_pylist())


def test_null_id_fails_the_row_not_the_job(tmp_path):
    pq.write_table(pa.table({"id": ["a", None], "text": ["x", "y"]}), tmp_path / "n.parquet")
    fs, files = list_input_files(str(tmp_path))
    table = read_shard(fs, plan_shards(files, 10)[0], read_schema(fs, files), "id")
    assert table[ERROR_TYPE].to_pylist() == [None, "missing_id"]
    assert table["row_id"].to_pylist() == ["a", "n.parquet:1"]


def test_local_filesystem_uri(tmp_path):
    make(tmp_path / "a.parquet", 2)
    fs, files = list_input_files(f"file://{tmp_path}")
    assert isinstance(fs, pafs.LocalFileSystem) and files[0].num_rows == 2

"""Input discovery, schema checks, shard planning and reading, without Ray."""

from __future__ import annotations

import os

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


def test_each_real_file_is_listed_once_through_links_and_loops(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"]}), folder / "sub" / "a.parquet")
    os.symlink(folder, folder / "loop")  # a directory link back to the root
    os.symlink(folder / "sub" / "a.parquet", folder / "alias.parquet")  # the same file twice
    (folder / "notes.md").write_text("not data")
    _, files = list_input_files(str(folder))
    assert [f.name for f in files] == ["alias.parquet"]
    assert len(list_input_files(str(folder / "**" / "*.parquet"))[1]) == 1


def test_a_fifo_is_never_opened(tmp_path):
    fifo = tmp_path / "stuck.parquet"
    os.mkfifo(fifo)
    with pytest.raises(InputDataError, match="not a regular file"):
        list_input_files(str(fifo))
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "real.parquet")
    assert [f.name for f in list_input_files(str(tmp_path))[1]] == ["real.parquet"]


def test_duplicate_ids_name_both_places_or_become_dead_letters(tmp_path):
    from jobs.row_ids import plan_ids

    pq.write_table(pa.table({"id": ["a", "b"], "text": ["1", "2"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"id": ["b", "c"], "text": ["3", "4"]}), tmp_path / "2.parquet")
    fs, files = list_input_files(str(tmp_path))
    shards = plan_shards(files, 10)
    with pytest.raises(InputDataError, match=r"2.parquet: row 0: id 'b' .* already used by .*1.parquet row 1"):
        plan_ids(fs, files, shards, "id", "fail")
    planned = plan_ids(fs, files, shards, "id", "dead_letter")
    assert [s.duplicates for s in planned] == [(), (0,)]
    table = read_shard(fs, planned[1], read_schema(fs, files), "id")
    assert table["row_id"].to_pylist() == ["b@2.parquet:0", "c"]
    assert table["_rb_error_type"].to_pylist() == ["duplicate_id", None]


def test_a_recursive_glob_through_two_link_loops_ends_and_lists_each_file_once(tmp_path):
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"]}), folder / "a.parquet")
    os.symlink("..", folder / "up")  # two links back up: glob's own ** never ends here
    os.symlink("..", tmp_path / "in" / "up2")
    _, files = list_input_files(str(tmp_path / "in" / "**" / "*.parquet"))
    assert [f.name for f in files] == ["sub/a.parquet"]

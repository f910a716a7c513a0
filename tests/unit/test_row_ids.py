"""Row ids from an id column: kept as text when every row has its own, made up where a row's is null
or repeated (and that row then fails), whatever the column's type."""

from __future__ import annotations

from jobs.inputs import Shard
from jobs.row_ids import assign


def test_ids_of_any_type_are_kept_as_text_when_none_is_null_or_repeated():
    shard = Shard(index=0, path="/data/a.parquet", name="a.parquet", row_start=10, row_end=13)
    assert assign([7, 8, 9], shard) == (["7", "8", "9"], {})
    assert assign(["x", "y", "z"], shard) == (["x", "y", "z"], {})


def test_a_null_or_repeated_id_is_made_up_and_its_row_fails():
    shard = Shard(index=0, path="/data/a.parquet", name="a.parquet", row_start=10, row_end=13, duplicates=(12,))
    ids, failures = assign([7, None, 7], shard)
    assert ids == ["7", "a.parquet:11", "7@a.parquet:12"]
    assert {i: kind for i, (kind, _) in failures.items()} == {1: "missing_id", 2: "duplicate_id"}

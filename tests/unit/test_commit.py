"""Commit protocol without Ray: parts and markers, resume, accounting, atomic publish."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import commit
from jobs.errors import JobFailed
from jobs.inputs import Shard
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, SHARD, SOURCE

SHARDS = [Shard(0, "/in/a.parquet", "a.parquet", 0, 3), Shard(1, "/in/a.parquet", "a.parquet", 3, 5)]


def block(shard, ids, failed=()):
    n = len(ids)
    return pa.table({
        "row_id": ids, "text": [f"text {i}" for i in ids],
        SHARD: [shard] * n, SOURCE: [True] * n,
        ERROR_STAGE: ["clean" if i in failed else None for i in ids],
        ERROR_TYPE: ["empty" if i in failed else None for i in ids],
        ERROR: ["empty after cleaning" if i in failed else None for i in ids],
    })


def test_write_block_splits_good_and_dead_and_writes_marker_last(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    assert loc.staging == str(tmp_path / ".out.staging")
    commit.prepare_staging(loc, "fp", SHARDS)
    [marker] = commit.write_block(loc, block(0, ["a", "b", "c"], failed={"b"}), ["id", "text"], "zstd")
    assert (marker["source_rows"], marker["rows_out"], marker["rows_dead_letter"]) == (3, 2, 1)
    data = pq.read_table(os.path.join(loc.staging, marker["files"][0]["path"]))
    assert data.column_names == ["row_id", "text"] and data["row_id"].to_pylist() == ["a", "c"]
    dead = pq.read_table(os.path.join(loc.staging, marker["files"][1]["path"]))
    assert dead.column_names[:4] == ["row_id", "stage", "error_type", "error"]
    assert dead.to_pylist()[0]["text"] == "text b"
    assert commit.read_markers(loc) == [marker]


def test_resume_keeps_complete_shards_and_drops_partial_ones(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    commit.prepare_staging(loc, "fp", SHARDS)
    commit.write_block(loc, block(0, ["a", "b", "c"]), ["text"], "zstd")
    commit.write_block(loc, block(1, ["d"]), ["text"], "zstd")  # shard 1 has 2 rows: incomplete
    reused = commit.prepare_staging(loc, "fp", SHARDS)
    assert [m["shard"] for m in reused] == [0]
    left = sorted(os.listdir(os.path.join(loc.staging, "data")))
    assert len(left) == 1 and left[0].startswith("part-000000-")
    assert commit.prepare_staging(loc, "another spec", SHARDS) == []  # a changed job starts over
    assert os.listdir(os.path.join(loc.staging, "data")) == []


def test_accounting_refuses_missing_or_doubled_rows(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    commit.prepare_staging(loc, "fp", SHARDS)
    commit.write_block(loc, block(0, ["a", "b", "c"]), ["text"], "zstd")
    with pytest.raises(JobFailed, match="shard 1: 0 input rows accounted for, expected 2"):
        commit.check_accounting(commit.read_markers(loc), SHARDS)
    commit.write_block(loc, block(1, ["d", "e"]), ["text"], "zstd")
    commit.check_accounting(commit.read_markers(loc), SHARDS)
    commit.write_block(loc, block(1, ["e"]), ["text"], "zstd")  # a second part of a finished shard
    with pytest.raises(JobFailed, match="3 input rows accounted for, expected 2"):
        commit.check_accounting(commit.read_markers(loc), SHARDS)


def test_publish_is_a_rename_and_overwrite_replaces_atomically(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    for run, ids in enumerate((["a", "b", "c"], ["x", "y", "z"])):
        commit.prepare_staging(loc, f"fp{run}", SHARDS[:1])
        commit.write_block(loc, block(0, ids), ["text"], "zstd")
        markers = commit.read_markers(loc)
        manifest = commit.build_manifest(spec_resolved={"name": "t"}, seed=1, shards=SHARDS[:1],
                                         markers=markers, stage_names=["clean"], started_at=commit.now_iso())
        commit.publish(loc, manifest, overwrite=run > 0)
        assert not os.path.exists(loc.staging)
        assert sorted(os.listdir(loc.path)) == ["_SUCCESS", "_dead_letter", "_manifest.json", "data"]
        saved = json.loads((tmp_path / "out" / "_manifest.json").read_text())
        assert saved["rows_in"] == 3 and saved["rows_out"] == 3 and saved["rows_dead_letter"] == 0
        [file] = saved["files"]
        assert pq.read_table(tmp_path / "out" / file["path"])["row_id"].to_pylist() == ids
    assert [p for p in os.listdir(tmp_path) if p != "out"] == []  # no staging or old copy left


def test_dead_letter_escapes_invalid_utf8():
    bad = pa.array([b"\xffoops"], pa.binary()).view(pa.string())
    failed = pa.table({"row_id": ["a"], ERROR_STAGE: ["x"], ERROR_TYPE: ["E"], ERROR: ["m"], "text": bad})
    assert commit.dead_letter_rows(failed, ["text"])["text"].to_pylist() == ["\\xffoops"]


def test_publish_drops_files_no_marker_lists(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    commit.prepare_staging(loc, "fp", SHARDS[:1])
    commit.write_block(loc, block(0, ["a", "b", "c"]), ["text"], "zstd")
    orphan = tmp_path / ".out.staging" / "data" / "part-000000-deadbeef00.parquet"
    orphan.write_bytes(b"left by a task that died before its marker")
    manifest = commit.build_manifest(spec_resolved={}, seed=0, shards=SHARDS[:1], markers=commit.read_markers(loc),
                                     stage_names=[], started_at=commit.now_iso())
    commit.publish(loc, manifest, overwrite=False)
    assert sorted(os.listdir(tmp_path / "out" / "data")) == [os.path.basename(f["path"]) for f in manifest["files"]]

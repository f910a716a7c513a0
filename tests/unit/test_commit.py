"""Commit protocol without Ray: parts and typed markers, resume, identity, file checks, atomic
publish, and recovery of a publish cut short at each of its steps."""

from __future__ import annotations

import json
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import commit
from jobs.commit import publishing
from jobs.commit.identity import id_digest
from jobs.commit.parts import dead_letter_rows
from jobs.errors import JobFailed, OutputConflict
from jobs.inputs import Shard
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, INPUT_ID, SHARD, SOURCE


def shard(index, ids, start=0):
    return Shard(index, "/in/a.parquet", "a.parquet", start, start + len(ids), digest=id_digest(ids))


SHARDS = [shard(0, ["a", "b", "c"]), shard(1, ["d", "e"], start=3)]


def block(index, ids, failed=(), sources=None):
    n = len(ids)
    return pa.table({
        "row_id": ids, "text": [f"text {i}" for i in ids],
        SHARD: [index] * n, SOURCE: [True] * n, INPUT_ID: sources or ids,
        ERROR_STAGE: ["clean" if i in failed else None for i in ids],
        ERROR_TYPE: ["empty" if i in failed else None for i in ids],
        ERROR: ["empty after cleaning" if i in failed else None for i in ids],
    })


def staged(tmp_path, shards=SHARDS, blocks=None, name="out"):
    loc = commit.OutputLocation.for_uri(str(tmp_path / name))
    commit.prepare_staging(loc, "fp", "job", shards)
    for b in blocks if blocks is not None else [block(0, ["a", "b", "c"]), block(1, ["d", "e"])]:
        commit.write_block(loc, b, ["id", "text"], "zstd")
    return loc


def manifest_for(loc, shards=SHARDS, name="job"):
    return commit.build_manifest(name=name, run_id=uuid.uuid4().hex, fingerprint="fp", spec_resolved={}, seed=0,
                                 shards=shards, markers=commit.read_markers(loc), stage_names=["clean"],
                                 started_at=commit.now_iso())


def test_write_block_splits_good_and_dead_and_writes_marker_last(tmp_path):
    loc = staged(tmp_path, blocks=[block(0, ["a", "b", "c"], failed={"b"})])
    assert loc.staging == str(tmp_path / ".out.staging")
    [marker] = commit.read_markers(loc)
    assert (marker.source_rows, marker.rows_out, marker.rows_dead_letter) == (3, 2, 1)
    assert marker.source_digest == SHARDS[0].digest
    data = pq.read_table(os.path.join(loc.staging, marker.files[0].path))
    assert data.column_names == ["row_id", "text"] and data["row_id"].to_pylist() == ["a", "c"]
    dead = pq.read_table(os.path.join(loc.staging, marker.files[1].path))
    assert dead.column_names[:4] == ["row_id", "stage", "error_type", "error"]
    assert dead.to_pylist()[0]["text"] == "text b"


def test_resume_keeps_complete_shards_and_drops_partial_ones(tmp_path):
    loc = staged(tmp_path, blocks=[block(0, ["a", "b", "c"]), block(1, ["d"])])  # shard 1 lacks "e"
    reused = commit.prepare_staging(loc, "fp", "job", SHARDS)
    assert [m.shard for m in reused] == [0]
    left = sorted(os.listdir(os.path.join(loc.staging, "data")))
    assert len(left) == 1 and left[0].startswith("part-000000-")
    assert commit.prepare_staging(loc, "another spec", "job", SHARDS) == []  # a changed job starts over
    assert os.listdir(os.path.join(loc.staging, "data")) == []


def test_another_jobs_staging_is_never_reused(tmp_path):
    loc = staged(tmp_path)
    assert commit.prepare_staging(loc, "fp", "another-job", SHARDS) == []
    assert json.loads((tmp_path / ".out.staging" / "_stamp.json").read_text())["job"] == "another-job"


def test_identity_refuses_missing_doubled_and_swapped_rows(tmp_path):
    loc = staged(tmp_path, blocks=[block(0, ["a", "b", "c"])])
    with pytest.raises(JobFailed, match=r"shard 1 .*0 of 2 input rows accounted for"):
        commit.check_identity(commit.read_markers(loc), SHARDS)
    commit.write_block(loc, block(1, ["d", "e"]), ["text"], "zstd")
    commit.check_identity(commit.read_markers(loc), SHARDS)
    # Same count, other ids: "d" dropped and "e" doubled. Counting rows would pass this.
    loc2 = staged(tmp_path, name="out2", blocks=[block(0, ["a", "b", "c"]), block(1, ["e", "e"])])
    with pytest.raises(JobFailed, match="the same count but other row ids"):
        commit.check_identity(commit.read_markers(loc2), SHARDS)


def test_a_staged_file_changed_after_its_marker_is_refused(tmp_path):
    loc = staged(tmp_path)
    markers = commit.read_markers(loc)
    commit.verify_files(loc, markers)
    path = os.path.join(loc.staging, markers[0].files[0].path)
    pq.write_table(pq.read_table(path).slice(1), path)
    with pytest.raises(JobFailed, match="does not match its marker"):
        commit.verify_files(loc, markers)


def test_dead_letter_fraction_past_the_limit_fails_naming_the_stage(tmp_path):
    loc = staged(tmp_path, blocks=[block(0, ["a", "b", "c"], failed={"a", "b", "c"}), block(1, ["d", "e"])])
    commit.check_dead_letter_fraction(commit.read_markers(loc), 5, 0.6)
    with pytest.raises(JobFailed, match=r"3 of 5 input rows \(60%\) .* max_dead_letter_fraction 0.5"):
        commit.check_dead_letter_fraction(commit.read_markers(loc), 5, 0.5)


def test_publish_then_overwrite_swaps_in_place_leaving_nothing_beside(tmp_path):
    for run, ids in enumerate((["a", "b", "c"], ["x", "y", "z"])):
        shards = [shard(0, ids)]
        loc = staged(tmp_path, shards=shards, blocks=[block(0, ids)])
        manifest = manifest_for(loc, shards)
        commit.publish(loc, manifest)
        assert sorted(os.listdir(loc.path)) == ["_SUCCESS", "_dead_letter", "_filtered", "_manifest.json", "data"]
        saved = json.loads((tmp_path / "out" / "_manifest.json").read_text())
        assert saved["run_id"] == manifest.run_id and (saved["rows_in"], saved["rows_out"]) == (3, 3)
        [file] = saved["files"]
        assert pq.read_table(tmp_path / "out" / file["path"])["row_id"].to_pylist() == ids
    assert [p for p in os.listdir(tmp_path) if p != "out"] == []  # no staging, old copy or record left


def test_publish_drops_files_no_marker_lists(tmp_path):
    loc = staged(tmp_path)
    orphan = tmp_path / ".out.staging" / "data" / "part-000000-deadbeef00.parquet"
    orphan.write_bytes(b"left by a task that died before its marker")
    manifest = manifest_for(loc)
    commit.publish(loc, manifest)
    assert sorted(os.listdir(tmp_path / "out" / "data")) == sorted(os.path.basename(f.path) for f in manifest.files)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("cut", ["before-swap", "mid-swap"])
def test_recover_finishes_a_publish_cut_short_old_or_new_never_neither(tmp_path, monkeypatch, exchange, cut):
    """Publish an old output, then cut the next publish short at one of its steps: the output path
    always holds the old or the new output, and `recover` completes the new one without a leak."""
    old_ids, new_ids = ["a", "b", "c"], ["x", "y", "z"]
    loc = staged(tmp_path, shards=[shard(0, old_ids)], blocks=[block(0, old_ids)])
    commit.publish(loc, manifest_for(loc, [shard(0, old_ids)]))
    loc = staged(tmp_path, shards=[shard(0, new_ids)], blocks=[block(0, new_ids)])
    new = manifest_for(loc, [shard(0, new_ids)])
    if not exchange:
        monkeypatch.setattr(publishing, "_exchange", lambda a, b: False)

    class Cut(Exception):
        pass

    def cut_at(name):
        if (cut, name) in {("before-swap", "publish.sealed"), ("mid-swap", "publish.swapped"),
                           ("mid-swap", "publish.moved_aside")}:
            raise Cut(name)

    monkeypatch.setattr(publishing, "crash_point", cut_at)
    with pytest.raises(Cut):
        commit.publish(loc, new)
    in_place = json.loads((tmp_path / "out" / "_manifest.json").read_text())["run_id"] \
        if (tmp_path / "out" / "_SUCCESS").exists() else None
    assert in_place is not None or (not exchange and cut == "mid-swap")  # only the fallback has a gap
    assert commit.recover(loc)
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["run_id"] == new.run_id
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert commit.recover(loc) is None  # nothing left to do


def test_only_this_jobs_committed_output_or_an_empty_folder_may_be_replaced(tmp_path):
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    loc.check_replaceable("job")  # nothing there
    (tmp_path / "out").mkdir()
    loc.check_replaceable("job")  # an empty folder
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(OutputConflict, match=r"a folder this job did not write \(1 entries\)"):
        loc.check_replaceable("job")
    (tmp_path / "out" / "notes.txt").unlink()
    (tmp_path / "out").rmdir()
    staged_loc = staged(tmp_path, name="out")
    commit.publish(staged_loc, manifest_for(staged_loc, name="job"))
    loc.check_replaceable("job")
    with pytest.raises(OutputConflict, match="a committed output of job 'job'"):
        loc.check_replaceable("other")


def test_dead_letter_escapes_invalid_utf8():
    bad = pa.array([b"\xffoops"], pa.binary()).view(pa.string())
    failed = pa.table({"row_id": ["a"], ERROR_STAGE: ["x"], ERROR_TYPE: ["E"], ERROR: ["m"], "text": bad})
    assert dead_letter_rows(failed, ["text"])["text"].to_pylist() == ["\\xffoops"]


def test_identity_digest_is_order_independent_and_sees_doubles():
    assert id_digest(["a", "b", "c"]) == id_digest(["c", "a", "b"])
    assert id_digest(["a", "a"]) != id_digest([])  # XOR would cancel these out
    assert id_digest(["a", "c", "c"]) != id_digest(["a", "b", "c"])


def test_a_committed_output_with_files_added_by_hand_is_not_replaced(tmp_path):
    loc = staged(tmp_path)
    commit.publish(loc, manifest_for(loc))
    (tmp_path / "out" / "data" / "my-extra.parquet").write_bytes(b"added by hand")
    loc.check_replaceable("job")  # a run that skips it is fine
    with pytest.raises(OutputConflict, match=r"also holds 1 file\(s\) it did not write \(e.g. data/my-extra.parquet\)"):
        loc.check_unchanged()


def test_a_staging_named_folder_holding_foreign_files_is_never_wiped(tmp_path):
    (tmp_path / ".out.staging").mkdir()
    (tmp_path / ".out.staging" / "keep.txt").write_text("mine")
    loc = commit.OutputLocation.for_uri(str(tmp_path / "out"))
    with pytest.raises(OutputConflict, match="holds 'keep.txt'"):
        commit.prepare_staging(loc, "fp", "job", SHARDS)
    assert (tmp_path / ".out.staging" / "keep.txt").read_text() == "mine"


def test_an_old_output_half_deleted_when_the_kill_came_is_cleaned_up(tmp_path):
    loc = staged(tmp_path)
    commit.publish(loc, manifest_for(loc))
    trash = tmp_path / ".out.old"
    (trash / "data").mkdir(parents=True)
    (trash / "report.html").write_text("left over")  # _SUCCESS and the manifest already gone
    legacy = tmp_path / ".out.staging.old-1a2b3c4d"
    (legacy / "data").mkdir(parents=True)
    (legacy / "_SUCCESS").write_text("")
    mine = tmp_path / ".out.staging.old-notours"
    mine.mkdir()
    (mine / "thesis.tex").write_text("not an output")
    assert commit.recover(loc)
    assert sorted(os.listdir(tmp_path)) == [".out.staging.old-notours", "out"]

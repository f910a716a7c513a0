"""The run lock (per output path) and the incremental record (pending, then committed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from jobs.errors import LockHeld
from jobs.incremental import IncrementalState, state_dir
from jobs.inputs import list_input_files
from jobs.lock import RunLock


def test_state_dir_is_before_the_date():
    assert state_dir("/data/out/{name}/{date}/x", "job") == "/data/out/job"
    assert state_dir("/data/out/plain", "job") == "/data/out"


def test_second_holder_is_refused_with_the_holder_named(tmp_path):
    path = str(tmp_path / ".out.lock")
    with RunLock(path, "output out"):
        with pytest.raises(LockHeld, match=rf"another run holds output out .*pid {os.getpid()}"):
            RunLock(path, "output out").acquire()
    RunLock(path, "output out").acquire().release()  # free again


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    path = str(tmp_path / ".out.lock")
    code = ("import sys, time; sys.path.insert(0, %r); from jobs.lock import RunLock; "
            "RunLock(%r, 'x').acquire(); print('held', flush=True); time.sleep(60)") % (os.getcwd(), path)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        RunLock(path, "x").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    RunLock(path, "x").acquire().release()


def inputs(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        pq.write_table(pa.table({"text": [f"{name} row"]}), folder / name)
    return list_input_files(str(folder))[1]


def commit_output(folder, run_id):
    folder.mkdir(parents=True)
    (folder / "_manifest.json").write_text(json.dumps({"run_id": run_id}))
    (folder / "_SUCCESS").write_text("")


def committed_day1(tmp_path):
    """A state where run1 took a.parquet and published day1."""
    state = IncrementalState.for_job(str(tmp_path), "job", pafs.LocalFileSystem())
    [a] = inputs(tmp_path / "in", "a.parquet")
    day1 = tmp_path / "day1"
    state.mark_pending([a], str(day1), "run1")
    commit_output(day1, "run1")
    state.mark_committed("run1")
    return state, a, day1


def test_a_file_counts_as_taken_only_once_its_run_published(tmp_path):
    state = IncrementalState.for_job(str(tmp_path), "job", pafs.LocalFileSystem())
    a, b = inputs(tmp_path / "in", "a.parquet", "b.parquet")
    day1 = tmp_path / "day1"
    state.mark_pending([a], str(day1), "run1")
    assert state.new_files([a, b], str(tmp_path / "day2")) == [a, b]  # day1 never published: pending drops
    state.mark_pending([a], str(day1), "run1")
    commit_output(day1, "run1")
    assert state.new_files([a, b], str(tmp_path / "day2")) == [b]  # settled from day1's manifest
    assert state.new_files([a, b], str(day1)) == [a, b]  # redoing day1 itself takes its files again


def test_retention_deleting_an_old_output_does_not_make_its_files_new(tmp_path):
    state, a, day1 = committed_day1(tmp_path)
    for path in day1.iterdir():
        path.unlink()
    day1.rmdir()  # retention
    assert state.new_files([a], str(tmp_path / "day3")) == []


def test_a_copy_with_the_same_bytes_and_a_new_mtime_is_not_taken_again(tmp_path):
    state = IncrementalState.for_job(str(tmp_path), "job", pafs.LocalFileSystem())
    [a] = inputs(tmp_path / "in", "a.parquet")
    state.mark_pending([a], str(tmp_path / "day1"), "run1")
    state.mark_committed("run1")
    data = (tmp_path / "in" / "a.parquet").read_bytes()
    time.sleep(0.01)
    (tmp_path / "in" / "a.parquet").write_bytes(data)  # copied again: same bytes, new mtime
    os.utime(tmp_path / "in" / "a.parquet", (a.mtime + 60, a.mtime + 60))
    [again] = list_input_files(str(tmp_path / "in"))[1]
    assert again.mtime != a.mtime
    assert state.new_files([again], str(tmp_path / "day2")) == []
    pq.write_table(pa.table({"text": ["a.parquet ROW"]}), tmp_path / "in" / "a.parquet")  # same size, new bytes
    [changed] = list_input_files(str(tmp_path / "in"))[1]
    assert state.new_files([changed], str(tmp_path / "day2")) == [changed]


def test_a_failed_overwrite_leaves_its_files_taken_by_the_output_that_still_stands(tmp_path):
    state, a, day1 = committed_day1(tmp_path)
    state.mark_pending([a], str(day1), "run2")  # --overwrite of day1, which then fails to publish
    assert state.new_files([a], str(tmp_path / "day2")) == []  # day1 (run1) still holds it

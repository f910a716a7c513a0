"""The job lock and the incremental record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jobs.errors import LockHeld
from jobs.inputs import InputFile
from jobs.state import IncrementalState, JobLock, state_dir


def test_state_dir_is_before_the_date():
    assert state_dir("/data/out/{name}/{date}/x", "job") == "/data/out/job"
    assert state_dir("/data/out/plain", "job") == "/data/out"


def test_second_holder_is_refused_with_the_holder_named(tmp_path):
    with JobLock(str(tmp_path), "job"):
        with pytest.raises(LockHeld, match=rf"pid {os.getpid()}"):
            JobLock(str(tmp_path), "job").acquire()
    JobLock(str(tmp_path), "job").acquire().release()  # free again


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r); from jobs.state import JobLock; "
            "JobLock(%r, 'job').acquire(); print('held', flush=True); time.sleep(60)") % (os.getcwd(), str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        JobLock(str(tmp_path), "job").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    JobLock(str(tmp_path), "job").acquire().release()


def test_incremental_counts_files_only_once_their_output_is_committed(tmp_path):
    state = IncrementalState.for_job(str(tmp_path), "job")
    a = InputFile("/in/a.parquet", "a.parquet", 10, 1.0, 5)
    b = InputFile("/in/b.parquet", "b.parquet", 10, 1.0, 5)
    day1 = tmp_path / "day1"
    state.record([a], str(day1))
    assert state.new_files([a, b], str(tmp_path / "day2")) == [a, b]  # day1 never published
    day1.mkdir()
    (day1 / "_SUCCESS").write_text("")
    assert state.new_files([a, b], str(tmp_path / "day2")) == [b]
    assert state.new_files([a, b], str(day1)) == [a, b]  # redoing day1 itself takes its files again
    changed = InputFile("/in/a.parquet", "a.parquet", 11, 2.0, 6)
    assert state.new_files([changed], str(tmp_path / "day2")) == [changed]

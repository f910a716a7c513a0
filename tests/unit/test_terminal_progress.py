"""The run's log file and output capture, and progress counting, without Ray."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobs.progress import RunProgress, StageProgress
from jobs.terminal import LOGS_KEPT, log_path


def test_logs_are_private_and_pruned_but_never_one_a_live_run_writes(tmp_path):
    folder = tmp_path / ".raybatch-job.logs"
    folder.mkdir()
    live = folder / f"20200101T000000Z-{os.getpid()}.log"  # the oldest, but its writer runs
    live.write_text("still running")
    finished = [folder / f"2021{i:04d}T000000Z-999999999.log" for i in range(LOGS_KEPT + 5)]
    for path in finished:
        path.write_text("done")
    (folder / "notes.txt").write_text("the user's")
    new = log_path(str(tmp_path), "job")
    assert new.parent == folder and new.exists() and oct(new.stat().st_mode & 0o777) == "0o600"
    kept = sorted(folder.glob("*.log"))
    assert live in kept and new in kept and (folder / "notes.txt").exists()
    assert [p for p in kept if p in finished] == finished[-(LOGS_KEPT - 1):]  # with the new one: LOGS_KEPT


def test_capture_sends_child_output_to_the_log_and_puts_the_terminal_back_on_error(tmp_path):
    log = tmp_path / "run.log"
    log.touch()
    script = (
        "import os, subprocess, sys\n"
        "from jobs.terminal import captured\n"
        f"log = {str(log)!r}\n"
        "try:\n"
        "    with captured(__import__('pathlib').Path(log), echo=False) as ours:\n"
        "        print('from python', flush=True)\n"
        "        os.write(2, b'from C\\n')\n"
        "        subprocess.run([sys.executable, '-c', 'print(\"from a child\")'])\n"
        "        ours.write('ours\\n')\n"
        "        raise RuntimeError('boom')\n"
        "except RuntimeError:\n"
        "    print('after', flush=True)\n"
        "    print('error after', file=sys.stderr, flush=True)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "after\n" and result.stderr == "ours\nerror after\n"
    assert log.read_text().splitlines() == ["from python", "from C", "from a child"]


def test_verbose_capture_shows_the_output_and_keeps_it(tmp_path):
    log = tmp_path / "run.log"
    log.touch()
    script = ("import os\nfrom pathlib import Path\nfrom jobs.terminal import captured\n"
              f"with captured(Path({str(log)!r}), echo=True):\n"
              "    os.write(1, b'shown and kept\\n')\n"
              "import time; time.sleep(0.5)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "shown and kept" in result.stderr and log.read_text() == "shown and kept\n"


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1]])
def test_rows_over_time_count_in_time_order_whatever_the_arrival(order):
    progress = RunProgress()
    progress.stages["clean"] = stage = StageProgress("clean", 30)
    events = [{"t": progress.started + 1 + i, "shard_rows": 10, "rows_dead": i, "rows_filtered": 0} for i in range(3)]
    for i in order:
        stage.add(events[i])
    series = progress.finish()
    assert series == [{"label": "clean", "rows": 30, "points": [[1.0, 10], [2.0, 20], [3.0, 30]]}]
    assert stage.rows_dead == 3 and stage.eta(progress.started, progress.started + 100) == 0.0
    assert stage.rate(progress.started, progress.started + 100) == pytest.approx(10.0)  # to the last block

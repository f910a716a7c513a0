"""kill -9 at named points of the run's lifecycle and at moments drawn by a seeded schedule, each
followed by a rerun: the output path always holds the old output or the new one (never neither,
never a mix), and after the rerun it equals an uninterrupted run's, row for row."""

from __future__ import annotations

import json
import os
import re
import random
import signal
import subprocess
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.crashpoints import ENV
from tests.conftest import ROOT
from tests.faults.helpers import RAYBATCH, SAMPLE, cli, job_spec, lost_and_doubled, same_rows

SEED = 20261201
RANDOM_KILLS = 3


@pytest.fixture(scope="module")
def input_ids():
    return pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("*.parquet"))])["id"].to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and how long it took (the random schedule draws within it)."""
    folder = tmp_path_factory.mktemp("reference")
    started = time.time()
    result = cli("run", job_spec(folder / "job.yaml", folder / "out"))
    assert result.returncode == 0, result.stderr
    return folder / "out", time.time() - started


def run_id(out):
    return json.loads((out / "_manifest.json").read_text())["run_id"] if (out / "_SUCCESS").exists() else None


def only_ours_beside(out):
    """Next to the output only its lock and the runs' logs remain: no staging, old copy or publish
    record leaks."""
    beside = [p for p in os.listdir(out.parent) if p != "job.yaml" and not re.fullmatch(r"\.raybatch-.+\.logs", p)]
    return sorted(beside) == sorted([out.name, f".{out.name}.lock"])


@pytest.mark.parametrize("point", ["run.locked", "run.executed", "publish.recorded", "publish.sealed",
                                   "run.published"])
def test_kill_at_a_lifecycle_point_then_rerun(tmp_path, ledger, reference, input_ids, point):
    out = tmp_path / "out"
    spec = job_spec(tmp_path / "job.yaml", out)
    killed = cli("run", spec, env={ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists() or run_id(out), "a partial output became visible"
    rerun = cli("run", spec)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    if point == "run.executed":  # every shard was in staging: the rerun publishes it without starting Ray
        said = rerun.stdout + rerun.stderr
        assert re.search(r"reused (\d+) of \1 shard", said) and "Ray start" not in said, said[-2000:]
    assert same_rows(out, reference[0]) and only_ours_beside(out)
    ledger("kill point", point, *lost_and_doubled(out, input_ids))


@pytest.mark.parametrize("point", ["publish.recorded", "publish.sealed", "publish.swapped"])
def test_kill_while_overwriting_leaves_old_or_new_then_the_rerun_finishes(tmp_path, ledger, reference, input_ids,
                                                                           point):
    out = tmp_path / "out"
    spec = job_spec(tmp_path / "job.yaml", out)
    assert cli("run", spec).returncode == 0
    old = run_id(out)
    killed = cli("run", spec, "--overwrite", env={ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert run_id(out) is not None, "nothing at the output path mid-swap"
    rerun = cli("run", spec, "--overwrite")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    if point == "publish.swapped":  # the new output was in place: the rerun finishes, not recomputes
        assert "recovered:" in rerun.stderr and "skipped" in rerun.stdout
    assert run_id(out) != old and same_rows(out, reference[0]) and only_ours_beside(out)
    ledger("kill point", f"{point} (overwrite)", *lost_and_doubled(out, input_ids))


def test_kills_at_random_moments_then_rerun(tmp_path, ledger, reference, input_ids):
    schedule = random.Random(SEED)
    for attempt in range(RANDOM_KILLS):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        out = folder / "out"
        spec = job_spec(folder / "job.yaml", out)
        delay = schedule.uniform(1.0, reference[1])
        driver = subprocess.Popen([*RAYBATCH, "run", str(spec)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(delay)
        ray_processes = psutil.Process(driver.pid).children(recursive=True) if driver.poll() is None else []
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert not out.exists() or run_id(out), f"a partial output became visible after {delay:.1f}s"
        _wait_gone(ray_processes)
        rerun = cli("run", spec)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert same_rows(out, reference[0]) and only_ours_beside(out)
        ledger("kill point", f"random, {delay:.1f}s in", *lost_and_doubled(out, input_ids))


def _wait_gone(processes, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
            return
        time.sleep(0.2)
    raise AssertionError("the killed driver's Ray processes did not go")

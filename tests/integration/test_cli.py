"""The CLI as users and cron run it: exit codes, one-line errors, kill -9 then resume, the lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.plan import plan_job
from jobs.runner import run_job
from jobs.spec import load_spec
from tests.conftest import ROOT
from tests.helpers.jobs import read_output, write_spec

RAYBATCH = [sys.executable, "-m", "jobs"]


def cli(*args, timeout=300):
    return subprocess.run([*RAYBATCH, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def spec_for(tmp_path, input_path, column="text", **stage):
    return write_spec(tmp_path / "job.yaml", {
        "name": "cli", "input": {"path": str(input_path), "id_column": "id"},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": "clean", "column": column, **stage}]})


def one_line_error(result, code, *fragments):
    assert result.returncode == code, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_bad_inputs_exit_2_naming_the_file_or_column_and_publish_nothing(tmp_path):
    good = tmp_path / "in"
    good.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"], "n": [1]}), good / "a.parquet")
    one_line_error(cli("run", spec_for(tmp_path, tmp_path / "none" / "*.parquet")), 2, "no files match")
    line = one_line_error(cli("validate", spec_for(tmp_path, good, column="body")), 2,
                          "job.yaml: stages[0].column: stage 'clean' needs column 'body'", "available: id, text, n (")
    assert "row_id" not in line
    one_line_error(cli("run", spec_for(tmp_path, good, column="n")), 2, "column 'n' is int64")
    (good / "b.parquet").write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    one_line_error(cli("run", spec_for(tmp_path, good)), 2, "b.parquet", "not a readable Parquet file")
    one_line_error(cli("run", spec_for(tmp_path, good), "--set", "stages.0.max_chars=-1"), 2,
                   "stages[0].max_chars: must be > 0")
    one_line_error(cli("run", spec_for(tmp_path, good), "--date", "yesterday"), 2, "YYYY-MM-DD")
    assert not (tmp_path / "out").exists()


def test_run_json_prints_one_object_with_the_counts_for_scripts(tmp_path):
    spec = spec_for(tmp_path, ROOT / "sample_data" / "reviews")
    first = cli("run", spec, "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert summary["skipped"] is False and summary["output"] == str(tmp_path / "out")
    assert {k: summary[k] for k in ("rows_in", "rows_out", "rows_dead_letter", "run_id")} == \
        {k: manifest[k] for k in ("rows_in", "rows_out", "rows_dead_letter", "run_id")}
    # Where the time went: the phases follow each other, so they add up to the whole run.
    phases = summary["phases"]
    assert list(phases) == ["prepare", "ray_start", "work", "commit"] and phases["ray_start"] > 0
    before_commit = phases["prepare"] + phases["ray_start"] + phases["work"]
    assert before_commit - 0.01 <= summary["seconds"] <= before_commit + phases["commit"] + 0.01
    assert manifest["phases"] == {k: phases[k] for k in ("prepare", "ray_start", "work")}
    again = json.loads(cli("run", spec, "--json").stdout)
    assert again["skipped"] is True and again["rows_in"] == manifest["rows_in"]  # the committed counts
    text = cli("run", spec, "--overwrite")
    assert re.search(r"^time: prepare [\d.]+s, Ray start [\d.]+s, work [\d.]+s, commit [\d.]+s \(total [\d.]+s\)$",
                     text.stdout, re.M), text.stdout


def test_corrupt_pages_fail_the_job_with_exit_2_and_nothing_published(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "a.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(2000)], "text": [f"row {i} " * 20 for i in range(2000)]}),
                   path, compression="none")
    raw = bytearray(path.read_bytes())
    raw[200:4000] = os.urandom(3800)  # data pages broken, footer intact: only reading finds it
    path.write_bytes(bytes(raw))
    result = cli("run", spec_for(tmp_path, folder))
    one_line_error(result, 2, "a.parquet", "cannot read")  # planning reads the id column and finds it
    assert not (tmp_path / "out").exists()


def slow_spec(tmp_path, name="slow", sleep=0.4):
    return write_spec(tmp_path / f"{name}.yaml", {
        "name": name, "input": {"path": str(ROOT / "sample_data/reviews"), "id_column": "id", "shard_rows": 50},
        "output": {"path": str(tmp_path / "out" / "{name}")},
        "stages": [{"use": "clean", "column": "text"},
                   {"use": "tests.helpers.stages:UpperStage", "column": "text", "sleep_per_batch": sleep}]})


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_output(ray_local, tmp_path):
    spec = slow_spec(tmp_path)
    out, markers = tmp_path / "out" / "slow", tmp_path / "out" / ".slow.staging" / "_shards"
    driver = subprocess.Popen([*RAYBATCH, "run", str(spec)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: markers.exists() and len(os.listdir(markers)) >= 2, 180, "two shards committed")
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not out.exists(), "a partial output became visible"
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ray_processes),
             30, "the killed driver's Ray processes to go")

    rerun = cli("run", spec)
    assert rerun.returncode == 0, rerun.stderr
    data, dead, manifest = read_output(out)
    assert 2 <= manifest["shards_reused"] < manifest["shards"]

    reference = tmp_path / "reference"
    run_job(plan_job(load_spec(spec, [f"output.path={reference}"])))
    ref_data, ref_dead, _ = read_output(reference)
    assert data.equals(ref_data) and data.num_rows + dead.num_rows == 600 == ref_data.num_rows + ref_dead.num_rows


@pytest.mark.parametrize("second_name", ["locked", "another-job"])
def test_a_second_run_on_the_same_output_path_exits_3_at_once(tmp_path, second_name):
    """The lock is the output path's: a second run of the same job, or of another job writing the
    same path, is refused before it touches the first one's staging."""
    spec = slow_spec(tmp_path, name="locked", sleep=1.0)
    lock = tmp_path / "out" / ".locked.lock"
    first = subprocess.Popen([*RAYBATCH, "run", str(spec)], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: lock.exists() and "pid" in lock.read_text(), 120, "the first run to lock")
        stamp = tmp_path / "out" / ".locked.staging" / "_stamp.json"
        wait_for(stamp.exists, 60, "the first run's staging")
        before = stamp.read_text()
        started = time.time()
        second = cli("run", spec, "--set", f"name={second_name}", "--set", f"output.path={tmp_path / 'out' / 'locked'}")
        one_line_error(second, 3, "another run holds output", f"pid {first.pid}")
        assert time.time() - started < 30
        assert stamp.read_text() == before and json.loads(before)["job"] == "locked"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

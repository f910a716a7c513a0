"""kill -9 in the middle of a dedup job, then the same command again: it resumes from what staging
holds (the keys of the first pass, the decisions, the finished shards of the second) and commits
the same rows as an uninterrupted run, none lost or doubled, the duplicates in _filtered/."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.crashpoints import ENV
from tests.conftest import ROOT
from tests.faults.helpers import RAYBATCH, SAMPLE, cli, job_spec, lost_and_doubled, same_rows
from tests.helpers.jobs import read_filtered, read_output

STAGES = [{"use": "clean", "column": "text"},
          {"use": "dedup", "column": "text_clean", "method": "near", "threshold": 0.8},
          {"use": "tests.helpers.stages:UpperStage", "column": "text_clean", "sleep_per_batch": 0.3}]


@pytest.fixture(scope="module")
def dup_input(tmp_path_factory):
    """The sample reviews plus a file of copies of some of them, case and spacing changed."""
    folder = tmp_path_factory.mktemp("dedup_in")
    for path in sorted(SAMPLE.glob("*.parquet")):
        shutil.copy(path, folder / path.name)
    reviews = pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("*.parquet"))])
    copies = reviews.slice(0, 40)
    pq.write_table(pa.table({"id": [f"copy-{i}" for i in copies["id"].to_pylist()],
                             "text": [f"  {t.upper()}  " for t in copies["text"].to_pylist()]}),
                   folder / "zz-copies.parquet")
    ids = reviews["id"].to_pylist() + [f"copy-{i}" for i in copies["id"].to_pylist()]
    return folder, ids


@pytest.fixture(scope="module")
def reference(dup_input, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dedup_ref")
    result = cli("run", job_spec(folder / "job.yaml", folder / "out", name="dedup", input_path=dup_input[0],
                                 stages=STAGES))
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_filtered(folder / "out").num_rows >= 40
    return folder / "out"


def test_kill_after_the_first_pass_then_rerun(tmp_path, ledger, dup_input, reference):
    out = tmp_path / "out"
    spec = job_spec(tmp_path / "job.yaml", out, name="dedup", input_path=dup_input[0], stages=STAGES)
    killed = cli("run", spec, env={ENV: "run.keyed"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    staged = list((tmp_path / ".out.staging" / "_work" / "segment-0").glob("part-*.json"))
    assert staged and not out.exists()
    rerun = cli("run", spec)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert same_rows(out, reference)
    ledger("kill point", "dedup: after the first pass", *lost_and_doubled(out, dup_input[1]))


def test_kill_during_the_second_pass_then_rerun_reuses_finished_shards(tmp_path, ledger, dup_input, reference):
    out = tmp_path / "out"
    spec = job_spec(tmp_path / "job.yaml", out, name="dedup", input_path=dup_input[0], stages=STAGES)
    markers = tmp_path / ".out.staging" / "_shards"
    driver = subprocess.Popen([*RAYBATCH, "run", str(spec)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None and len(list(markers.glob("*.json"))) < 2:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not out.exists(), "the job finished before the kill: make the second pass slower"
    rerun = cli("run", spec)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert same_rows(out, reference)
    assert read_output(out)[2]["shards_reused"] >= 2
    ledger("kill point", "dedup: during the second pass", *lost_and_doubled(out, dup_input[1]))

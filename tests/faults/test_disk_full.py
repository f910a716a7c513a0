"""A full disk while staging: one line naming the place (exit 1), no temporary files left, the old
output untouched; once space is freed the rerun finishes with every row once."""

from __future__ import annotations

import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.faults.helpers import SAMPLE, cli, job_spec, lost_and_doubled, one_line_error


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: the output's filesystem, filled on purpose by the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_fails_in_one_line_keeps_the_old_output_and_the_rerun_finishes(small_disk, tmp_path, ledger):
    out = small_disk / "out"
    spec = job_spec(tmp_path / "job.yaml", out, stages=[
        {"use": "clean", "column": "text"},
        {"use": "tests.helpers.stages:UpperStage", "column": "text", "output_column": "upper"}])
    assert cli("run", spec).returncode == 0
    old = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(free - 48 * 1024, 0))  # room for a few parts, not for all of them

    result = cli("run", spec, "--overwrite")
    one_line_error(result, 1, "no space left on", str(small_disk), "the previous output is untouched")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == old
    leftovers = [p for p in small_disk.rglob("*") if ".tmp-" in p.name]
    assert leftovers == [], leftovers
    ledger("fault", "disk full while staging")

    filler.unlink()
    rerun = cli("run", spec, "--overwrite")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ids = pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("*.parquet"))])["id"].to_pylist()
    assert lost_and_doubled(out, ids) == (0, 0)

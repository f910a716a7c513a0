"""A real local cluster (head + 1 worker node on 127.0.0.1, token auth): `raybatch cluster up`, the
sample job through `raybatch submit --wait` and through plain `ray job submit` exactly as
docs/cluster.md writes it, job control, exit codes and the cluster's refusals.

The cluster gets its own HOME, so `cluster up` must generate the token and every client must find it
in ~/.ray/auth_token by itself; nothing inherits this checkout's PYTHONPATH, so jobs run from the
shipped working dir only.
"""

from __future__ import annotations

import os
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import requests

from ray_cluster.local import free_ports, processes
from tests.conftest import ROOT
from tests.helpers.jobs import read_output, write_spec

pytestmark = pytest.mark.cluster

SAMPLE = "jobs/specs/sample_clean.yaml"
SAMPLE_IDS = sorted(id_ for path in sorted((ROOT / "sample_data/reviews").glob("*.parquet"))
                    for id_ in pq.read_table(path, columns=["id"])["id"].to_pylist())


class Handle:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        gcs_port, dashboard_port = free_ports(2)
        self.gcs_port, self.url = gcs_port, f"http://127.0.0.1:{dashboard_port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS", "PYTHONPATH")}
        env.update(HOME=str(self.home), RAYBATCH_CLUSTER_DIR=str(tmp / "c"), RAY_USAGE_STATS_ENABLED="0",
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
        self.env = env
        self.up: subprocess.CompletedProcess | None = None
        self.early: subprocess.Popen | None = None

    def raybatch(self, *args, env=None, timeout=240, address=True):
        command = [sys.executable, "-m", "jobs", *map(str, args)] + (["--address", self.url] if address else [])
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env or self.env, timeout=timeout)

    def status(self, job_id: str) -> str:
        result = self.raybatch("status", job_id)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[0].split(": ")[1]

    def wait_for(self, job_id: str, wanted: set[str], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(job_id)
            if status in wanted:
                return status
            time.sleep(1)
        raise AssertionError(f"{job_id} still {status} after {timeout}s")


@pytest.fixture(scope="module")
def cluster():
    """Submit first, then start the cluster: the submission must wait for the head by itself."""
    tmp = Path(tempfile.mkdtemp(prefix="rbc-", dir="/tmp"))  # short: Ray's socket paths live below it
    handle = Handle(tmp)
    try:
        handle.early = subprocess.Popen(
            [sys.executable, "-m", "jobs", "submit", SAMPLE, "--address", handle.url, "--wait", "--date", "2026-01-30",
             "--connect-timeout", "180", "--set", f"output.path={tmp}/early/{{name}}/{{date}}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=handle.env)
        handle.up = subprocess.run(
            [sys.executable, "-m", "jobs", "cluster", "up", "--workers", "1", "--port", str(handle.gcs_port),
             "--dashboard-port", handle.url.rsplit(":", 1)[1]],
            capture_output=True, text=True, cwd=ROOT, env=handle.env, timeout=240)
        assert handle.up.returncode == 0, handle.up.stderr + _logs(tmp / "c")
        yield handle
    finally:
        if handle.early is not None and handle.early.poll() is None:
            handle.early.kill()
            handle.early.wait()
        down = subprocess.run([sys.executable, "-m", "jobs", "cluster", "down"], capture_output=True, text=True,
                              cwd=ROOT, env=handle.env, timeout=120)
        if down.returncode != 0:  # the CLI failed: stop it in-process, still only our cluster
            from ray_cluster import local

            local.down(tmp / "c")
        shutil.rmtree(tmp, ignore_errors=True)


def _logs(root: Path) -> str:
    return "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(root.glob("*.log")))


def assert_sample_committed(out: Path) -> dict:
    data, dead, manifest = read_output(out)
    assert (out / "_SUCCESS").exists()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_dead_letter"] == len(SAMPLE_IDS)
    assert (data.num_rows, dead.num_rows) == (manifest["rows_out"], manifest["rows_dead_letter"])
    assert sorted(data["row_id"].to_pylist() + (dead["row_id"].to_pylist() if dead.num_rows else [])) == SAMPLE_IDS
    return manifest


def test_cluster_up_prints_addresses_and_an_early_submit_waits_for_the_head(cluster):
    assert cluster.up.stdout.splitlines() == [f"dashboard: {cluster.url}", f"address: 127.0.0.1:{cluster.gcs_port}"]
    token = (cluster.home / ".ray" / "auth_token").read_text().strip()  # cluster up created it
    nodes = requests.get(f"{cluster.url}/api/v0/nodes", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).json()["data"]["result"]["result"]
    assert sorted((n["is_head_node"], n["node_ip"], n["state"]) for n in nodes) == [
        (False, "127.0.0.1", "ALIVE"), (True, "127.0.0.1", "ALIVE")]
    # Every socket the cluster listens on is on the loopback interface.
    pids = {p.pid for p in processes(cluster.tmp / "c")}
    listening = {c.laddr.ip for c in psutil.net_connections(kind="inet") if c.pid in pids and c.status == "LISTEN"}
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    out, err = cluster.early.communicate(timeout=240)
    assert cluster.early.returncode == 0, out[-3000:] + err
    job_id = out.splitlines()[0]
    assert job_id.startswith("raybatch-sample-clean-2026-01-30-")
    assert out.rstrip().endswith(f"job {job_id}: SUCCEEDED")
    manifest = assert_sample_committed(cluster.tmp / "early" / "sample-clean" / "2026-01-30")
    assert manifest["spec"]["date"] == "2026-01-30"
    # The driver ran from the shipped working dir, not from this checkout.
    assert all("/runtime_resources/working_dir_files/" in path for path in manifest["input_files"])
    # The job is on the cluster's books, with its logs.
    assert cluster.status(job_id) == "SUCCEEDED"
    logs = cluster.raybatch("logs", job_id)
    assert logs.returncode == 0 and "sample-clean: 600 rows in, 600 out" in " ".join(logs.stdout.split())
    listing = cluster.raybatch("list")
    assert listing.returncode == 0 and job_id in listing.stdout


def documented_ray_job_submit() -> str:
    """The plain `ray job submit` command from docs/cluster.md, as a user would paste it."""
    text = (ROOT / "docs" / "cluster.md").read_text()
    commands = [line for line in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in line.splitlines() if "ray job submit" in line]
    assert len(commands) == 1, commands
    return commands[0]


def test_plain_ray_job_submit_exactly_as_documented(cluster):
    command = documented_ray_job_submit()
    assert command.startswith("RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- "
                              "python -m jobs run jobs/specs/sample_clean.yaml")
    # Only the cluster's port and the output's root differ from what a reader pastes.
    out_root = cluster.tmp / "documented"
    command = command.replace("http://127.0.0.1:8265", cluster.url).replace("/tmp/raybatch-out", str(out_root))
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, env=cluster.env,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout + result.stderr
    assert_sample_committed(out_root / "sample-clean" / "2026-01-31")


def slow_spec(tmp: Path) -> Path:
    """A spec outside the project (shipped beside it) that runs ~15 s on two CPUs."""
    return write_spec(tmp / "slow.yaml", {
        "name": "slow", "input": {"path": "sample_data/reviews", "id_column": "id", "shard_rows": 50},
        "output": {"path": str(tmp / "slow-out" / "{name}" / "{date}")},
        "stages": [{"use": "clean", "column": "text"},
                   {"use": "tests.helpers.stages:UpperStage", "column": "text", "sleep_per_batch": 2.5}]})


def test_lock_held_exits_3_stop_stops_and_failures_exit_1(cluster):
    spec = slow_spec(cluster.tmp)
    first = cluster.raybatch("submit", spec, "--date", "2026-02-01")
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    cluster.wait_for(job_id, {"RUNNING"})
    deadline = time.monotonic() + 60  # the driver holds the job's lock once it runs (its phase line says so)
    while not re.search(r"\] running$", cluster.raybatch("logs", job_id).stdout, re.M) and time.monotonic() < deadline:
        time.sleep(1)
    second = cluster.raybatch("submit", spec, "--date", "2026-02-01", "--wait")
    assert second.returncode == 3, second.stdout[-2000:] + second.stderr
    assert "another run holds output" in second.stdout and "exit code 3" in second.stdout.splitlines()[-1]

    stopped = cluster.raybatch("stop", job_id)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"{job_id}: stop requested"
    assert cluster.wait_for(job_id, {"STOPPED", "SUCCEEDED", "FAILED"}) == "STOPPED"
    assert not (cluster.tmp / "slow-out" / "slow" / "2026-02-01" / "_SUCCESS").exists()
    again = cluster.raybatch("stop", job_id)
    assert again.returncode == 0 and again.stdout.strip() == f"{job_id}: already STOPPED"
    scripted = cluster.raybatch("status", job_id, "--json")
    assert scripted.returncode == 0, scripted.stderr
    record = json.loads(scripted.stdout)
    assert record["job"] == job_id and record["status"] == "STOPPED" and " run " in record["entrypoint"]

    failed = cluster.raybatch("submit", SAMPLE, "--wait", "--set", "input.path=/nonexistent/*.parquet",
                              "--set", f"output.path={cluster.tmp}/failed")
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr
    assert "/nonexistent/*.parquet: no files match this glob" in failed.stdout
    assert re.search(r"job raybatch-sample-clean-\S+: FAILED: .*exit code 2$", failed.stdout.splitlines()[-1])


def one_error_line(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_refusals_are_one_line_with_exit_2(cluster):
    wrong = dict(cluster.env, RAY_AUTH_TOKEN="not-the-token")
    one_error_line(cluster.raybatch("list", env=wrong), 2, "rejected the token from RAY_AUTH_TOKEN")
    one_error_line(cluster.raybatch("submit", SAMPLE, env=wrong), 2, "rejected the token")
    empty_home = cluster.tmp / "empty-home"
    empty_home.mkdir(exist_ok=True)
    no_token = dict(cluster.env, HOME=str(empty_home))
    one_error_line(cluster.raybatch("status", "raybatch-x", env=no_token), 2, "requires a token and none was found")
    one_error_line(cluster.raybatch("status", "raybatch-does-not-exist"), 2, "no job 'raybatch-does-not-exist'")
    closed = free_ports(1)[0]
    one_error_line(cluster.raybatch("submit", SAMPLE, "--connect-timeout", "1", "--address",
                                    f"http://127.0.0.1:{closed}", address=False), 2, "cannot reach the Ray dashboard")
    one_error_line(cluster.raybatch("submit", SAMPLE, "--set", "stages.0.max_chars=-1"), 2, "max_chars")


def test_run_with_ray_address_runs_on_the_cluster_or_says_why_in_one_line(cluster):
    gcs = f"127.0.0.1:{cluster.gcs_port}"  # what `cluster up` prints as address:
    out = cluster.tmp / "via-gcs"
    env = dict(cluster.env, RAY_ADDRESS=gcs, RAY_AUTH_MODE="token")
    ran = cluster.raybatch("run", SAMPLE, "--set", f"output.path={out}", env=env, timeout=180, address=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert_sample_committed(out)
    # Said before anything else, even where the output is committed already (the run would skip).
    dashboard = dict(env, RAY_ADDRESS=cluster.url)
    one_error_line(cluster.raybatch("run", SAMPLE, "--set", f"output.path={out}", env=dashboard, address=False), 2,
                   f"RAY_ADDRESS={cluster.url} is a dashboard (Jobs API) address", "raybatch submit SPEC")
    started = time.monotonic()
    nobody = dict(env, RAY_ADDRESS=f"127.0.0.1:{free_ports(1)[0]}")
    one_error_line(cluster.raybatch("run", SAMPLE, "--set", f"output.path={cluster.tmp}/nobody", env=nobody,
                                    address=False), 2, "no Ray cluster answers there")
    assert time.monotonic() - started < 30 and not (cluster.tmp / "nobody").exists()


def test_cluster_down_then_up_in_the_same_folder_and_ports_ray_keeps_for_workers(cluster):
    """Runs last: it restarts the module's cluster."""
    inside = cluster.raybatch("cluster", "up", "--port", "12345", address=False)
    one_error_line(inside, 2, "port 12345 is in the range Ray gives its worker processes")
    down = cluster.raybatch("cluster", "down", address=False)
    assert down.returncode == 0 and down.stdout.startswith("stopped "), down.stderr
    again = cluster.raybatch("cluster", "up", "--workers", "1", "--port", str(cluster.gcs_port), "--dashboard-port",
                             cluster.url.rsplit(":", 1)[1], address=False, timeout=240)
    assert again.returncode == 0, again.stderr + _logs(cluster.tmp / "c")
    assert cluster.raybatch("list").returncode == 0

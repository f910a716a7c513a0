"""The embedded Ray this process starts is gone once `shutdown_ray` returns: every process it
started, the autoscaler monitor that the shutdown stops first included."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil

from tests.conftest import ROOT

SCRIPT = """
import json, psutil
from jobs.ray_session import init_ray, is_embedded, shutdown_ray
init_ray(num_cpus=1)
started = [(p.pid, " ".join(p.cmdline())) for p in psutil.Process().children(recursive=True)]
embedded = is_embedded()
shutdown_ray()
print(json.dumps({"embedded": embedded, "after": is_embedded(), "started": started}))
"""


def test_shutdown_leaves_no_process_of_the_embedded_ray():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["embedded"] and not report["after"]
    started = [(pid, cmd) for pid, cmd in report["started"] if "jobs.reaper" not in cmd]
    assert any("autoscaler" in cmd and "monitor.py" in cmd for _, cmd in started), started
    assert any("raylet" in cmd for _, cmd in started) and any("gcs_server" in cmd for _, cmd in started)
    alive = [p for p in map(_process, (pid for pid, _ in started)) if p is not None]
    gone, left = psutil.wait_procs(alive, timeout=10)
    assert not left, [" ".join(p.cmdline()) for p in left]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def _process(pid: int):
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.NoSuchProcess:
        return None

"""The Ray a run uses: the cluster at RAY_ADDRESS, or an embedded one this process starts, sizes to
this machine, watches (jobs/reaper.py) and stops."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from jobs.ray_address import cluster_address
from jobs.reaper import REAPER_TAG


# Whether this process started the Ray it uses (one node, this machine): a Ray someone else started
# may have other nodes, even without RAY_ADDRESS.
_embedded = False


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (cluster or `ray job submit`), else start an embedded Ray
    sized to this machine. The embedded one lives and dies with this process."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    address = cluster_address(os.environ["RAY_ADDRESS"]) if os.environ.get("RAY_ADDRESS") else None
    import ray

    global _embedded
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=True)
    else:
        _start_reaper()
        try:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                     log_to_driver=True)
            _embedded = True
        finally:  # Ray's processes have it; what this process starts later is not Ray's
            os.environ.pop(REAPER_TAG, None)


def is_embedded() -> bool:
    """Whether the Ray in use is the one `init_ray` started here: this machine's alone."""
    return _embedded


def shutdown_ray() -> None:
    """Stop the embedded Ray (or leave the cluster) while its output still goes to the run's log:
    at exit, its dying workers' last words would otherwise reach the terminal."""
    global _embedded
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        try:
            if _embedded:
                _stop_autoscaler_monitor()
        finally:
            sys.modules["ray"].shutdown()
    _embedded = False


def _stop_autoscaler_monitor() -> None:
    """Kill the embedded Ray's autoscaler monitor before Ray's shutdown does. Ray stops the GCS
    first; the monitor's exit handler then waits on the missing GCS until Ray's one-second grace
    ends, the better part of every run's shutdown. One node has nothing for it to scale."""
    try:
        from ray._private import ray_constants, worker

        processes = worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])
    except Exception:  # another Ray's internals: its own shutdown does the whole job
        return
    for info in processes:
        if info.process.poll() is None:
            info.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # Ray's shutdown waits for it again
                info.process.wait(timeout=5)


def _start_reaper() -> None:
    """A watcher in its own session that stops this embedded Ray if this process is killed."""
    import uuid

    os.environ[REAPER_TAG] = f"{os.getpid()}-{uuid.uuid4().hex}"  # inherited by every Ray process
    subprocess.Popen([sys.executable, "-m", "jobs.reaper", str(os.getpid())], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cluster_cpus_and_gpus() -> tuple[float, float]:
    import ray

    resources = ray.cluster_resources()
    return resources.get("CPU", 1.0), resources.get("GPU", 0.0)

"""Watches an embedded Ray's driver and kills the Ray processes it started if the driver dies
without shutting them down (kill -9, OOM kill). Ray's own agents otherwise linger for minutes.

Started by `jobs.ray_session.init_ray` as `python -m jobs.reaper DRIVER_PID` in its own session.
The driver first puts a tag unique to it in its environment (`REAPER_TAG`). Every process Ray
starts inherits it, so a worker found nowhere in the driver's tree (its parent, the raylet, died
first and it went to init) is still found by its tag.
"""

from __future__ import annotations

import os
import sys
import time

import psutil

REAPER_TAG = "RAYBATCH_REAPER_TAG"


def watch(driver_pid: int, tag: str | None, interval: float = 0.5, settle: float = 10.0) -> None:
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    known: dict[int, psutil.Process] = {}
    while _alive(driver):
        _add_descendants([driver], known)
        time.sleep(interval)
    # Sweep until nothing of ours is left: a process started during teardown is caught next time.
    deadline = time.time() + settle
    while time.time() < deadline:
        _add_descendants(list(known.values()), known)
        if tag:
            known.update({p.pid: p for p in _tagged(tag)})
        known.pop(os.getpid(), None)  # the reaper carries the tag too
        alive = [p for p in known.values() if _alive(p)]
        if not alive:
            return
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        time.sleep(0.2)


def _add_descendants(roots: list[psutil.Process], known: dict[int, psutil.Process]) -> None:
    for root in roots:
        try:
            for child in root.children(recursive=True):
                known.setdefault(child.pid, child)
        except psutil.Error:
            pass


def _tagged(tag: str) -> list[psutil.Process]:
    """Processes of this user whose environment holds the driver's tag."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(REAPER_TAG) == tag:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        # is_running also guards against a reused pid (the create time differs)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    watch(int(sys.argv[1]), os.environ.get(REAPER_TAG))

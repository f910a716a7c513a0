"""Watches an embedded Ray's driver and kills the Ray processes it started if the driver dies
without shutting them down (kill -9, OOM kill). Ray's own agents otherwise linger for minutes.

Started by `jobs.pipeline.init_ray` as `python -m jobs.reaper DRIVER_PID` in its own session.
"""

from __future__ import annotations

import os
import sys
import time

import psutil


def watch(driver_pid: int, interval: float = 0.5) -> None:
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    known: dict[int, psutil.Process] = {}
    me = os.getpid()  # the reaper is the driver's child too: never kill it before the others
    while _alive(driver):
        try:
            for child in driver.children(recursive=True):
                known.setdefault(child.pid, child)
                # Agents started by the raylet are its children; keep them once seen.
                for grandchild in child.children(recursive=True):
                    known.setdefault(grandchild.pid, grandchild)
        except psutil.Error:
            pass
        time.sleep(interval)
    # A worker the raylet started after the last look is its child still: one more sweep from every
    # process seen finds it before anything is killed.
    for proc in list(known.values()):
        try:
            for child in proc.children(recursive=True):
                known.setdefault(child.pid, child)
        except psutil.Error:
            pass
    known.pop(me, None)
    for proc in known.values():
        try:
            if proc.is_running():  # also guards against a reused pid (create time differs)
                proc.kill()
        except psutil.Error:
            pass


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    watch(int(sys.argv[1]))

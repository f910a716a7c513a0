"""What the benchmarks measure a whole command by: wall seconds and the peak memory of its process tree."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Samples the largest PSS (or RSS) sum over a process and its descendants every 0.5 s. PSS
    splits shared pages (Ray's object store) between the processes mapping them. It is read from
    /proc/PID/smaps_rollup, the kernel's own sum: parsing each process's full smaps (psutil's
    memory_full_info) every 0.2 s took about a fifth of a core, which a 2-core job then lacked."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0
        for proc in procs:
            try:
                total += _pss(proc.pid) or proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.5)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _pss(pid: int) -> int:
    """A process's proportional set size in bytes (0 when the kernel does not say)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak bytes, output) of one command run to its end; exits on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    meter = PeakMemory(proc.pid)
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    peak = meter.stop()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return seconds, peak, output

"""What a run shows in the terminal: our own progress, and Ray's and the libraries' output kept
in a log file instead of on screen.

- By default, a live bar per stage on a terminal (rich), or a line per stage every few seconds
  when the output is a file or a pipe (cron); everything Ray, its workers and the libraries print
  goes to the run's log file (`<state folder>/.raybatch-<job>.logs/`).
- `--verbose` shows that output on screen as well, with our progress as lines between it.
- `--quiet` shows nothing but errors and the final line.

The capture is at the file-descriptor level, because Ray's core writes to stderr from C++ and
its workers' output reaches the driver's stdout: Python-level redirection would miss both.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO

from jobs.progress import RunProgress

LOGS_KEPT = 30  # per job: a nightly job's month of logs


def log_path(state_folder: str, job_name: str, now: float | None = None) -> Path:
    """This run's log file, in the folder the job's other bookkeeping lives in; older logs of the
    job beyond LOGS_KEPT are removed (only ours: `*.log` in the job's own logs folder)."""
    folder = Path(state_folder) / f".raybatch-{job_name}.logs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("*.log"))[:-LOGS_KEPT + 1] if LOGS_KEPT > 1 else []:
        with contextlib.suppress(OSError):
            old.unlink()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now or time.time()))
    path = folder / f"{stamp}-{os.getpid()}.log"
    path.open("ab").close()  # a folder that refuses us says so here, not in the middle of a run
    return path


@contextlib.contextmanager
def captured(path: Path, echo: bool):
    """Send file descriptors 1 and 2 (this process's and every process it starts) to `path`; with
    `echo`, to the terminal as well. Yields a stream on the original stderr for our own output.
    Everything is put back on exit, so errors and the summary print where they always do."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = open(path, "ab", buffering=0)
    ours = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace")
    if echo:
        read_end, write_end = os.pipe()
        threading.Thread(target=_tee, args=(read_end, log, saved_err), name="raybatch-tee", daemon=True).start()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
    else:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield ours
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        if not echo:
            os.close(saved_err)
            log.close()
        ours.flush()


def _tee(read_end: int, log, terminal_fd: int) -> None:
    """Copy what Ray prints to the log and the terminal (a daemon thread: Ray's processes keep the
    pipe open for as long as they live)."""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            return
        with contextlib.suppress(OSError):
            log.write(chunk)
            os.write(terminal_fd, chunk)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def stage_line(progress: RunProgress, label: str, now: float) -> str:
    """One stage's progress as plain text: rows done of total, rows/s, ETA, dead letters so far."""
    stage = progress.stages[label]
    since = progress.work_started or progress.started
    pct = f" ({100 * stage.done / stage.total:.0f}%)" if stage.total else ""
    line = (f"{label}: {stage.done:,}/{stage.total:,} rows{pct}, {stage.rate(since, now):,.0f} rows/s, "
            f"ETA {_clock(stage.eta(since, now))}, {stage.rows_dead:,} dead letter")
    if stage.rows_filtered:
        line += f", {stage.rows_filtered:,} filtered"
    return line


class LineDisplay:
    """Progress as lines every `every` seconds (a cron log, a pipe): nothing for a run shorter than
    that, so a failing run prints its one error line alone. With `phases` (--verbose), each phase
    is a line too, between Ray's own output."""

    def __init__(self, stream: IO[str], every: float, phases: bool = False):
        self.stream, self.every, self.phases, self._last = stream, every, phases, time.time()

    def _write(self, text: str) -> None:
        with contextlib.suppress(Exception):
            self.stream.write(text + "\n")
            self.stream.flush()

    def phase(self, progress: RunProgress) -> None:
        if self.phases:
            self._write(f"[{_clock(time.time() - progress.started)}] {progress.phase_label}")

    def update(self, progress: RunProgress, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.every:
            return
        self._last = now
        stamp = f"[{_clock(now - progress.started)}]"
        if not progress.stages:
            self._write(f"{stamp} {progress.phase_label}")
        for label in progress.stages:
            self._write(f"{stamp} {stage_line(progress, label, now)}")

    def close(self, progress: RunProgress) -> None:
        if self.phases and any(s.done for s in progress.stages.values()):
            self.update(progress, force=True)


class LiveDisplay:
    """Progress as live bars on a terminal: the phase on top, then one bar per stage."""

    def __init__(self, stream: IO[str]):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream, force_terminal=True)
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                             TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self.console,
                             transient=False,
                             redirect_stdout=False, redirect_stderr=False,
                             refresh_per_second=4)
        self.status = self.bars.add_task("", total=None, detail="")
        self.tasks: dict[str, int] = {}
        self.bars.start()

    def phase(self, progress: RunProgress) -> None:
        self.bars.update(self.status, description=progress.phase_label)

    def update(self, progress: RunProgress) -> None:
        now = time.time()
        since = progress.work_started or progress.started
        width = max(len(label) for label in progress.stages) if progress.stages else 0
        for label, stage in progress.stages.items():
            if label not in self.tasks:
                self.tasks[label] = self.bars.add_task(label, total=stage.total or None, detail="")
            detail = (f"{stage.done:,}/{stage.total:,} rows  {stage.rate(since, now):,.0f} rows/s  "
                      f"ETA {_clock(stage.eta(since, now))}  dead {stage.rows_dead:,}")
            if stage.rows_filtered:
                detail += f"  filtered {stage.rows_filtered:,}"
            self.bars.update(self.tasks[label], description=label.ljust(width), completed=stage.done,
                             total=stage.total or None, detail=detail)

    def close(self, progress: RunProgress) -> None:
        self.update(progress)
        self.bars.update(self.status, description=f"done in {_clock(time.time() - progress.started)}",
                         total=1, completed=1)
        self.bars.stop()


def make_display(mode: str, stream: IO[str], every: float):
    """None for --quiet; live bars when `stream` is a terminal (and not --verbose); lines otherwise."""
    if mode == "quiet":
        return None
    if mode == "normal" and stream.isatty():
        return LiveDisplay(stream)
    return LineDisplay(stream, every, phases=mode == "verbose")

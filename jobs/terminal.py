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
from typing import IO, Callable, TypeVar

from jobs.errors import JobFailed
from jobs.progress import RunProgress

T = TypeVar("T")

LOGS_KEPT = 30  # per job: a nightly job's month of logs


def log_path(state_folder: str, job_name: str, now: float | None = None) -> Path:
    """This run's log file (created, only this user can read it), in the folder the job's other
    bookkeeping lives in. Older logs of the job beyond LOGS_KEPT go, but never one a live process
    is writing (a run that holds the lock while a retry starts): only ours, `*.log` in the job's
    own logs folder."""
    folder = Path(state_folder) / f".raybatch-{job_name}.logs"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now or time.time()))
    path = folder / f"{stamp}-{os.getpid()}.log"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    done = [old for old in sorted(folder.glob("*.log")) if old != path and not _writer_alive(old)]
    for old in done[:max(len(done) - LOGS_KEPT + 1, 0)]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def _writer_alive(log: Path) -> bool:
    """Whether the process a log is named after (`<stamp>-<pid>.log`) still runs."""
    import psutil

    pid = log.stem.rpartition("-")[2]
    return pid.isdigit() and psutil.pid_exists(int(pid))


@contextlib.contextmanager
def captured(path: Path | None, echo: bool):
    """Send file descriptors 1 and 2 (this process's, and those of every process it starts) to
    `path` (None: nowhere); with `echo`, to the terminal as well. Yields a stream on the original
    stderr for our own output. Descriptors 1 and 2 are put back on exit, whatever happens, so
    errors and the summary print where they always do."""
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.ExitStack() as undo:
        saved_out, saved_err = os.dup(1), os.dup(2)
        undo.callback(os.close, saved_err)
        undo.callback(os.close, saved_out)
        log_fd = os.open(path if path is not None else os.devnull, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        ours = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace")
        undo.callback(ours.close)
        if echo:  # the tee thread keeps log_fd and a copy of stderr: Ray's processes hold the pipe open
            read_end, write_end = os.pipe()
            threading.Thread(target=_tee, args=(read_end, log_fd, os.dup(saved_err)), name="raybatch-tee",
                             daemon=True).start()
            target = write_end
            undo.callback(os.close, write_end)
        else:
            target = log_fd
            undo.callback(os.close, log_fd)
        undo.callback(os.dup2, saved_err, 2)  # callbacks run last first: restored before anything closes
        undo.callback(os.dup2, saved_out, 1)
        undo.callback(_flush_quietly)
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield ours


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _tee(read_end: int, log_fd: int, terminal_fd: int) -> None:
    """Copy what Ray prints to the log and to the terminal, each on its own (a full disk must not
    silence the terminal), until every writer is gone."""
    while chunk := os.read(read_end, 65536):
        for fd in (log_fd, terminal_fd):
            with contextlib.suppress(OSError):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]


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

    def close(self, progress: RunProgress, ok: bool) -> None:
        if self.phases and any(s.done for s in progress.stages.values()):
            self.update(progress, force=True)


class LiveDisplay:
    """Progress as live bars on a terminal: the phase on top, then one bar per stage."""

    def __init__(self, stream: IO[str]):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        try:  # the terminal's own width: rich would ask stdin, which may be a spec piped in
            width = os.get_terminal_size(stream.fileno()).columns
        except OSError:
            width = None
        self.console = Console(file=stream, force_terminal=True, width=width)
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                             TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self.console,
                             transient=False, redirect_stdout=False, redirect_stderr=False, refresh_per_second=4)
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

    def close(self, progress: RunProgress, ok: bool) -> None:
        self.update(progress)
        took = _clock(time.time() - progress.started)
        self.bars.update(self.status, description=f"done in {took}" if ok else f"stopped after {took}",
                         total=1, completed=1 if ok else 0)
        self.bars.stop()


def make_display(mode: str, stream: IO[str], every: float):
    """None for --quiet; live bars when `stream` is a terminal (and not --verbose); lines otherwise."""
    if mode == "quiet":
        return None
    if mode == "normal" and stream.isatty():
        return LiveDisplay(stream)
    return LineDisplay(stream, every, phases=mode == "verbose")


def run_shown(log: Path | None, mode: str, every: float, work: Callable[[RunProgress], T],
              stop: Callable[[], None]) -> T:
    """`work(progress)` with our progress on the terminal and everything else printed in `log`.
    `stop` (Ray's shutdown) runs inside the capture, so dying workers' last lines land in the log,
    not after our error line; a run that fails while running says where that log is."""
    try:
        with captured(log, echo=mode == "verbose") as stream:
            progress = RunProgress(make_display(mode, stream, every))
            try:
                result = work(progress)
            except BaseException:
                progress.close(ok=False)
                raise
            finally:
                stop()
            progress.close(ok=True)
            return result
    except JobFailed as exc:
        if log is None:
            raise
        raise type(exc)(f"{exc}; Ray's output: {log}") from None

"""Progress of a run as it happens: each worker tells a small board actor what a block did (both
are Ray's, in jobs/workers.py), and the driver reads the board twice a second to draw our own
progress (jobs/terminal.py) and, at the end, to keep rows over time per stage for the report.

Progress never fails the job: a board that cannot be reached is skipped, never an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Schema metadata on each block: the input rows of the shard(s) it came from, so a stage after
# augmentation or filtering still counts progress in the job's input rows.
SHARD_ROWS_KEY = b"raybatch.shard_rows"
MAX_POINTS = 240  # per stage in the manifest: enough for a chart, small for a 10,000-block job


@dataclass
class StageProgress:
    """One stage's (or one pass's) counts so far, in the job's input rows and its own."""

    label: str
    total: int  # input rows this run works on
    done: int = 0  # input rows whose block went through the stage
    rows_dead: int = 0
    rows_filtered: int = 0
    last: float | None = None  # when the latest block came through
    blocks: list[tuple[float, int]] = field(default_factory=list)  # (time, input rows) per block

    def add(self, event: dict) -> None:
        self.done += int(event["shard_rows"])
        self.rows_dead += int(event["rows_dead"])
        self.rows_filtered += int(event["rows_filtered"])
        self.last = event["t"] if self.last is None else max(self.last, event["t"])
        self.blocks.append((event["t"], int(event["shard_rows"])))

    def rate(self, since: float, now: float) -> float:
        """Input rows per second since the work began (until the last block, once all are in)."""
        if self.done >= self.total and self.last is not None:
            now = self.last
        return self.done / max(now - since, 1e-6) if self.done else 0.0

    def eta(self, since: float, now: float) -> float | None:
        rate = self.rate(since, now)
        return (self.total - self.done) / rate if rate and self.done < self.total else (0.0 if self.done else None)


class RunProgress:
    """The driver's side: phases as the runner goes through them, and the board's events per stage.
    `display` (jobs/terminal.py) gets `phase(self)`, `update(self)` and `close(self, ok)` calls."""

    def __init__(self, display=None):
        self.display = display
        self.started = time.time()
        self.work_started: float | None = None
        self.phase_label = "preparing"
        self.stages: dict[str, StageProgress] = {}
        self.board_name: str | None = None
        self._read_since: Callable[[int, float], list[dict]] | None = None  # the board's events from an index
        self._close_board: Callable[[], None] | None = None
        self._seen = 0
        self._stop = threading.Event()
        self._reading = threading.Lock()  # the poller and finish() read the board one at a time
        self._thread: threading.Thread | None = None

    def phase(self, label: str) -> None:
        self.phase_label = label
        if self.display is not None:
            self.display.phase(self)

    def start_work(self, labels: list[str], total_rows: int, board) -> None:
        """Ray is up: start reading `board` (jobs.workers.progress_board: its name, a reader and a
        closer; None when it could not be made). `labels` in the order rows go through."""
        self.work_started = self.work_started or time.time()
        for label in labels:
            self.stages.setdefault(label, StageProgress(label, total_rows))
        if board is not None and self._read_since is None:
            self.board_name, self._read_since, self._close_board = board
            self._thread = threading.Thread(target=self._poll, name="raybatch-progress", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.read_board()

    def read_board(self, timeout: float = 5.0) -> None:
        with self._reading:
            self._read(timeout)

    def _read(self, timeout: float) -> None:
        if self._read_since is None:
            return
        try:
            events = self._read_since(self._seen, timeout)
        except Exception:
            return
        self._seen += len(events)
        for event in events:
            stage = self.stages.get(event["label"])
            if stage is None:
                stage = self.stages[event["label"]] = StageProgress(event["label"], 0)
            stage.add(event)
        if self.display is not None:
            self.display.update(self)

    def finish(self) -> list[dict]:
        """Stop reading (after a last read) and return rows over time per stage for the manifest:
        seconds since the run started, and input rows done by then."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self.read_board(timeout=2)
            try:
                self._close_board()
            except Exception:
                pass
            self._read_since = None
        series = []
        for stage in self.stages.values():
            done, points = 0, []
            for t, rows in sorted(stage.blocks):  # in time order: workers report out of order
                done += rows
                points.append((t, done))
            step = max(1, -(-len(points) // MAX_POINTS))
            kept = points[step - 1::step] if points else []
            if points and kept[-1] != points[-1]:
                kept.append(points[-1])
            series.append({"label": stage.label, "rows": stage.done,
                           "points": [[round(t - self.started, 3), done] for t, done in kept]})
        return series

    def close(self, ok: bool = True) -> None:
        self._stop.set()
        if self.display is not None:
            self.display.close(self, ok)

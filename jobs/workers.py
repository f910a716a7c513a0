"""What runs inside Ray's workers for each stage: the stage built once per worker process (tasks)
or per actor (model stages), its stats carried to the sink in the block's schema metadata, and
what each block did told to the run's progress board (an actor, also here).

A step runs a stage's `__call__`, or, for a stage that decides from the whole input (dedup), its
`keys` half: the columns the driver reads to decide between two passes (see jobs/segments.py).
"""

from __future__ import annotations

import json
import os
import sys
import time

import pyarrow as pa

from jobs import commit
from jobs.errors import RaybatchError, StageFailed
from jobs.progress import SHARD_ROWS_KEY
from jobs.stages.base import StageContext, StageRunner, one_line
from jobs.stages.registry import stage_class

_STAGE_CACHE: dict[str, StageRunner] = {}
_BOARDS: dict[str, object] = {}  # progress boards (progress_board below) this worker has found


def report_block(board_name: str | None, label: str, shard_rows: int, stats: dict) -> None:
    """Tell the run's progress board what one block did in one stage (fire and forget)."""
    if not board_name:
        return
    try:
        import ray

        if board_name not in _BOARDS:
            _BOARDS[board_name] = ray.get_actor(board_name)
        _BOARDS[board_name].add.remote({"t": time.time(), "label": label, "shard_rows": shard_rows,
                                        **{k: stats.get(k, 0) for k in ("rows_dead", "rows_filtered")}})
    except Exception:  # progress is a view; the rows do not depend on it
        _BOARDS.pop(board_name, None)


def _build_runner(params_json: str, context: StageContext, keys: bool) -> StageRunner:
    """The stage, built once per worker; a constructor that raises fails the job in one line."""
    params_dict = json.loads(params_json)
    try:
        cls = stage_class(params_dict["use"])
        return StageRunner(cls(cls.Params.model_validate(params_dict), context), keys=keys)
    except RaybatchError:
        raise
    except Exception as exc:
        raise StageFailed(f"stage {context.stage_name!r} could not start: {type(exc).__name__}: "
                          f"{one_line(exc)}; nothing was published") from None


def _run_stage(runner: StageRunner, batch: pa.Table, context: StageContext) -> pa.Table:
    """Run a stage and append its stats to the block's schema metadata, where the sink finds them;
    tell this run's progress board (the stage built for an earlier run may be reused)."""
    index = context.stage_index
    out, stats = runner(batch)
    metadata = dict(batch.schema.metadata or {})
    history = json.loads(metadata.get(commit.STATS_METADATA_KEY, b"[]"))
    if not runner.keys:  # the keys half's rows are counted again by the stage's own pass
        history.append({"index": index, "name": runner.stage.name, **stats})
    metadata[commit.STATS_METADATA_KEY] = json.dumps(history).encode()
    report_block(context.progress_board, context.progress_label, int(metadata.get(SHARD_ROWS_KEY, b"0")), stats)
    return out.replace_schema_metadata(metadata)


class StageTask:
    """A CPU stage run as Ray tasks; each worker process builds the stage once and reuses it."""

    def __init__(self, params_json: str, context: StageContext, keys: bool = False):
        self.params_json, self.context, self.keys = params_json, context, keys

    def __call__(self, batch: pa.Table) -> pa.Table:
        key = f"{self.context.stage_index}:{self.keys}:{self.params_json}:{self.context.seed}:{self.context.decisions_dir}"
        if key not in _STAGE_CACHE:
            _STAGE_CACHE[key] = _build_runner(self.params_json, self.context, self.keys)
        return _run_stage(_STAGE_CACHE[key], batch, self.context)


class StageActor:
    """A model stage in a long-lived actor: the model loads once per actor, not per batch. A failed
    load is kept and raised on the first batch, so it reaches the driver as our one-line error
    instead of an actor death Ray retries and prints at length."""

    def __init__(self, params_json: str, context: StageContext, threads: int = 0):
        import dataclasses

        import ray

        context = dataclasses.replace(context, actor_id=ray.get_runtime_context().get_actor_id())
        self.context = context
        self.runner: StageRunner | None = None
        self.error: RaybatchError | None = None
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch and BLAS when they load
        try:
            self.runner = _build_runner(params_json, context, keys=False)
        except RaybatchError as exc:  # a model that cannot load, a spec the engine refuses
            self.error = exc
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.error is not None:
            raise self.error
        return _run_stage(self.runner, batch, self.context)


class _ProgressBoard:
    """The Ray actor (no CPU of its own) the workers tell what each block did (jobs/progress.py)."""

    def __init__(self):
        self.events: list[dict] = []

    def add(self, event: dict) -> None:
        self.events.append(event)

    def since(self, start: int) -> list[dict]:
        return self.events[start:]


def progress_board():
    """A named board for this run: (name the workers find it by, read events from an index with a
    timeout, close it); None when it cannot be made (progress is a view; the job goes on)."""
    import uuid

    import ray

    name = f"raybatch-progress-{uuid.uuid4().hex[:12]}"
    try:
        board = ray.remote(num_cpus=0)(_ProgressBoard).options(name=name).remote()
    except Exception:
        return None
    return name, (lambda start, timeout: ray.get(board.since.remote(start), timeout=timeout)), \
        (lambda: ray.kill(board))

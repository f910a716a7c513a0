"""The one module that builds Ray Data plans: read shards → stages → staging sink.

`execute` runs a plan's shards and leaves their parts and markers in staging; the runner
(jobs/runner.py) verifies and publishes them. Errors come back through Ray Data's own error
passing (`raise_original_map_exception`): ours arrive as themselves and print as one line.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa

from jobs import commit
from jobs.errors import RaybatchError
from jobs.inputs import Shard, resolve_filesystem
from jobs.plan import JobPlan
from jobs.progress import SHARD_ROWS_KEY
from jobs.ray_session import cluster_cpus_and_gpus, init_ray, is_embedded
from jobs.reader import read_shard
from jobs.segments import Segment, split
from jobs.stages.base import KEYS_PREFIX, StageContext, StageParams
from jobs.workers import StageActor, StageTask


def actor_threads(pools: list[dict], total_cpus: float, local: bool) -> int:
    """Threads for each CPU-only model actor. Ray sets OMP_NUM_THREADS to an actor's `num_cpus`,
    which stays below the node's count so read and write tasks keep a CPU (no deadlock); torch in
    the actor would then use one core of two. Locally, the actors share the machine's cores between
    them instead (reading and writing are light); on a cluster, nodes differ and the reservation holds."""
    cpu_actors = sum(p["concurrency"] for p in pools if not p["num_gpus"])
    if not cpu_actors:
        return 0
    if not local:
        return max(1, int(min(p["num_cpus"] for p in pools if not p["num_gpus"])))
    return max(1, int(total_cpus // cpu_actors))


def actor_pool_args(params: StageParams, total_cpus: float, total_gpus: float, actor_stages: int,
                    cpu_fallback: bool = True) -> dict:
    """Size a model stage's actor pool from its `resources` and the cluster, with CPUs capped so
    read and write tasks always have room (no deadlock). With `cpu_fallback` (a local run), a
    machine without GPUs runs the stage on CPU; a cluster keeps asking (its autoscaler adds GPUs)."""
    res = params.resources
    num_gpus = res.num_gpus if (total_gpus >= res.num_gpus > 0 or not cpu_fallback) else 0
    replicas = res.replicas
    if num_gpus and total_gpus:
        replicas = max(1, min(replicas, int(total_gpus // num_gpus)))
    spare_cpus = max(total_cpus - 1, 0.5)  # one CPU stays free for reading and writing
    per_stage_cpus = spare_cpus / max(actor_stages, 1)
    num_cpus = min(res.num_cpus, per_stage_cpus / replicas)
    if not num_gpus:
        replicas = max(1, min(replicas, int(per_stage_cpus // max(num_cpus, 0.25)) or 1))
    return {"concurrency": replicas, "num_gpus": num_gpus, "num_cpus": num_cpus}


def _make_sink(loc: commit.OutputLocation, input_columns: list[str], compression: str, shared: bool,
               fuse_writes: bool, segment: Segment, scrub):
    from ray.data import Datasink

    class StagingSink(Datasink):
        """Writes each block's good rows to data/, failed rows to _dead_letter/ and filtered rows to
        _filtered/ in one pass; or, before a whole-input stage decides, all rows to the work folder."""

        def write(self, blocks, ctx):
            markers = []
            for block in blocks:
                block = block.replace_schema_metadata(  # progress's own stamp stays out of the files
                    {k: v for k, v in (block.schema.metadata or {}).items() if k != SHARD_ROWS_KEY})
                if segment.final:
                    markers.extend(m.model_dump() for m in commit.write_block(loc, block, input_columns, compression,
                                                                              scrub))
                else:
                    markers.extend(commit.write_work_block(loc, segment.number, block))
            return markers

        @property
        def supports_distributed_writes(self) -> bool:
            # A local path is only the driver node's, unless every node mounts it. An embedded Ray
            # is the driver's node alone: after a task stage, saying so lets Ray Data fuse the write
            # into the task that read and transformed the block, instead of a second task pinned to
            # the node (after an actor pool nothing fuses, and the writes stay pinned as before).
            return shared or not loc.is_local() or fuse_writes

    return StagingSink()


def progress_labels(plan: JobPlan) -> list[str]:
    """What the progress display and the report call each pass of each stage, in the order rows go
    through them: the spec's stage names, numbered when one appears twice, and a whole-input
    stage's first pass (its keys) apart from its second."""
    return [_label(plan, step.stage, step.keys) for segment in split(plan.stage_classes) for step in segment.steps]


def _label(plan: JobPlan, index: int, keys: bool) -> str:
    uses = [p.use for p in plan.spec.stages]
    name = uses[index] if uses.count(uses[index]) == 1 else f"{uses[index]}#{uses[:index + 1].count(uses[index])}"
    return f"{name} (keys)" if keys else name


def load_ray_data() -> None:
    """Import Ray Data (about half a second of imports) ahead of `execute`, e.g. while Ray starts."""
    import ray.data  # noqa: F401


def execute(plan: JobPlan, shards: list[Shard], segment: Segment | None = None, board: str | None = None) -> None:
    """Run `shards` through one segment of the stages (all of them by default) into staging; raise
    one of our errors on failure. Workers tell `board` (jobs/progress.py) what each block did."""
    import ray
    from ray.data import DataContext

    segment = segment or split(plan.stage_classes)[-1]
    init_ray()
    ctx = DataContext.get_current()
    ctx.target_max_block_size = 1 << 31  # one block per shard: never split a shard's rows
    ctx.enable_progress_bars = False  # ours instead (jobs/terminal.py), named after the spec's stages
    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True
    total_cpus, total_gpus = cluster_cpus_and_gpus()
    spec = plan.spec
    steps = segment.steps
    # With only task stages, read → stages → write fuse into one task chain, so Ray Data's
    # per-operator CPU reservation only idles cores (on 2 CPUs it runs one task at a time).
    # Actor pools keep it: there it is what leaves room for reading and writing.
    in_actors = {step.stage: plan.stage_classes[step.stage].runs_in_actors(spec.stages[step.stage]) for step in steps}
    ctx.op_resource_reservation_enabled = any(in_actors.values())
    ds = ray.data.from_items([s.to_dict() for s in shards], override_num_blocks=len(shards))
    if segment.reads_work:
        ds = ds.map_batches(_read_work_batch, fn_kwargs={"folder": commit.segment_dir(plan.output, segment.number - 1)},
                            batch_size=None, batch_format="pyarrow")
    else:
        ds = ds.map_batches(_read_batch, fn_kwargs={"schema": plan.schema, "id_column": plan.id_column,
                                                  "input_uri": spec.input.path},
                            batch_size=None, batch_format="pyarrow")
    actor_stages = sum(in_actors.values())
    local = not os.environ.get("RAY_ADDRESS")
    pools = {index: actor_pool_args(spec.stages[index], total_cpus, total_gpus, actor_stages, cpu_fallback=local)
             for index, actors in in_actors.items() if actors}
    threads = actor_threads(list(pools.values()), total_cpus, local)
    for step in steps:
        cls, params, index = plan.stage_classes[step.stage], spec.stages[step.stage], step.stage
        rows_added_before = any(c.adds_rows for c in plan.stage_classes[:index])
        decided = commit.decisions_dir(plan.output, index) if cls.whole_input and not step.keys else None
        context = StageContext(spec.name, spec.seed, index, params.use,
                               copy_tag=f"aug{index}." if rows_added_before else "aug", decisions_dir=decided,
                               progress_board=board, progress_label=_label(plan, index, step.keys))
        params_json = params.model_dump_json()
        if in_actors[index]:
            pool = pools[index]
            ds = ds.map_batches(StageActor, fn_constructor_args=(params_json, context, 0 if pool["num_gpus"] else threads),
                                batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                                compute=ray.data.ActorPoolStrategy(size=pool["concurrency"]),  # `concurrency=` is deprecated
                                num_gpus=pool["num_gpus"], num_cpus=pool["num_cpus"])
        else:
            ds = ds.map_batches(StageTask(params_json, context, keys=step.keys), batch_size=None,
                                batch_format="pyarrow", zero_copy_batch=True,
                                num_cpus=min(params.resources.num_cpus, 1.0))
    scrubbers = [f for f in (cls.scrubber(p) for cls, p in zip(plan.stage_classes, spec.stages)) if f]
    fuse_writes = is_embedded() and not in_actors[steps[-1].stage]  # a Ray of this machine alone, a task stage last
    sink = _make_sink(plan.output, plan.schema.names, spec.output.compression, spec.output.shared_filesystem,
                      fuse_writes, segment, _chain(scrubbers))
    _hide_ray_data_errors_on_console()
    try:
        ds.write_datasink(sink)
    except Exception as exc:
        raise _one_line_error(_original(exc), plan.output) from None


def _chain(scrubbers: list):
    if not scrubbers:
        return None

    def scrub(table: pa.Table) -> pa.Table:
        for one in scrubbers:
            table = one(table)
        return table

    return scrub


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _hide_ray_data_errors_on_console() -> None:
    """Ray Data logs a failed task's traceback before raising its error. The error reaches the user
    anyway (ours as one line, anything else with its traceback), and Ray Data's log file keeps the
    record, so its console handler drops errors instead of printing them twice, at length."""
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__ \
                and not any(isinstance(f, _BelowError) for f in handler.filters):
            handler.addFilter(_BelowError())


def _read_batch(items: pa.Table, schema: pa.Schema, id_column: str | None, input_uri: str) -> pa.Table:
    """Read the shards of one block of the shard list (one shard per block)."""
    fs, _ = resolve_filesystem(input_uri)
    shards = [Shard.from_dict(item) for item in items.to_pylist()]
    tables = [read_shard(fs, shard, schema, id_column) for shard in shards]
    return _with_shard_rows(pa.concat_tables(tables) if len(tables) > 1 else tables[0],
                            sum(s.num_rows for s in shards))


def _with_shard_rows(table: pa.Table, rows: int) -> pa.Table:
    """Stamp the block with its shards' input rows, which progress counts in (jobs/progress.py)."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), SHARD_ROWS_KEY: str(rows).encode()})


def _read_work_batch(items: pa.Table, folder: str) -> pa.Table:
    """Read back the work parts of one block of the shard list, as the previous segment left them,
    without the key columns only the driver's decision needed."""
    import pyarrow.parquet as pq

    tables, rows = [], 0
    for item in items.to_pylist():
        path = commit.part_path(folder, item["index"])
        names = pq.read_schema(path).names
        tables.append(pq.read_table(path, columns=[c for c in names if not c.startswith(KEYS_PREFIX)]))
        rows += Shard.from_dict(item).num_rows
    return _with_shard_rows(pa.concat_tables(tables) if len(tables) > 1 else tables[0], rows)


def _original(exc: BaseException) -> BaseException:
    """The worker's own exception inside Ray's wrappers (RayTaskError keeps it as `cause`)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            exc = cause
        elif isinstance(exc.__cause__, BaseException):
            exc = exc.__cause__
        else:
            break
    return exc


def _one_line_error(exc: BaseException, loc: commit.OutputLocation) -> BaseException:
    if isinstance(exc, RaybatchError):
        # A clean copy of our own one-line message: Ray's wrapper prints the worker's traceback,
        # and Ray Data appends retry advice to the message.
        return type(exc)(str(exc.args[0]).splitlines()[0] if exc.args else type(exc).__name__)
    if commit.is_disk_full(exc):
        return commit.disk_full(loc)
    return exc

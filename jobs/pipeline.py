"""The one module that builds Ray Data plans: read shards → stages → staging sink.

`execute` runs a plan's shards and leaves their parts and markers in staging; the runner
(jobs/runner.py) verifies and publishes them. Errors come back through Ray Data's own error
passing (`raise_original_map_exception`): ours arrive as themselves and print as one line.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import pyarrow as pa

from jobs import commit
from jobs.errors import RaybatchError, StageFailed
from jobs.inputs import Shard, resolve_filesystem
from jobs.plan import JobPlan
from jobs.reader import read_shard
from jobs.stages.base import StageContext, StageParams, StageRunner, one_line
from jobs.stages.registry import stage_class


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (cluster or `ray job submit`), else start an embedded Ray
    sized to this machine. The embedded one lives and dies with this process."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level="WARNING", log_to_driver=True)
    else:
        _start_reaper()
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                 log_to_driver=True)


def _start_reaper() -> None:
    """A watcher in its own session that stops this embedded Ray if this process is killed."""
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-m", "jobs.reaper", str(os.getpid())], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cluster_cpus_and_gpus() -> tuple[float, float]:
    import ray

    resources = ray.cluster_resources()
    return resources.get("CPU", 1.0), resources.get("GPU", 0.0)


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


_STAGE_CACHE: dict[str, StageRunner] = {}


def _build_runner(params_json: str, context: StageContext) -> StageRunner:
    """The stage, built once per worker; a constructor that raises fails the job in one line."""
    params_dict = json.loads(params_json)
    try:
        cls = stage_class(params_dict["use"])
        return StageRunner(cls(cls.Params.model_validate(params_dict), context))
    except RaybatchError:
        raise
    except Exception as exc:
        raise StageFailed(f"stage {context.stage_name!r} could not start: {type(exc).__name__}: "
                          f"{one_line(exc)}; nothing was published") from None


def _run_stage(runner: StageRunner, batch: pa.Table, index: int) -> pa.Table:
    """Run a stage and append its stats to the block's schema metadata, where the sink finds them."""
    out, stats = runner(batch)
    metadata = dict(batch.schema.metadata or {})
    history = json.loads(metadata.get(commit.STATS_METADATA_KEY, b"[]"))
    history.append({"index": index, "name": runner.stage.name, **stats})
    metadata[commit.STATS_METADATA_KEY] = json.dumps(history).encode()
    return out.replace_schema_metadata(metadata)


class StageTask:
    """A CPU stage run as Ray tasks; each worker process builds the stage once and reuses it."""

    def __init__(self, params_json: str, context: StageContext):
        self.params_json, self.context = params_json, context

    def __call__(self, batch: pa.Table) -> pa.Table:
        key = f"{self.context.stage_index}:{self.params_json}:{self.context.seed}"
        if key not in _STAGE_CACHE:
            _STAGE_CACHE[key] = _build_runner(self.params_json, self.context)
        return _run_stage(_STAGE_CACHE[key], batch, self.context.stage_index)


class StageActor:
    """A model stage in a long-lived actor: the model loads once per actor, not per batch. A failed
    load is kept and raised on the first batch, so it reaches the driver as our one-line error
    instead of an actor death Ray retries and prints at length."""

    def __init__(self, params_json: str, context: StageContext, threads: int = 0):
        import dataclasses

        import ray

        context = dataclasses.replace(context, actor_id=ray.get_runtime_context().get_actor_id())
        self.index = context.stage_index
        self.runner: StageRunner | None = None
        self.error: RaybatchError | None = None
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch and BLAS when they load
        try:
            self.runner = _build_runner(params_json, context)
        except RaybatchError as exc:  # a model that cannot load, a spec the engine refuses
            self.error = exc
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.error is not None:
            raise self.error
        return _run_stage(self.runner, batch, self.index)


def _make_sink(loc: commit.OutputLocation, input_columns: list[str], compression: str, shared: bool):
    from ray.data import Datasink

    class StagingSink(Datasink):
        """Writes each block's good rows to data/ and failed rows to _dead_letter/ in one pass."""

        def write(self, blocks, ctx):
            markers = []
            for block in blocks:
                markers.extend(m.model_dump() for m in commit.write_block(loc, block, input_columns, compression))
            return markers

        @property
        def supports_distributed_writes(self) -> bool:
            # A local path is only the driver node's, unless every node mounts it.
            return shared or not loc.is_local()

    return StagingSink()


def execute(plan: JobPlan, shards: list[Shard]) -> None:
    """Run `shards` through the stages into staging; raise one of our errors on failure."""
    import ray
    from ray.data import DataContext

    init_ray()
    ctx = DataContext.get_current()
    ctx.target_max_block_size = 1 << 31  # one block per shard: never split a shard's rows
    ctx.enable_progress_bars = True
    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True
    total_cpus, total_gpus = cluster_cpus_and_gpus()
    spec = plan.spec
    # With only task stages, read → stages → write fuse into one task chain, so Ray Data's
    # per-operator CPU reservation only idles cores (on 2 CPUs it runs one task at a time).
    # Actor pools keep it: there it is what leaves room for reading and writing.
    in_actors = [cls.runs_in_actors(params) for cls, params in zip(plan.stage_classes, spec.stages)]
    ctx.op_resource_reservation_enabled = any(in_actors)
    ds = ray.data.from_items([s.to_dict() for s in shards], override_num_blocks=len(shards))
    ds = ds.map_batches(_read_batch, fn_kwargs={"schema": plan.schema, "id_column": plan.id_column,
                                              "input_uri": spec.input.path},
                        batch_size=None, batch_format="pyarrow")
    actor_stages = sum(in_actors)
    local = not os.environ.get("RAY_ADDRESS")
    pools = {index: actor_pool_args(params, total_cpus, total_gpus, actor_stages, cpu_fallback=local)
             for index, params in enumerate(spec.stages) if in_actors[index]}
    threads = actor_threads(list(pools.values()), total_cpus, local)
    rows_added_before = False
    for index, (cls, params) in enumerate(zip(plan.stage_classes, spec.stages)):
        context = StageContext(spec.name, spec.seed, index, params.use,
                               copy_tag=f"aug{index}." if rows_added_before else "aug")
        rows_added_before = rows_added_before or cls.adds_rows
        params_json = params.model_dump_json()
        if in_actors[index]:
            pool = pools[index]
            ds = ds.map_batches(StageActor, fn_constructor_args=(params_json, context, 0 if pool["num_gpus"] else threads),
                                batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                                compute=ray.data.ActorPoolStrategy(size=pool["concurrency"]),  # `concurrency=` is deprecated
                                num_gpus=pool["num_gpus"], num_cpus=pool["num_cpus"])
        else:
            ds = ds.map_batches(StageTask(params_json, context), batch_size=None, batch_format="pyarrow",
                                zero_copy_batch=True, num_cpus=min(params.resources.num_cpus, 1.0))
    sink = _make_sink(plan.output, plan.schema.names, spec.output.compression, spec.output.shared_filesystem)
    _hide_ray_data_errors_on_console()
    try:
        ds.write_datasink(sink)
    except Exception as exc:
        raise _one_line_error(_original(exc), plan.output) from None


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
    tables = [read_shard(fs, Shard.from_dict(item), schema, id_column) for item in items.to_pylist()]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


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

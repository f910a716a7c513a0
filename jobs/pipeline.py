"""The one module that builds Ray Data plans: plan (no Ray) → read shards → stages → staging sink.

`plan_job` checks the whole job before Ray starts (files readable, columns present with the right
types, every stage's outside resources). `run_job` executes the plan and commits it exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

import pyarrow as pa

from jobs import commit, errors
from jobs.errors import InputDataError, RaybatchError, SpecError
from jobs.inputs import InputFile, Shard, list_input_files, plan_shards, read_schema, read_shard, resolve_filesystem
from jobs.spec import JobSpec
from jobs.stages.base import ROW_ID, Stage, StageContext, StageParams, StageRunner
from jobs.stages.registry import stage_class
from jobs.state import IncrementalState, JobLock, state_dir

STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
                pa.types.is_null)


@dataclass
class JobPlan:
    """Everything known before Ray starts."""

    spec: JobSpec
    files: list[InputFile]
    schema: pa.Schema
    shards: list[Shard]
    stage_classes: list[type[Stage]]
    output: commit.OutputLocation

    def with_files(self, files: list[InputFile]) -> "JobPlan":
        """The same plan over a subset of the files (incremental runs); shards are renumbered."""
        return JobPlan(self.spec, files, self.schema, plan_shards(files, self.spec.input.shard_rows),
                       self.stage_classes, self.output)

    @property
    def rows_in(self) -> int:
        return sum(s.num_rows for s in self.shards)

    def fingerprint(self) -> str:
        """Changes when the spec, the input files or the code version change: staging is then redone."""
        from jobs import __version__

        payload = {"spec": self.spec.resolved(), "version": __version__,
                   "files": [(f.path, f.size, f.mtime, f.num_rows) for f in self.files]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class RunResult:
    output_path: str
    skipped: bool
    manifest: dict | None = None
    seconds: float = 0.0


def plan_job(spec: JobSpec) -> JobPlan:
    """Validate the job end to end without Ray; raise SpecError/InputDataError naming the place."""
    classes = [stage_class(p.use, where=f"{spec.source}: stages[{i}].use") for i, p in enumerate(spec.stages)]
    for index, (cls, params) in enumerate(zip(classes, spec.stages)):
        try:
            cls.preflight(params)
        except SpecError as exc:
            raise SpecError(f"{spec.source}: stages[{index}] ({params.use}): {exc}") from None
    output = commit.OutputLocation.for_uri(spec.output.path)
    if not output.is_local():
        raise SpecError(f"{spec.source}: output.path: {spec.output.path}: only local or mounted paths can be "
                        f"published atomically; mount the bucket (e.g. s3fs, gcsfuse) and give that path")
    fs, files = list_input_files(spec.input.path)
    schema = read_schema(fs, files)
    check_columns(spec, schema, classes, files[0].path)
    shards = plan_shards(files, spec.input.shard_rows)
    return JobPlan(spec, files, schema, shards, classes, output)


def check_columns(spec: JobSpec, schema: pa.Schema, classes: list[type[Stage]], where: str) -> None:
    """Walk the stages in order: each stage's input columns must exist by then, with the right kind."""
    available = {f.name: f.type for f in schema}
    if spec.input.id_column and spec.input.id_column not in available:
        raise InputDataError(f"{where}: id_column {spec.input.id_column!r} not in the input; "
                             f"available: {', '.join(available)}")
    available[ROW_ID] = pa.string()
    for index, (cls, params) in enumerate(zip(classes, spec.stages)):
        for column, kind in cls.input_columns(params).items():
            if column not in available:
                raise InputDataError(f"stage {params.use!r} (stages[{index}]) needs column {column!r}; "
                                     f"available: {', '.join(available)}")
            type_ = available[column]
            if kind == "string" and type_ is not None and not any(check(type_) for check in STRING_TYPES):
                raise InputDataError(f"{where}: column {column!r} is {type_}, stage {params.use!r} "
                                     f"(stages[{index}]) needs a string column")
        for column in cls.output_columns(params):
            available.setdefault(column, None)


# ---- Ray side -------------------------------------------------------------------------------


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
    params_dict = json.loads(params_json)
    cls = stage_class(params_dict["use"])
    return StageRunner(cls(cls.Params.model_validate(params_dict), context))


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
    """A model stage in a long-lived actor: the model loads once per actor, not per batch."""

    def __init__(self, params_json: str, context: StageContext):
        self.runner = _build_runner(params_json, context)
        self.index = context.stage_index

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _run_stage(self.runner, batch, self.index)


def _make_sink(loc: commit.OutputLocation, input_columns: list[str], compression: str, shared: bool):
    from ray.data import Datasink

    class StagingSink(Datasink):
        """Writes each block's good rows to data/ and failed rows to _dead_letter/ in one pass."""

        def write(self, blocks, ctx):
            markers = []
            for block in blocks:
                markers.extend(commit.write_block(loc, block, input_columns, compression))
            return markers

        @property
        def supports_distributed_writes(self) -> bool:
            # A local path is only the driver node's, unless every node mounts it.
            return shared or not loc.is_local()

    return StagingSink()


def run_job(plan: JobPlan, overwrite: bool = False) -> RunResult:
    """Run the plan under the job's lock and publish its output once; an output that is already
    committed is skipped. Incremental jobs take only input files no earlier output committed."""
    started = time.time()
    spec, loc = plan.spec, plan.output
    directory = state_dir(spec.output_template or spec.output.path, spec.name)
    with JobLock(directory, spec.name):
        if loc.is_committed() and not overwrite:
            return RunResult(loc.path, skipped=True)
        started_at = commit.now_iso()
        incremental = IncrementalState.for_job(directory, spec.name) if spec.input.incremental else None
        if incremental is not None:
            plan = plan.with_files(incremental.new_files(plan.files, loc.path))
        reused = commit.prepare_staging(loc, plan.fingerprint(), plan.shards)
        done = {m["shard"] for m in reused}
        todo = [s for s in plan.shards if s.index not in done]
        if todo:
            _execute(plan, todo)
        # The markers on disk are the record: reused shards' and this run's alike.
        markers = commit.read_markers(loc)
        commit.check_accounting(markers, plan.shards)
        manifest = commit.build_manifest(
            spec_resolved=spec.resolved(), seed=spec.seed, shards=plan.shards, markers=markers,
            stage_names=[p.use for p in spec.stages], started_at=started_at,
            extra={"shards_reused": len(done), "input_files": [f.path for f in plan.files],
                   "incremental": incremental is not None},
        )
        manifest["seconds"] = round(time.time() - started, 3)
        if incremental is not None:
            incremental.record(plan.files, loc.path)  # counts only once _SUCCESS exists
        commit.publish(loc, manifest, overwrite=overwrite)
    return RunResult(loc.path, skipped=False, manifest=manifest, seconds=time.time() - started)


def _execute(plan: JobPlan, shards: list[Shard]) -> None:
    import ray
    from ray.data import DataContext

    init_ray()
    ctx = DataContext.get_current()
    ctx.target_max_block_size = 1 << 31  # one block per shard: never split a shard's rows
    ctx.enable_progress_bars = True
    ctx.print_on_execution_start = False
    total_cpus, total_gpus = cluster_cpus_and_gpus()
    spec = plan.spec
    # With only task stages, read → stages → write fuse into one task chain, so Ray Data's
    # per-operator CPU reservation only idles cores (on 2 CPUs it runs one task at a time).
    # Actor pools keep it: there it is what leaves room for reading and writing.
    in_actors = [cls.runs_in_actors(params) for cls, params in zip(plan.stage_classes, spec.stages)]
    ctx.op_resource_reservation_enabled = any(in_actors)
    ds = ray.data.from_items([s.to_dict() for s in shards], override_num_blocks=len(shards))
    ds = ds.map_batches(_read_batch, fn_kwargs={"schema": plan.schema, "id_column": spec.input.id_column,
                                              "input_uri": spec.input.path},
                        batch_size=None, batch_format="pyarrow")
    actor_stages = sum(in_actors)
    for index, (cls, params) in enumerate(zip(plan.stage_classes, spec.stages)):
        context = StageContext(spec.name, spec.seed, index, params.use)
        params_json = params.model_dump_json()
        if in_actors[index]:
            ds = ds.map_batches(StageActor, fn_constructor_args=(params_json, context), batch_size=None,
                                batch_format="pyarrow", zero_copy_batch=True,
                                **actor_pool_args(params, total_cpus, total_gpus, actor_stages,
                                                  cpu_fallback=not os.environ.get("RAY_ADDRESS")))
        else:
            ds = ds.map_batches(StageTask(params_json, context), batch_size=None, batch_format="pyarrow",
                                zero_copy_batch=True, num_cpus=min(params.resources.num_cpus, 1.0))
    sink = _make_sink(plan.output, plan.schema.names, spec.output.compression, spec.output.shared_filesystem)
    try:
        ds.write_datasink(sink)
    except RaybatchError:
        raise
    except Exception as exc:  # Ray wraps errors raised in workers; surface ours as one line
        ours = _find_own_error(exc)
        if ours is not None:
            raise ours from None
        raise


def _read_batch(items: pa.Table, schema: pa.Schema, id_column: str | None, input_uri: str) -> pa.Table:
    """Read the shards of one block of the shard list (one shard per block)."""
    fs, _ = resolve_filesystem(input_uri)
    tables = [read_shard(fs, Shard(**item), schema, id_column) for item in items.to_pylist()]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _find_own_error(exc: BaseException) -> RaybatchError | None:
    """Find one of our errors inside Ray's wrappers. Ray Data re-raises a worker's exception as
    UserCodeException without its cause, so the class and message are read from the traceback text."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RaybatchError):
            return exc
        text = str(exc)
        matches = re.findall(r"jobs\.errors\.(\w+): (.+)", text)
        if matches:
            name, message = matches[-1]
            cls = getattr(errors, name, None)
            if isinstance(cls, type) and issubclass(cls, RaybatchError):
                return cls(message.strip())
        cause = getattr(exc, "cause", None)
        exc = cause if isinstance(cause, BaseException) else (exc.__cause__ or exc.__context__)
    return None

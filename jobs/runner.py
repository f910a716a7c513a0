"""One run's lifecycle, in order: lock → recover → incremental → row ids while Ray starts → staging →
execute → verify → publish.

The lock is per output path (and per job for incremental jobs); everything after it touches only
what this job writes: its staging folder, its committed output, its own bookkeeping files.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from jobs import commit
from jobs.commit.models import Manifest
from jobs.crashpoints import crash_point
from jobs.errors import JobFailed
from jobs.incremental import IncrementalState, state_dir
from jobs.lock import RunLock
from jobs.pipeline import execute, load_ray_data, progress_labels
from jobs.plan import JobPlan
from jobs.progress import RunProgress
from jobs.ray_session import init_ray
from jobs.segments import split
from jobs.stages.base import StageContext
from jobs.workers import progress_board


@dataclass
class RunResult:
    output_path: str
    skipped: bool
    manifest: dict | None = None
    seconds: float = 0.0
    recovered: str | None = None
    phases: dict[str, float] | None = None  # where the time went: prepare, ray_start, work, commit
    warnings: list[str] | None = None  # what the user should read (a reader's file not written)


class _Phases:
    """Seconds per phase of a run, each phase ending where the next begins."""

    def __init__(self, started: float):
        self.seconds: dict[str, float] = {}
        self._mark = started

    def end(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._mark, 3)
        self._mark = now


def run_job(plan: JobPlan, overwrite: bool = False, progress: RunProgress | None = None) -> RunResult:
    """Run the plan and publish its output once; an output already committed is skipped (or,
    with `overwrite`, replaced atomically). Incremental jobs take only files no committed run took.
    A filesystem that refuses us (full, read-only, a mount point) is one line, not a traceback.
    `progress` hears the phases and reads the workers' progress; the manifest keeps rows over time."""
    try:
        return _run_locked(plan, overwrite, progress or RunProgress())
    except OSError as exc:
        if commit.is_disk_full(exc):
            raise commit.disk_full(plan.output) from None
        where = exc.filename or plan.output.path
        raise JobFailed(f"{where}: {exc.strerror or exc}; nothing was published") from None


def _run_locked(plan: JobPlan, overwrite: bool, progress: RunProgress) -> RunResult:
    started = time.time()
    phases = _Phases(started)
    spec, loc = plan.spec, plan.output
    folder = state_dir(spec.output_template or spec.output.path, spec.name)
    incremental = IncrementalState.for_job(folder, spec.name, plan.fs) if spec.input.incremental else None
    with contextlib.ExitStack() as locks:
        locks.enter_context(RunLock(loc.lock_path, f"output {loc.path}"))
        if incremental is not None:
            locks.enter_context(RunLock(incremental.lock_path, f"incremental job {spec.name!r}"))
        crash_point("run.locked")
        recovered = commit.recover(loc)
        loc.check_replaceable(spec.name)  # again under the lock: the folder may have changed since planning
        if incremental is not None:
            plan = plan.with_files(incremental.new_files(plan.files, loc.path))
        if _fresh_run(loc, overwrite, recovered):
            phases.end("prepare")
            plan = _row_ids_while_ray_starts(plan, progress)
            phases.end("ray_start")
        plan = plan.with_row_ids()  # a rerun reads them first: it may need no Ray at all
        fingerprint = plan.fingerprint()
        # A rerun after a kill mid-publish finds that publish completed by `recover`: with the same
        # spec, input and code it is this run's output already, even under --overwrite.
        finished_here = recovered is not None and loc.committed_fingerprint() == fingerprint
        if loc.is_committed() and (not overwrite or finished_here):
            return RunResult(loc.path, skipped=True, recovered=recovered)
        if loc.is_committed():
            loc.check_unchanged()
        manifest = _produce(plan, fingerprint, incremental is not None, started, phases, progress)
        warnings = _write_readers_files(loc, manifest)
        if incremental is not None:
            incremental.mark_pending(_taken(plan, manifest), loc.path, manifest.run_id)
        commit.publish(loc, manifest)
        crash_point("run.published")
        if incremental is not None:
            incremental.mark_committed(manifest.run_id)
        phases.end("commit")
    return RunResult(loc.path, skipped=False, manifest=manifest.model_dump(), seconds=time.time() - started,
                     recovered=recovered, phases=phases.seconds, warnings=warnings)


def _fresh_run(loc: commit.OutputLocation, overwrite: bool, recovered: str | None) -> bool:
    """Whether this run will surely compute something, so Ray may start before its row ids are read.
    Not so after a kill: `recover` may have finished this very run's publish, or staging may hold
    every shard already; that rerun learns it from the ids, and starts Ray only for what is left."""
    if recovered is not None or loc.fs.get_file_info(loc.staging).type != pafs.FileType.NotFound:
        return False
    return overwrite or not loc.is_committed()


def _row_ids_while_ray_starts(plan: JobPlan, progress: RunProgress) -> JobPlan:
    """Read the row ids (a large input's planning) in a thread while Ray starts on this one: Ray's
    start mostly waits for its processes, and Ray wants the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="row-ids") as pool:
        planned = pool.submit(_row_ids_and_ray_data, plan)
        progress.phase("starting Ray")
        init_ray()
        return planned.result()


def _row_ids_and_ray_data(plan: JobPlan) -> JobPlan:
    """The plan with its row ids, and Ray Data loaded: half a second this process would
    otherwise spend after Ray is up, before its first block, while here it waits for Ray."""
    planned = plan.with_row_ids()
    load_ray_data()
    return planned


def _produce(plan: JobPlan, fingerprint: str, incremental: bool, started: float, phases: _Phases,
             progress: RunProgress) -> Manifest:
    """Compute what staging lacks, verify all of it, and return the manifest to publish."""
    spec, loc = plan.spec, plan.output
    started_at = commit.now_iso()
    progress.phase("preparing staging")
    reused = commit.prepare_staging(loc, fingerprint, spec.name, plan.shards)
    done = {m.shard for m in reused}
    todo = [s for s in plan.shards if s.index not in done]
    phases.end("prepare")
    series = []
    if todo:
        progress.phase("starting Ray")
        init_ray()
        phases.end("ray_start")
        progress.phase("running (models load first)" if any(c.runs_in_actors(p) for c, p in zip(plan.stage_classes, spec.stages))
                       else "running")
        progress.start_work(progress_labels(plan), sum(s.num_rows for s in todo), progress_board())
        try:
            _execute_segments(plan, todo, progress.board_name)
        finally:  # a failed run stops reading the board too
            series = progress.finish()
    phases.end("work")
    progress.phase("verifying and committing")
    crash_point("run.executed")
    markers = commit.read_markers(loc)  # the record on disk: reused shards' and this run's alike
    known = {s.index for s in plan.shards}
    markers = [m for m in markers if m.shard in known]
    commit.check_identity(markers, plan.shards)
    commit.verify_files(loc, markers)
    commit.check_dead_letter_fraction(markers, plan.rows_in, spec.max_dead_letter_fraction)
    return commit.build_manifest(
        name=spec.name, run_id=uuid.uuid4().hex, fingerprint=fingerprint, spec_resolved=spec.resolved(),
        seed=spec.seed, shards=plan.shards, markers=markers, stage_names=[p.use for p in spec.stages],
        started_at=started_at, shards_reused=len(done), input_files=[f.path for f in plan.files],
        incremental=incremental, seconds=round(time.time() - started, 3), phases=dict(phases.seconds),
        progress=series, spec_text=spec.text or None)


def _execute_segments(plan: JobPlan, todo: list, board: str | None) -> None:
    """Run the stages segment by segment (see jobs/segments.py): a whole-input stage decides once
    every shard's keys are in staging, and what a killed run finished is not done again."""
    spec, loc = plan.spec, plan.output
    segments = split(plan.stage_classes)
    for segment in segments[:-1]:
        index = segment.decides
        if commit.decisions_done(loc, index):
            continue
        done = commit.done_shards(loc, segment.number, plan.shards)
        missing = [s for s in plan.shards if s.index not in done]
        if missing:
            execute(plan, missing, segment, board)
        crash_point("run.keyed")
        cls, params = plan.stage_classes[index], spec.stages[index]
        context = StageContext(spec.name, spec.seed, index, params.use)
        commit.write_decisions(loc, index, cls.decide(params, commit.WorkRows(loc, segment.number, plan.shards),
                                                      context))
    execute(plan, todo, segments[-1], board)


def _write_readers_files(loc, manifest: Manifest) -> list[str]:
    """report.html and the dataset card (README.md) go into staging with the data they describe, so
    nothing ever writes into a committed output. A page that cannot be drawn is said (returned as a
    warning), and the data published: these files describe the data and must never cost it."""
    from pathlib import Path

    from jobs.dataset_card import CARD_FILE, write_card
    from jobs.report import REPORT_FILE, load_report
    from jobs.report_html import write_html

    warnings: list[str] = []
    if not loc.is_local():
        return warnings
    try:
        data = load_report(loc.staging, manifest=manifest.model_dump())
        data.output = Path(loc.path)  # what the page names: where the output will be
        write_html(data, Path(loc.staging) / REPORT_FILE)
        manifest.report = REPORT_FILE
    except Exception as exc:
        warnings.append(f"{REPORT_FILE} was not written: {type(exc).__name__}: {exc}")
    try:
        write_card(loc.staging, manifest.model_dump(), loc.path)
        manifest.dataset_card = CARD_FILE
    except Exception as exc:
        warnings.append(f"{CARD_FILE} was not written: {type(exc).__name__}: {exc}")
    return warnings


def _taken(plan: JobPlan, manifest: Manifest) -> list:
    paths = set(manifest.input_files)
    files = [f for f in plan.files if f.path in paths]
    if len(files) != len(paths):
        raise JobFailed("the incremental record does not match the planned input files; nothing was published")
    return files

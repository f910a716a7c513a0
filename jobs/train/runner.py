"""One fine-tuning run's lifecycle, as for data jobs: lock → recover → skip a committed output →
staging (checkpoints kept across kills) → Ray Train → manifest → atomic publish.

Staging holds `_checkpoints/` (the Trainer's, every `save_steps`) under a stamp of the spec, data
and model: a rerun of the same command resumes from the last checkpoint; anything else starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobs import commit
from jobs.commit.layout import STAMP, OutputLocation, delete_dir, now_iso, read_json, write_json
from jobs.commit.verify import versions
from jobs.errors import JobFailed, SpecError
from jobs.lock import RunLock
from jobs.train.data import TrainData, locate, needed_columns
from jobs.train.output import CHECKPOINT_DIR, MODEL_DIR, RAY_TRAIN_DIR, TRAIN_LOG, model_source, publish_model
from jobs.train.report import write_train_report
from jobs.train.spec import TrainSpec


@dataclass
class TrainResult:
    output_path: str
    skipped: bool
    manifest: dict | None = None


@dataclass
class TrainPlan:
    """Everything decided before Ray starts."""

    spec: TrainSpec
    data: TrainData
    source: dict  # the base model: source, path (local folder or hub name), revision
    labels: list | None  # classify: the classes, in order of their index
    steps_per_epoch: int
    max_steps: int
    loc: OutputLocation


def plan_train(spec: TrainSpec) -> TrainPlan:
    """Everything checked before Ray starts: the data, its splits, columns and labels, the model's
    files, the workers against the rows, and the output path."""
    from jobs.engine.loading import check_model_files

    section, where = spec.train, spec.source
    data = locate(section)
    try:
        check_model_files(section.model, section.revision, trust_remote_code=False, allow_pickle=False)
    except SpecError as exc:
        raise SpecError(f"{where}: train.{exc}") from None
    loc = OutputLocation.for_uri(spec.output.path)
    if not loc.is_local():
        raise SpecError(f"{where}: output.path: fine-tuning writes checkpoints and the model from its workers: use a "
                        f"local path (on a cluster, one every node mounts, with output.shared_filesystem: true)")
    loc.check_replaceable(spec.name)
    rows, workers = data.rows[section.train_split], section.resources.num_workers
    if rows < workers:
        raise SpecError(f"{where}: train.resources.num_workers: {workers} workers for {rows} training rows")
    steps_per_epoch = -(-(rows // workers) // section.batch_size)
    max_steps = section.max_steps or max(1, round((section.epochs or 1) * steps_per_epoch))
    labels = _labels(spec, data) if section.task == "classify" else None
    return TrainPlan(spec, data, model_source(section.model, section.revision), labels, steps_per_epoch, max_steps, loc)


def _labels(spec: TrainSpec, data: TrainData) -> list:
    """The classes of the train split, in their natural order (2 before 10); every eval label must be one."""
    section = spec.train
    found = data.table(section.train_split, [section.label_column])[0].to_pylist()
    if any(value is None for value in found):
        raise SpecError(f"{spec.source}: train.label_column: {section.label_column!r} has empty labels in split "
                        f"{section.train_split!r}")
    labels = sorted(set(found))
    if section.eval_split:
        unseen = set(data.table(section.eval_split, [section.label_column])[0].to_pylist()) - set(labels)
        if unseen:
            raise SpecError(f"{spec.source}: train.label_column: split {section.eval_split!r} has labels the train "
                            f"split lacks: {sorted(map(str, unseen))[:5]}")
    return labels


def train(spec: TrainSpec, overwrite: bool = False) -> TrainResult:
    plan = plan_train(spec)
    loc = plan.loc
    with RunLock(loc.lock_path, f"output {loc.path}"):
        recovered = commit.recover(loc)
        loc.check_replaceable(spec.name)
        fingerprint = _fingerprint(plan)
        # A rerun after a kill mid-publish: the publish `recover` finished is this run's output.
        finished_here = recovered is not None and loc.committed_fingerprint() == fingerprint
        if loc.is_committed() and (not overwrite or finished_here):
            return TrainResult(loc.path, skipped=True)
        if loc.is_committed():
            loc.check_unchanged()
        started, started_at = time.time(), now_iso()
        staging = _prepare_staging(loc, fingerprint, spec.name)
        resume_from = _last_checkpoint(staging / CHECKPOINT_DIR)
        log, world_size = _fit(plan, staging, resume_from)
        manifest = _manifest(plan, fingerprint, log, world_size, resume_from, started, started_at)
        write_train_report(staging, manifest)
        publish_model(loc, manifest)
    return TrainResult(loc.path, skipped=False, manifest=manifest)


def _fingerprint(plan: TrainPlan) -> str:
    """The spec (without its date: a run killed before midnight resumes after it), the data's
    record and the base model's revision."""
    resolved = {k: v for k, v in plan.spec.resolved().items() if k != "date"}
    digest = hashlib.sha256(json.dumps([resolved, plan.data.record_sha256, plan.source], sort_keys=True).encode())
    return digest.hexdigest()


def _prepare_staging(loc: OutputLocation, fingerprint: str, name: str) -> Path:
    """Staging kept when its stamp matches (a resume), wiped when it is ours but stale."""
    loc.check_staging_is_ours()
    staging = Path(loc.staging)
    stamp = read_json(loc.fs, str(staging / STAMP)) if staging.exists() else {}
    if stamp.get("fingerprint") != fingerprint:
        delete_dir(loc.fs, str(staging))
        staging.mkdir(parents=True)
        write_json(loc.fs, str(staging / STAMP), {"fingerprint": fingerprint, "job": name, "created_at": now_iso()})
    return staging


def _last_checkpoint(folder: Path) -> str | None:
    steps = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*")
             if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").is_file()]
    return str(max(steps)[1]) if steps else None


def _shuffled(table, seed: int):
    """Rows in a seeded order: an augmented corpus holds each row's copies next to it."""
    import numpy as np
    import pyarrow as pa

    return table.take(pa.array(np.random.default_rng(seed).permutation(table.num_rows)))


def _fit(plan: TrainPlan, staging: Path, resume_from: str | None) -> tuple[dict, int]:
    import ray
    from ray.train import DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from jobs.ray_session import init_ray
    from jobs.train.loop import train_loop

    spec, data = plan.spec, plan.data
    section, resources = spec.train, spec.train.resources
    init_ray()
    if len(ray.nodes()) > 1 and not spec.output.shared_filesystem:
        raise JobFailed("output.path: the workers of a multi-node cluster write checkpoints and the model there: "
                        "put it on storage every node mounts and set output.shared_filesystem: true")
    ray.data.DataContext.get_current().enable_progress_bars = False  # the datasets carry it to the workers
    columns = needed_columns(section)
    datasets = {"train": ray.data.from_arrow(_shuffled(data.table(section.train_split, columns), spec.seed))}
    if section.eval_split:
        datasets["eval"] = ray.data.from_arrow(data.table(section.eval_split, columns))
    workers = resources.num_workers
    cores = os.cpu_count() or 1
    config = {"section": section.model_dump(mode="json"), "model_dir": plan.source["path"],
              "revision": section.revision, "seed": spec.seed,
              "checkpoints": str(staging / CHECKPOINT_DIR), "model_out": str(staging / MODEL_DIR),
              "log_out": str(staging / TRAIN_LOG), "resume_from": resume_from, "max_steps": plan.max_steps,
              "steps_per_epoch": plan.steps_per_epoch, "labels": plan.labels, "has_eval": "eval" in datasets,
              "use_gpu": resources.use_gpu,
              # Ray pins torch to num_cpus threads; on this machine's own Ray the workers share its cores.
              "threads": max(1, int(resources.cpus_per_worker) if os.environ.get("RAY_ADDRESS") else cores // workers)}
    trainer = TorchTrainer(
        train_loop, train_loop_config=config, datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=resources.use_gpu,
                                     resources_per_worker={"CPU": resources.cpus_per_worker}),
        run_config=RunConfig(name=f"{spec.name}-{uuid.uuid4().hex[:8]}", storage_path=str(staging / RAY_TRAIN_DIR)))
    try:
        trainer.fit()
    except Exception as exc:  # Ray Train wraps a worker's error: one line, the worker's own words
        raise JobFailed(f"training failed: {_root_cause(exc)}") from None
    log = json.loads((staging / TRAIN_LOG).read_text(encoding="utf-8"))
    return {**log, "max_steps": plan.max_steps}, workers


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while getattr(seen, "cause", None) is not None or seen.__cause__ is not None:
        seen = getattr(seen, "cause", None) or seen.__cause__
    text = " ".join(str(seen).split())
    return f"{type(seen).__name__}: {text[:500]}"


def _manifest(plan: TrainPlan, fingerprint: str, log: dict, world_size: int, resume_from: str | None,
              started: float, started_at: str) -> dict:
    spec, data, source = plan.spec, plan.data, plan.source
    history = log["log_history"]
    train_loss = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    eval_loss = [{"step": h["step"], "loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    last_eval = next((h for h in reversed(history) if "eval_loss" in h), {})
    return {
        "kind": "train", "name": spec.name, "run_id": uuid.uuid4().hex, "fingerprint": fingerprint,
        "data": {"path": data.path, "record": data.record, "record_sha256": data.record_sha256, "rows": data.rows},
        "model": source, "task": spec.train.task, "hyperparameters": spec.train.hyperparameters(),
        "world_size": world_size, "steps": log["global_step"], "max_steps": log["max_steps"],
        "resumed_from_step": int(Path(resume_from).name.split("-")[1]) if resume_from else None,
        "train_loss": train_loss, "eval_loss": eval_loss,
        "eval_metrics": {k.removeprefix("eval_"): v for k, v in last_eval.items()
                         if k.startswith("eval_") and not k.endswith(("runtime", "_per_second"))},
        "log_history": history, "spec": spec.resolved(), "seed": spec.seed, "versions": versions(),
        "started_at": started_at, "finished_at": now_iso(), "seconds": round(time.time() - started, 3),
    }

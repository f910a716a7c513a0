"""Command line: `raybatch run|validate|export …` (also `python -m jobs`).

Exit codes: 0 success (or already done), 1 the job failed while running, 2 bad spec, input or usage,
3 another run holds the job's lock. Our own errors print one line; real bugs keep their traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from jobs.cli_cluster import JsonOption
from jobs.cli_options import DateOption, QuietOption, SetOption, VerboseOption, fail as _fail, mode
from jobs.errors import RaybatchError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Batch ML data jobs on Ray: clean, generate, translate, summarize, augment, fine-tune.")


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        typer.echo(f"raybatch {metadata.version('raybatch')}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Batch ML data jobs on Ray: clean, generate, translate, summarize, augment, fine-tune."""


def _plan_summary(job, plan) -> dict:
    """What a job will do, before Ray starts: files, shards, stages and how each runs."""
    return {"name": job.name, "output": job.output.path, "rows_in": plan.rows_in,
            "files": [{"path": f.path, "rows": f.num_rows} for f in plan.files], "shards": len(plan.shards),
            "stages": [{"use": p.use, "runs_in": "actors" if cls.runs_in_actors(p) else "tasks",
                        "whole_input": cls.whole_input, "resources": p.resources.model_dump()}
                       for cls, p in zip(plan.stage_classes, job.stages)]}


@app.command()
def validate(spec: str = typer.Argument(..., metavar="SPEC", help="Job spec (YAML), or - for standard input"),
             set_: Optional[List[str]] = SetOption, date: Optional[str] = DateOption,
             as_json: bool = JsonOption) -> None:
    """Check a spec end to end (keys, stages, input files and columns, models) without running it."""
    from jobs.plan import plan_job
    from jobs.spec import is_train_spec, parse_spec, read_spec_mapping, spec_source

    try:
        raw = read_spec_mapping(spec, set_ or [])
        if is_train_spec(raw):
            _validate_train(raw, spec_source(spec), date, as_json)
            return
        job = parse_spec(raw, source=spec_source(spec), date=date)
        plan = plan_job(job)
    except RaybatchError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({"ok": True, **_plan_summary(job, plan)}))
        return
    typer.echo(f"ok: {job.name}: {len(plan.files)} input file(s), {plan.rows_in} rows, "
               f"{len(plan.shards)} shard(s), stages: {' → '.join(p.use for p in job.stages)}; "
               f"output: {job.output.path}")


@app.command()
def run(spec: str = typer.Argument(..., metavar="SPEC", help="Job spec (YAML), or - for standard input"),
        date: Optional[str] = DateOption, set_: Optional[List[str]] = SetOption,
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a committed output (atomically)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (files, shards, stages) and stop."),
        as_json: bool = JsonOption,
        verbose: bool = VerboseOption, quiet: bool = QuietOption,
        progress_every: float = typer.Option(30.0, "--progress-every", metavar="SECONDS", min=1,
                                             help="Seconds between progress lines when not on a terminal.")) -> None:
    """Run a job on the local machine (embedded Ray), or on RAY_ADDRESS's cluster when set.
    On a terminal it shows a progress bar per stage; Ray's own output goes to a log file."""
    from jobs.plan import plan_job
    from jobs.errors import SpecError
    from jobs.report import print_summary
    from jobs.spec import is_train_spec, parse_spec, read_spec_mapping, spec_source

    try:
        if verbose and quiet:
            raise SpecError("--verbose and --quiet: choose one")
        raw = read_spec_mapping(spec, set_ or [])
        if is_train_spec(raw):
            raise SpecError(f"{spec_source(spec)}: a train spec (it has train:, no stages): run it with "
                            f"`raybatch train {spec}`")
        job = parse_spec(raw, source=spec_source(spec), date=date)
        # The actors check their own engine as they load it; a run reads the row ids while Ray starts.
        plan = plan_job(job, check_engines=False, row_ids=dry_run)
        if dry_run:
            _print_plan(_plan_summary(job, plan), as_json)
            return
        _check_ray_address()
        log = run_log_path(job)
        from jobs.ray_session import shutdown_ray
        from jobs.runner import run_job
        from jobs.terminal import run_shown

        result = run_shown(log, mode(verbose, quiet), progress_every,
                           lambda progress: run_job(plan, overwrite=overwrite, progress=progress), shutdown_ray)
    except RaybatchError as exc:
        _fail(exc)
    for warning in result.warnings or []:
        typer.echo(f"warning: {warning}", err=True)
    if result.recovered:
        typer.echo(f"recovered: {result.recovered}", err=True)
    if as_json:  # a skipped run reports the committed output's counts
        m = result.manifest or json.loads((Path(result.output_path) / "_manifest.json").read_text(encoding="utf-8"))
        keys = ("rows_in", "rows_out", "rows_dead_letter", "rows_filtered", "seconds", "run_id")
        typer.echo(json.dumps({"name": job.name, "output": result.output_path, "skipped": result.skipped,
                               "recovered": result.recovered, **{k: m.get(k) for k in keys},
                               "phases": result.phases, "log": str(log) if log else None}))
        return
    if result.skipped:
        typer.echo(f"skipped: {result.output_path} is already committed (_SUCCESS present); "
                   f"use --overwrite to redo it")
        return
    m = result.manifest
    if quiet:
        typer.echo(f"{m['name']}: {m['rows_in']:,} rows in, {m['rows_out']:,} out, {m['rows_dead_letter']:,} dead "
                   f"letter, {m.get('rows_filtered', 0):,} filtered, {result.seconds:.1f}s: {result.output_path}")
        return
    print_summary(m, result.output_path)
    if result.phases:
        names = {"prepare": "prepare", "ray_start": "Ray start", "work": "work", "commit": "commit"}
        typer.echo("time: " + ", ".join(f"{names[k]} {v:.1f}s" for k, v in result.phases.items() if k in names)
                   + f" (total {result.seconds:.1f}s)" + _model_load(m))
    if log:
        typer.echo(f"log: {log} (Ray's and the libraries' output)")


def _model_load(manifest: dict) -> str:
    """How long the model stages' actors took to load their models (part of `work`)."""
    loads = [(s["name"], s["model_load_seconds"] / s["model_loads"], s["model_loads"])
             for s in manifest["stages"] if s.get("model_loads")]
    return "".join(f"; {name} model load {seconds:.1f}s per actor ({n} actor(s), within work)"
                   for name, seconds, n in loads)


def run_log_path(job) -> Path | None:
    """The run's log file: next to the job's other bookkeeping (jobs/incremental.state_dir) for a
    local output, else (or where that folder refuses us) in this user's folder under the temp
    folder; None when neither can be written (the run goes on, its Ray output dropped)."""
    import tempfile

    from jobs.incremental import state_dir
    from jobs.inputs import resolve_filesystem
    from jobs.terminal import log_path

    folders = []
    fs, _ = resolve_filesystem(job.output.path)
    if type(fs).__name__ == "LocalFileSystem":
        folders.append(state_dir(getattr(job, "output_template", "") or job.output.path, job.name))
    folders.append(str(Path(tempfile.gettempdir()) / f"raybatch-logs-{os.getuid()}"))
    for folder in folders:
        try:
            return log_path(folder, job.name)
        except OSError:  # a read-only or full disk, another user's folder: the run itself says so
            continue
    return None


def _check_ray_address() -> None:
    """A RAY_ADDRESS that cannot work is said before anything is locked, planned into staging or skipped."""
    import os

    if os.environ.get("RAY_ADDRESS"):
        from jobs.ray_address import cluster_address

        cluster_address(os.environ["RAY_ADDRESS"])


@app.command()
def init(kind: str = typer.Argument("augment", metavar="[KIND]", help="clean, augment or hygiene"),
         folder: Path = typer.Option(Path("."), "--dir", help="Where to write (default: the current folder).")) -> None:
    """Write a commented example spec for a use case, and example rows in data/ when it has none:
    it validates and runs as written."""
    from jobs.starter import init as write_starter

    try:
        written = write_starter(kind, folder)
    except RaybatchError as exc:
        _fail(exc)
    for path in written:
        typer.echo(f"wrote {path}")
    if not any((folder / "data").glob("*.parquet")):
        typer.echo(f"put your Parquet files in {folder / 'data'} (columns id, text, ...)")
    name = written[0].name  # the spec's paths are relative to the folder it is in
    there = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    typer.echo(f"next: {there}raybatch validate {name} && raybatch run {name}")


def _print_plan(plan: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"dry_run": True, **plan}))
        return
    typer.echo(f"plan: {plan['name']}: {plan['rows_in']} rows in {len(plan['files'])} file(s), "
               f"{plan['shards']} shard(s); output {plan['output']}")
    for f in plan["files"]:
        typer.echo(f"  file {f['path']}: {f['rows']} rows")
    for index, stage in enumerate(plan["stages"]):
        how = stage["runs_in"] + (", over the whole input (two passes)" if stage["whole_input"] else "")
        typer.echo(f"  stage {index}: {stage['use']} ({how}; {stage['resources']})")


def _validate_train(raw: dict, source: str, date: Optional[str], as_json: bool) -> None:
    from jobs.train.runner import plan_train
    from jobs.train.spec import parse_train_spec

    job = parse_train_spec(raw, source=source, date=date)
    plan = plan_train(job)
    if as_json:
        typer.echo(json.dumps({"ok": True, "name": job.name, "task": job.train.task, "data": plan.data.path,
                               "splits": plan.data.rows, "model": plan.source, "max_steps": plan.max_steps,
                               "output": job.output.path}))
        return
    splits = ", ".join(f"{name} {rows}" for name, rows in sorted(plan.data.rows.items()))
    typer.echo(f"ok: {job.name}: train {job.train.task} on {plan.data.path} ({splits}); model "
               f"{plan.source['source']} ({plan.source['revision']}), {plan.max_steps} steps; output: {job.output.path}")


@app.command()
def export(source: str = typer.Argument(..., metavar="OUTPUT|SPEC", help="A committed output folder, or the job's spec (YAML)"),
           to: Optional[str] = typer.Option(None, "--to", help="Destination folder (default: <output>-finetune)."),
           date: Optional[str] = DateOption, set_: Optional[List[str]] = SetOption,
           files: str = typer.Option("parquet,jsonl", "--files", help="Comma-separated: parquet, jsonl."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace the destination (atomically).")) -> None:
    """Write a committed output as fine-tuning files: one Parquet and one JSONL file per split."""
    from jobs.export import ExportError, write_export
    from jobs.spec import load_spec

    chosen = tuple(f.strip() for f in files.split(",") if f.strip())
    try:
        if set(chosen) - {"parquet", "jsonl"} or not chosen:
            raise ExportError(f"--files {files!r}: choose from parquet, jsonl")
        if source.endswith((".yaml", ".yml")):
            source = load_spec(source, set_ or [], date).output.path
        summary = write_export(source, to, chosen, overwrite)
    except RaybatchError as exc:
        _fail(exc)
    splits = ", ".join(f"{name} {rows}" for name, rows in summary["splits"].items())
    typer.echo(f"exported {sum(summary['splits'].values())} rows ({splits}) to {summary['path']}")


from jobs.cli_cluster import register  # noqa: E402  (submit, status, logs, stop, list, cluster, report)
register(app)
from jobs.cli_outputs import register as register_output_commands  # noqa: E402  (report, replay)
register_output_commands(app)
from jobs.cli_train import train_command  # noqa: E402
app.command(name="train")(train_command)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

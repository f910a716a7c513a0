"""`raybatch train`: fine-tune on a committed output with Ray Train (jobs/train/), with Ray
Train's own output kept in the run's log file like a data job's."""

from __future__ import annotations

from typing import List, Optional

import typer

from jobs.cli_options import DateOption, QuietOption, SetOption, VerboseOption, fail, mode
from jobs.errors import RaybatchError


def train_command(spec: str = typer.Argument(..., metavar="SPEC", help="Train spec (YAML with a train: section), or - for standard input"),
                  date: Optional[str] = DateOption, set_: Optional[List[str]] = SetOption,
                  overwrite: bool = typer.Option(False, "--overwrite", help="Replace a committed model (atomically)."),
                  verbose: bool = VerboseOption, quiet: bool = QuietOption) -> None:
    """Fine-tune a model on a committed output with Ray Train; a killed run resumes from its last checkpoint.
    Ray Train's own output goes to a log file (shown too with --verbose)."""
    from jobs.cli import _check_ray_address, run_log_path
    from jobs.errors import SpecError
    from jobs.ray_session import shutdown_ray
    from jobs.terminal import run_shown
    from jobs.train.runner import train
    from jobs.train.spec import load_train_spec

    def work(progress):
        progress.phase(f"training {loaded.name} with Ray Train (its output: {log})")
        return train(loaded, overwrite=overwrite)

    try:
        if verbose and quiet:
            raise SpecError("--verbose and --quiet: choose one")
        loaded = load_train_spec(spec, set_ or [], date)
        _check_ray_address()
        log = run_log_path(loaded)
        result = run_shown(log, mode(verbose, quiet), 30.0, work, shutdown_ray)
    except RaybatchError as exc:
        fail(exc)
    if result.skipped:
        typer.echo(f"skipped: {result.output_path} is already committed (_SUCCESS present); use --overwrite to redo it")
        return
    m = result.manifest
    losses = m["train_loss"]
    first, last = (losses[0]["loss"], losses[-1]["loss"]) if losses else (float("nan"), float("nan"))
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in m["eval_metrics"].items() if isinstance(v, (int, float))
                        and k in ("loss", "accuracy", "macro_f1"))
    resumed = f", resumed from step {m['resumed_from_step']}" if m["resumed_from_step"] else ""
    line = (f"{m['name']}: {m['steps']} steps on {m['world_size']} worker(s){resumed}, train loss {first:.4g} → "
            f"{last:.4g}{'; eval ' + metrics if metrics else ''}; {m['seconds']:.1f}s")
    if quiet:
        typer.echo(f"{line}; model: {result.output_path}/model")
        return
    typer.echo(line)
    typer.echo(f"model: {result.output_path}/model")
    if log:
        typer.echo(f"log: {log} (Ray Train's and the libraries' output)")

"""Commands on a committed output: `report` (what the run did) and `replay` (redo one augmented
copy from its lineage). Neither ever writes into the output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from jobs.cli_cluster import JsonOption, OurErrors, _fail
from jobs.errors import InputDataError


def report(output: Path = typer.Argument(..., metavar="OUTPUT", help="A committed output folder."),
           column: Optional[str] = typer.Option(None, "--column", help="Text column for the length histogram "
                                                "(default: the first stage's column)."),
           html: Optional[Path] = typer.Option(None, "--html", help="Also write the page to this file (outside "
                                               "the output), e.g. for an output committed without one."),
           as_json: bool = JsonOption) -> None:
    """Summarize a committed output: counts, dead letters by cause, lengths, throughput, and where
    its report.html is (written with the data when the run committed; this never changes OUTPUT)."""
    from jobs.report import REPORT_FILE, load_report, print_report, report_summary
    from jobs.report_html import write_html
    from jobs.train.report import print_train_report, train_manifest

    try:
        if html is not None and _inside(html, output):
            raise InputDataError(f"--html {html}: inside the committed output; a report never changes an output")
        train = train_manifest(output)
        if train is not None:  # a fine-tuning output: its report.html was written when it was committed
            if html is not None:
                raise InputDataError(f"--html: {output} is a fine-tuning output; its report is "
                                     f"{output / REPORT_FILE}")
            if as_json:
                keys = ("name", "task", "steps", "world_size", "seconds", "train_loss", "eval_loss", "eval_metrics")
                typer.echo(json.dumps({"output": str(output), "kind": "train", **{k: train.get(k) for k in keys},
                                       "report": str(output / REPORT_FILE)}))
            else:
                print_train_report(output, typer.echo)
            return
        data = load_report(output, column)
        try:
            page = write_html(data, html) if html is not None else output / REPORT_FILE
        except OSError as exc:
            raise InputDataError(f"--html {html}: {exc.strerror or exc}") from None
    except OurErrors as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report_summary(data, str(page) if page.exists() else None)))
        return
    print_report(data)
    if page.exists():
        typer.echo(f"report: {page}")
    else:
        typer.echo(f"no {REPORT_FILE} in this output (committed before runs wrote one); "
                   f"--html PATH writes one elsewhere")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def replay(output: Path = typer.Argument(..., metavar="OUTPUT", help="A committed output folder."),
           row_id: str = typer.Argument(..., metavar="ROW_ID", help="An augmented copy's row_id (parent~aug3)."),
           parent_text: Optional[str] = typer.Option(None, "--parent-text", metavar="TEXT",
                                                     help="The parent's text as the augment stage saw it, when "
                                                          "the output cannot give it (a model stage ran before)."),
           as_json: bool = JsonOption) -> None:
    """Redo one augmented copy from its lineage (parent text, aug_op, aug_seed) and check it is
    the text the run wrote (exit 0), or say it differs (exit 1)."""
    from augment.replay import replay_row

    try:
        done = replay_row(output, row_id, parent_text)
    except OurErrors as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(done.to_dict(), ensure_ascii=False))
    else:
        where = {"output": "text from the output", "input": "text redone from the input", "given": "text given"}
        typer.echo(f"parent {done.parent_id} ({where[done.parent_from]}): {done.parent_text}")
        typer.echo(f"op {done.op}, seed {done.seed}, stage {done.stage}")
        typer.echo(f"replayed: {done.replayed}")
        typer.echo("matches the output" if done.matches else f"DIFFERS from the output: {done.written}")
    if not done.matches:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(replay)

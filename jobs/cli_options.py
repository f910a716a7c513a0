"""Options several commands share, so each says the same thing the same way."""

from __future__ import annotations

from typing import NoReturn

import typer

from jobs.secrets import redact_uri

SetOption = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a spec key by dotted path "
                         "(output.path=/tmp/x, stages.0.column=body); repeatable.")
DateOption = typer.Option(None, "--date", metavar="YYYY-MM-DD", help="Fills {date} in paths (default: today, UTC).")


VerboseOption = typer.Option(False, "--verbose", "-v", help="Show Ray's and the libraries' output too (it always "
                             "goes to the run's log file).")
QuietOption = typer.Option(False, "--quiet", "-q", help="Print only errors and the final line.")


def mode(verbose: bool, quiet: bool) -> str:
    return "verbose" if verbose else "quiet" if quiet else "normal"


def fail(exc) -> NoReturn:
    """A RaybatchError or ClusterError as the one line the user sees, and its exit code."""
    typer.echo(f"error: {redact_uri(str(exc))}", err=True)
    raise typer.Exit(exc.exit_code)

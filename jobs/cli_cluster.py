"""Commands for clusters: submit, status, logs, stop, list, cluster up|down.

Kept apart from cli.py, and everything heavy (ray, requests, the report's readers) is imported
inside the commands, so `raybatch --help` stays instant. Exit codes: 0 ok, 1 the job failed or was
stopped (submit --wait), 2 usage, bad address or a cluster that refuses us, 3 (submit --wait) the
job's driver found its lock held: the previous run is still going.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from jobs.cli_options import fail as _fail
from jobs.errors import RaybatchError, SpecError
from jobs.secrets import redact_uri
from ray_cluster.errors import ClusterError

OurErrors = (RaybatchError, ClusterError)
JsonOption = typer.Option(False, "--json", help="Print one JSON object for scripts instead of text.")

AddressOption = typer.Option(None, "--address", envvar="RAY_ADDRESS", show_envvar=True, metavar="URL",
                             help="The cluster's dashboard URL, e.g. http://127.0.0.1:8265.")
ClusterDirOption = typer.Option(None, "--dir", metavar="DIR", help="Where the local cluster keeps its state "
                                "and logs (default: $RAYBATCH_CLUSTER_DIR or /tmp/raybatch-cluster-UID).")


def _when(seconds_or_ms) -> str:
    if not seconds_or_ms:
        return "-"
    value = seconds_or_ms / 1000 if seconds_or_ms > 1e11 else seconds_or_ms  # Ray reports ms
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def submit(spec: str = typer.Argument(..., metavar="SPEC", help="Job or train spec (YAML)"),
           address: Optional[str] = AddressOption,
           date: Optional[str] = typer.Option(None, "--date", metavar="YYYY-MM-DD", help="Fills {date} in "
                                              "paths (default: today, UTC, fixed at submit time)."),
           set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                                    help="Override a spec key by dotted path; repeatable."),
           wait: bool = typer.Option(False, "--wait", help="Follow the job's logs until it ends; exit 0 if it "
                                     "succeeded, 1 if it failed or was stopped, 3 if its lock was held."),
           connect_timeout: float = typer.Option(60.0, "--connect-timeout", metavar="SECONDS", help="Keep "
                                                 "retrying this long while the cluster is starting.")) -> None:
    """Submit a job, or a fine-tuning (a spec with train:), to a Ray cluster (Jobs API); prints the job id."""
    from jobs.spec import is_train_spec, parse_spec, read_spec_mapping, today_utc
    from jobs.train.spec import parse_train_spec

    try:
        date = date or today_utc()
        if spec == "-":
            raise SpecError("submit ships the spec file with the project: give its path, not -")
        raw = read_spec_mapping(spec, set_ or [])
        training = is_train_spec(raw)
        # A bad spec or --set fails here, not on the cluster.
        job = (parse_train_spec if training else parse_spec)(raw, source=spec, date=date)
        from ray_cluster.submit import Cluster

        cluster = Cluster(address, connect_timeout=connect_timeout)
        job_id = cluster.submit(spec, date, set_ or [], job.name, "train" if training else "run")
        typer.echo(job_id)
        if not wait:
            typer.echo(f"follow it: raybatch logs {job_id} --follow --address {cluster.address}", err=True)
            return
        cluster.follow(job_id, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        details = cluster.wait(job_id)
    except OurErrors as exc:
        _fail(exc)
    from ray_cluster.submit import status_name

    status = status_name(details)
    # Ray appends the driver's last logs to the message; they were just streamed, keep the first clause.
    message = (details.message or "").strip()
    message = message.splitlines()[0].split(", last available logs")[0] if message else ""
    typer.echo(f"job {job_id}: {status}" + (f": {message}" if status != "SUCCEEDED" and message else ""))
    raise typer.Exit(_exit_code(status, message))


def _exit_code(status: str, message: str) -> int:
    """0 succeeded, 3 the driver found the job's lock held (cron: the previous run still going),
    1 any other failure or a stop."""
    import re

    if status == "SUCCEEDED":
        return 0
    if status == "FAILED" and re.search(r"exit code 3\b", message):
        return 3
    return 1


def status(job_id: str = typer.Argument(..., metavar="JOB"), address: Optional[str] = AddressOption,
           as_json: bool = JsonOption) -> None:
    """Show a job's status, times and entrypoint."""
    from ray_cluster.submit import Cluster, status_name

    try:
        details = Cluster(address).info(job_id)
    except OurErrors as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({"job": job_id, "status": status_name(details), "message": details.message or None,
                               "started": _when(details.start_time), "ended": _when(details.end_time),
                               "entrypoint": redact_uri(details.entrypoint or "")}))
        return
    typer.echo(f"{job_id}: {status_name(details)}")
    if details.message:
        typer.echo(f"  message:    {details.message}")
    typer.echo(f"  started:    {_when(details.start_time)}")
    typer.echo(f"  ended:      {_when(details.end_time)}")
    typer.echo(f"  entrypoint: {redact_uri(details.entrypoint or '')}")


def logs(job_id: str = typer.Argument(..., metavar="JOB"), address: Optional[str] = AddressOption,
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until the job ends.")) -> None:
    """Print a job's driver logs."""
    from ray_cluster.submit import Cluster

    try:
        cluster = Cluster(address)
        if follow:
            cluster.follow(job_id, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        else:
            sys.stdout.write(cluster.logs(job_id))
    except OurErrors as exc:
        _fail(exc)


def stop(job_id: str = typer.Argument(..., metavar="JOB"), address: Optional[str] = AddressOption) -> None:
    """Stop a running job (nothing is published: the output stays uncommitted)."""
    from ray_cluster.submit import Cluster, status_name

    try:
        cluster = Cluster(address)
        if cluster.stop(job_id):
            typer.echo(f"{job_id}: stop requested")
        else:
            typer.echo(f"{job_id}: already {status_name(cluster.info(job_id))}")
    except OurErrors as exc:
        _fail(exc)


def list_jobs(address: Optional[str] = AddressOption) -> None:
    """List the cluster's jobs, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from ray_cluster.submit import Cluster, status_name

    try:
        jobs = Cluster(address).list()
    except OurErrors as exc:
        _fail(exc)
    table = Table(title=f"{len(jobs)} job(s)")
    for column in ("job", "status", "started", "entrypoint"):
        table.add_column(column, overflow="fold")
    for job in sorted(jobs, key=lambda j: j.start_time or 0):
        table.add_row(job.submission_id or job.job_id or "-", status_name(job), _when(job.start_time),
                      redact_uri(job.entrypoint or ""))
    Console(width=max(Console().width, 140)).print(table)


cluster_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                          help="A local multi-node Ray cluster on 127.0.0.1 (token auth) for tests and demos.")


@cluster_app.command("up")
def cluster_up(workers: int = typer.Option(1, "--workers", min=0, help="Worker nodes besides the head."),
               cpus: int = typer.Option(1, "--cpus", min=1, help="CPUs each node offers."),
               port: Optional[int] = typer.Option(None, "--port", help="GCS port (default 6379, or a free one)."),
               dashboard_port: Optional[int] = typer.Option(None, "--dashboard-port",
                                                            help="Dashboard port (default 8265, or a free one)."),
               directory: Optional[Path] = ClusterDirOption) -> None:
    """Start a head and N worker nodes on 127.0.0.1 with token auth, using this project's Python."""
    from ray_cluster import local

    try:
        cluster = local.up(workers, root=directory, cpus_per_node=cpus, port=port, dashboard_port=dashboard_port)
    except OurErrors as exc:
        _fail(exc)
    typer.echo(f"dashboard: {cluster.dashboard_url}")
    typer.echo(f"address: {cluster.address}")
    typer.echo(f"nodes: head + {workers} worker(s), {cpus} CPU(s) each; state and logs: {cluster.root}", err=True)
    typer.echo(f"submit: raybatch submit SPEC --address {cluster.dashboard_url}", err=True)


@cluster_app.command("down")
def cluster_down(directory: Optional[Path] = ClusterDirOption) -> None:
    """Stop the local cluster that `cluster up` started (and only that one)."""
    from ray_cluster import local

    stopped = local.down(directory)
    typer.echo(f"stopped {stopped} process(es)" if stopped else "no local cluster running")


def register(app: typer.Typer) -> None:
    """Add the cluster commands to the main app."""
    app.command()(submit)
    app.command()(status)
    app.command()(logs)
    app.command()(stop)
    app.command("list")(list_jobs)
    app.add_typer(cluster_app, name="cluster")

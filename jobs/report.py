"""Human summaries of a run's manifest (terminal table)."""

from __future__ import annotations


def print_summary(manifest: dict, output_path: str) -> None:
    """Print where the output is and a table of rows in/out/dead, seconds and rows/s per stage."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    seconds = manifest.get("seconds") or 0.0
    rate = manifest["rows_in"] / seconds if seconds else 0.0
    table = Table(title=f"{manifest.get('name')}: {manifest['rows_in']} rows in, {manifest['rows_out']} out, "
                        f"{manifest['rows_dead_letter']} dead letter, {seconds:.1f}s ({rate:,.0f} rows/s)")
    for column in ("stage", "rows in", "rows out", "dead", "seconds", "rows/s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in manifest["stages"]:
        table.add_row(stage["name"], str(stage["rows_in"]), str(stage["rows_out"]), str(stage["rows_dead"]),
                      f"{stage['seconds']:.2f}", f"{stage.get('rows_per_second', 0):,.0f}")
    console.print(table)
    if manifest.get("shards_reused"):
        console.print(f"resumed: reused {manifest['shards_reused']} of {manifest['shards']} shard(s) "
                      f"from an interrupted run")
    console.print(f"output: {output_path}/data ({len(manifest['files'])} file(s))")
    if manifest["rows_dead_letter"]:
        console.print(f"dead letter: {output_path}/_dead_letter ({manifest['rows_dead_letter']} row(s))")
    console.print(f"manifest: {output_path}/_manifest.json")

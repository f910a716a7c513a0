"""Human summaries of a run's manifest: the terminal table after a run, and `raybatch report`
(terminal summary plus OUTPUT/report.html with inline SVG plots, readable offline)."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def print_summary(manifest: dict, output_path: str) -> None:
    """Print where the output is and a table of rows in/out/dead, seconds and rows/s per stage."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    seconds = manifest.get("seconds") or 0.0
    rate = manifest["rows_in"] / seconds if seconds else 0.0
    table = Table(title=f"{manifest.get('name')}: {manifest['rows_in']} rows in, {manifest['rows_out']} out, "
                        f"{manifest['rows_dead_letter']} dead letter, {manifest.get('rows_filtered', 0)} filtered, "
                        f"{seconds:.1f}s ({rate:,.0f} rows/s)")
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
    if manifest.get("rows_filtered"):
        console.print(f"filtered: {output_path}/_filtered ({manifest['rows_filtered']} row(s) removed on purpose)")
    console.print(f"manifest: {output_path}/_manifest.json")


# ---- `raybatch report OUTPUT`: the morning view of a committed output ------------------------

REPORT_FILE = "report.html"


@dataclass
class ReportData:
    """What the report shows, read from a committed output (manifest first, then its files)."""

    output: Path
    manifest: dict
    committed: bool
    column: str | None
    lengths: "np.ndarray"  # characters per output row in `column`
    dead_lengths: "np.ndarray"  # the same for dead-letter rows that kept the column
    parts: list[tuple[float, int, str]]  # (seconds after started_at, rows, kind) per written part
    reused_parts: int  # parts older than this run (reused shards of an interrupted run)
    dead_by_cause: list[tuple[str, str, int]]  # (stage, error_type, rows), most rows first
    missing: list[str] = field(default_factory=list)  # manifest files absent on disk
    files_root: Path | None = None  # where the files were read (staging, while a run writes its report)


def _read_columns(path: Path, columns: list[str]):
    """One file's columns, read as one file (pq.read_table would load the dataset API for it)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def _lengths_of(paths: list[Path], column: str) -> list["np.ndarray"]:
    """Text lengths of `column` in each file that has it, files read in parallel (Parquet decodes
    outside the GIL; a run waits for its report before it publishes)."""
    import pyarrow.parquet as pq
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path):
        return _text_lengths(_read_columns(path, [column])[column]) if column in pq.read_schema(path).names else None

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return [found for found in pool.map(one, paths) if found is not None]


def load_report(output: str | Path, column: str | None = None, manifest: dict | None = None) -> ReportData:
    """Read the manifest and the files it lists (never a directory listing: the manifest is the
    commit). The parts' write times (`written_at`) give the throughput over time. A run passes its
    manifest and its staging folder, to write the report before the output is published."""
    import numpy as np
    import pyarrow.parquet as pq

    from jobs.errors import InputDataError

    output = Path(output)
    sealing = manifest is not None
    if manifest is None:
        try:
            manifest = json.loads((output / "_manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputDataError(f"{output}: no _manifest.json here; give a committed raybatch output folder") \
                from None
        except (OSError, ValueError) as exc:
            raise InputDataError(f"{output}/_manifest.json: unreadable: {exc}") from None
    started = _parse_time(manifest.get("started_at"))
    missing: list[str] = []
    parts: list[tuple[float, int, str]] = []
    reused = 0
    for kind, entries in (("data", manifest.get("files", [])), ("dead_letter", manifest.get("dead_letter_files", []))):
        for entry in entries:
            path = output / entry["path"]
            if not path.exists():
                missing.append(entry["path"])
                continue
            mtime = entry["written_at"] if "written_at" in entry else path.stat().st_mtime
            if started is not None and mtime < started - 1:  # started_at has whole seconds
                reused += 1
                continue
            parts.append((mtime - started if started is not None else 0.0, int(entry["rows"]), kind))
    parts.sort()

    present = [output / f["path"] for f in manifest.get("files", []) if f["path"] not in missing]
    if column and present and column not in (names := pq.read_schema(present[0]).names):
        raise InputDataError(f"--column {column!r} is not in the output; available: {', '.join(names)}")
    column = column or _default_column(manifest, present)
    lengths = _lengths_of(present, column) if column else []
    dead_lengths, causes = [], {}
    for entry in manifest.get("dead_letter_files", []):
        if entry["path"] in missing:
            continue
        path = output / entry["path"]
        names = pq.read_schema(path).names
        table = _read_columns(path, [c for c in ("stage", "error_type", column) if c and c in names])
        stages = table["stage"].to_pylist() if "stage" in names else ["?"] * table.num_rows
        types = table["error_type"].to_pylist() if "error_type" in names else ["?"] * table.num_rows
        for key in zip(stages, types):
            causes[key] = causes.get(key, 0) + 1
        if column and column in names:
            dead_lengths.append(_text_lengths(table[column]))
    empty = np.zeros(0, dtype=np.int64)
    return ReportData(
        output=output, manifest=manifest, committed=sealing or (output / "_SUCCESS").exists(), column=column,
        lengths=np.concatenate(lengths) if lengths else empty,
        dead_lengths=np.concatenate(dead_lengths) if dead_lengths else empty,
        parts=parts, reused_parts=reused,
        dead_by_cause=sorted(((s or "?", t or "?", n) for (s, t), n in causes.items()), key=lambda x: (-x[2], x[:2])),
        missing=missing, files_root=output)


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _default_column(manifest: dict, files: list[Path]) -> str | None:
    """The text the job worked on: the first stage's `column`, else the first string column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not files:
        return None
    schema = pq.read_schema(files[0])
    for stage in (manifest.get("spec") or {}).get("stages", []):
        if isinstance(stage.get("column"), str) and stage["column"] in schema.names:
            return stage["column"]
    for field_ in schema:
        if field_.name != "row_id" and (pa.types.is_string(field_.type) or pa.types.is_large_string(field_.type)):
            return field_.name
    return None


def _text_lengths(column) -> "np.ndarray":
    """Characters per value (bytes for binary columns); nulls are skipped."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        lengths = pc.binary_length(column)
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        lengths = pc.utf8_length(column)
    else:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(pc.drop_null(lengths).to_numpy(zero_copy_only=False), dtype=np.int64)


def throughput(data: ReportData, buckets: int = 30) -> tuple[list[float], list[float], float]:
    """Rows/s in equal time buckets from the run's start to its finish, by when each part was
    written (input rows: output and dead-letter rows both count). Returns (bucket ends, rates, width)."""
    started = _parse_time(data.manifest.get("started_at"))
    finished = _parse_time(data.manifest.get("finished_at"))
    last_part = max((t for t, _, _ in data.parts), default=0.0)
    span = max((finished - started) if started is not None and finished is not None else 0.0, last_part, 1.0)
    count = max(1, min(buckets, len(data.parts) * 2))
    width = span / count
    rows = [0] * count
    for offset, n, _ in data.parts:
        rows[min(count - 1, max(0, int(offset / width)))] += n
    return [width * (i + 1) for i in range(count)], [r / width for r in rows], width


def print_report(data: ReportData) -> None:
    """The terminal summary: print_summary's table plus when, dead letters by cause and lengths."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    m = data.manifest
    spec = m.get("spec") or {}
    state = "" if data.committed else "  (NOT COMMITTED: no _SUCCESS)"
    console.print(escape(f"job {m.get('name')} for {spec.get('date') or '-'}: started {m.get('started_at')}, "
                         f"finished {m.get('finished_at')}{state}"))
    print_summary(m, str(data.output))
    for stage, error_type, rows in data.dead_by_cause:
        console.print(escape(f"  dead letter: {rows} row(s) from stage {stage!r}: {error_type}"))
    if data.lengths.size:
        p50, p90, p99 = length_percentiles(data)
        console.print(f"{escape(repr(data.column))} length (chars): median {p50}, p90 {p90}, p99 {p99}, "
                      f"max {int(data.lengths.max())} over {data.lengths.size} row(s)")
    if data.parts:
        _, rates, _ = throughput(data)
        console.print(f"throughput: peak {max(rates):,.0f} rows/s, {len(data.parts)} part(s) written"
                      + (f", {data.reused_parts} reused from an interrupted run" if data.reused_parts else ""))
    for path in data.missing:
        console.print(f"[red]missing: {escape(path)} is in the manifest but not on disk[/red]")


def length_percentiles(data: ReportData) -> tuple[int, int, int]:
    """Median, p90 and p99 of the output rows' text lengths (data.lengths must not be empty)."""
    import numpy as np

    return tuple(int(x) for x in np.percentile(data.lengths, (50, 90, 99), method="lower"))


def report_summary(data: ReportData, page: str | None) -> dict:
    """What `raybatch report --json` prints: the counts, dead letters by cause, lengths and the page."""
    m = data.manifest
    lengths = None
    if data.lengths.size:
        p50, p90, p99 = length_percentiles(data)
        lengths = {"column": data.column, "median": p50, "p90": p90, "p99": p99, "max": int(data.lengths.max())}
    return {"output": str(data.output), "name": m.get("name"), "date": (m.get("spec") or {}).get("date"),
            "committed": data.committed, **{k: m.get(k, 0) for k in ("rows_in", "rows_out", "rows_dead_letter",
                                                                      "rows_filtered")},
            "seconds": m.get("seconds"), "stages": m.get("stages", []),
            "dead_letter_by_cause": [{"stage": s, "error_type": t, "rows": n} for s, t, n in data.dead_by_cause],
            "lengths": lengths, "missing_files": data.missing, "report": page}

"""Human summaries of a run's manifest: the terminal table after a run, and `raybatch report`
(terminal summary plus OUTPUT/report.html with inline SVG plots, readable offline)."""

from __future__ import annotations

import datetime as dt
import html
import json
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


def load_report(output: str | Path, column: str | None = None) -> ReportData:
    """Read the manifest and the files it lists (never a directory listing: the manifest is the
    commit). The parts' write times (`written_at`) give the throughput over time."""
    import numpy as np
    import pyarrow.parquet as pq

    from jobs.errors import InputDataError

    output = Path(output)
    try:
        manifest = json.loads((output / "_manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputDataError(f"{output}: no _manifest.json here; give a committed raybatch output folder") from None
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
    lengths = [_text_lengths(pq.read_table(p, columns=[column])[column])
               for p in present if column and column in pq.read_schema(p).names]
    dead_lengths, causes = [], {}
    for entry in manifest.get("dead_letter_files", []):
        if entry["path"] in missing:
            continue
        path = output / entry["path"]
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in ("stage", "error_type", column) if c and c in names])
        stages = table["stage"].to_pylist() if "stage" in names else ["?"] * table.num_rows
        types = table["error_type"].to_pylist() if "error_type" in names else ["?"] * table.num_rows
        for key in zip(stages, types):
            causes[key] = causes.get(key, 0) + 1
        if column and column in names:
            dead_lengths.append(_text_lengths(table[column]))
    empty = np.zeros(0, dtype=np.int64)
    return ReportData(
        output=output, manifest=manifest, committed=(output / "_SUCCESS").exists(), column=column,
        lengths=np.concatenate(lengths) if lengths else empty,
        dead_lengths=np.concatenate(dead_lengths) if dead_lengths else empty,
        parts=parts, reused_parts=reused,
        dead_by_cause=sorted(((s or "?", t or "?", n) for (s, t), n in causes.items()), key=lambda x: (-x[2], x[:2])),
        missing=missing)


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
        p50, p90, p99 = (int(x) for x in _percentiles(data.lengths, (50, 90, 99)))
        console.print(f"{escape(repr(data.column))} length (chars): median {p50}, p90 {p90}, p99 {p99}, "
                      f"max {int(data.lengths.max())} over {data.lengths.size} row(s)")
    if data.parts:
        _, rates, _ = throughput(data)
        console.print(f"throughput: peak {max(rates):,.0f} rows/s, {len(data.parts)} part(s) written"
                      + (f", {data.reused_parts} reused from an interrupted run" if data.reused_parts else ""))
    for path in data.missing:
        console.print(f"[red]missing: {escape(path)} is in the manifest but not on disk[/red]")


def _percentiles(values, qs):
    import numpy as np

    return np.percentile(values, qs, method="lower")


def write_html(data: ReportData) -> Path:
    """Write OUTPUT/report.html: one self-contained file (inline CSS and SVG, no scripts)."""
    m = data.manifest
    esc = html.escape
    spec = m.get("spec") or {}
    seconds = m.get("seconds") or 0.0
    sections = []

    status = "committed" if data.committed else "NOT committed (no _SUCCESS)"
    summary_rows = [("output", str(data.output)), ("status", status), ("date", spec.get("date") or "-"),
                    ("started", m.get("started_at", "-")), ("finished", m.get("finished_at", "-")),
                    ("seconds", f"{seconds:.1f}"), ("rows in", f"{m.get('rows_in', 0):,}"),
                    ("rows out", f"{m.get('rows_out', 0):,}"), ("dead letter", f"{m.get('rows_dead_letter', 0):,}"),
                    ("shards", f"{m.get('shards', '-')} ({m.get('shards_reused', 0)} reused)"),
                    ("input files", str(len(m.get("input_files", []))))]
    sections.append("<h2>Summary</h2>" + _table([], summary_rows, header=False))
    stage_rows = [(s["name"], f"{s['rows_in']:,}", f"{s['rows_out']:,}", f"{s['rows_dead']:,}", f"{s['seconds']:.2f}",
                   f"{s.get('rows_per_second', 0):,.0f}") for s in m.get("stages", [])]
    sections.append("<h2>Stages</h2>" + _table(["stage", "rows in", "rows out", "dead", "seconds", "rows/s"],
                                               stage_rows))

    if data.parts:
        ends, rates, width = throughput(data)
        note = (f"Input rows per second in {width:.1f}s steps, by when each part of the output was written "
                f"({len(data.parts)} part(s)).")
        if data.reused_parts:
            note += f" {data.reused_parts} part(s) reused from an interrupted run are not counted."
        digits = 0 if width >= 1 else 1
        chart = _bar_chart([f"{e:.{digits}f}" for e in ends], rates, "seconds since start", "rows/s")
        sections.append(f"<h2>Throughput</h2>{chart}<p class=note>{esc(note)}</p>")
    else:
        sections.append("<h2>Throughput</h2><p class=note>No parts written by this run.</p>")

    if data.lengths.size:
        import numpy as np

        high = int(max(data.lengths.max(), data.dead_lengths.max() if data.dead_lengths.size else 0))
        edges = np.histogram_bin_edges(np.array([0, max(high, 1)]), bins=min(30, max(high, 1)))
        counts, _ = np.histogram(data.lengths, bins=edges)
        labels = [f"{int(edges[i])}" for i in range(len(counts))]
        dead_counts = np.histogram(data.dead_lengths, bins=edges)[0] if data.dead_lengths.size else None
        p50, p90, p99 = (int(x) for x in _percentiles(data.lengths, (50, 90, 99)))
        note = (f"Characters in column '{data.column}' of {data.lengths.size:,} output row(s): median {p50}, "
                f"p90 {p90}, p99 {p99}, max {int(data.lengths.max())}.")
        if dead_counts is not None:
            note += f" Red: {data.dead_lengths.size:,} dead-letter row(s) with that column."
        chart = _bar_chart(labels, counts.tolist(), f"characters ({data.column})", "rows",
                           extra=dead_counts.tolist() if dead_counts is not None else None)
        sections.append(f"<h2>Text length</h2>{chart}<p class=note>{esc(note)}</p>")
    else:
        sections.append("<h2>Text length</h2><p class=note>No text column in the output.</p>")

    if data.dead_by_cause:
        labels = [f"{stage} / {error_type}" for stage, error_type, _ in data.dead_by_cause]
        counts = [rows for _, _, rows in data.dead_by_cause]
        sections.append("<h2>Dead letters by stage and error type</h2>" + _hbar_chart(labels, counts)
                        + _table(["stage", "error type", "rows"], [(s, t, f"{n:,}") for s, t, n in data.dead_by_cause]))
    else:
        sections.append("<h2>Dead letters by stage and error type</h2><p class=note>None: every row made it.</p>")

    if data.missing:
        sections.append("<h2>Missing files</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in data.missing) + "</ul>")
    sections.append("<h2>Spec</h2><pre>" + esc(json.dumps(spec, indent=2)) + "</pre>")
    sections.append("<h2>Versions</h2>" + _table(["package", "version"], sorted((m.get("versions") or {}).items())))

    title = f"raybatch report: {m.get('name')} {spec.get('date') or ''}".strip()
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{''.join(sections)}</body></html>\n")
    path = data.output / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}.note{color:#555}"
        "pre{background:#f6f6f6;padding:8px;overflow:auto}svg text{font:11px sans-serif;fill:#333}")


def _table(columns: list[str], rows, header: bool = True) -> str:
    esc = html.escape
    head = "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _nice_max(value: float, ticks: int = 4) -> float:
    """An axis maximum at or above `value` whose `ticks` steps are round (1, 2, 2.5, 5 × 10^k)."""
    import math

    if value <= 0:
        return float(ticks)
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return step * ticks


def _bar_chart(labels: list[str], values: list[float], xlabel: str, ylabel: str,
               extra: list[float] | None = None, width: int = 900, height: int = 260) -> str:
    """Vertical bars with a y axis (4 ticks) and every few x labels; `extra` stacks red bars."""
    esc = html.escape
    left, right, top, bottom = 60, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [v + (extra[i] if extra else 0) for i, v in enumerate(values)]
    top_value = _nice_max(max(totals, default=0))
    slot = plot_w / max(len(values), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(ylabel)} by {esc(xlabel)}">']
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(top_value * i / 4)}</text>')
    every = max(1, len(labels) // 10)
    for i, value in enumerate(values):
        x = left + i * slot + slot * 0.1
        h = plot_h * value / top_value
        y = top + plot_h - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" fill="#4c78a8">'
                     f'<title>{esc(labels[i])}: {_fmt(value)}</title></rect>')
        if extra and extra[i]:
            h2 = plot_h * extra[i] / top_value
            parts.append(f'<rect x="{x:.1f}" y="{y - h2:.1f}" width="{slot * 0.8:.1f}" height="{h2:.1f}" '
                         f'fill="#e45756"><title>{esc(labels[i])}: {_fmt(extra[i])} dead letter</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                         f'{esc(labels[i])}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#888"/>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>'
                 f'<text x="12" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">{esc(ylabel)}</text></svg>')
    return "".join(parts)


def _hbar_chart(labels: list[str], values: list[int], width: int = 900) -> str:
    """Horizontal bars, one per label, longest first."""
    esc = html.escape
    label_w, row_h = 280, 22
    height = row_h * len(values) + 10
    top_value = max(values, default=1) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="dead letters by stage and error type">']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 5 + i * row_h
        w = (width - label_w - 70) * value / top_value
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#e45756">'
                     f'<title>{esc(label)}: {value}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"

"""report.html: one self-contained page (inline CSS and SVG, no scripts) from a `ReportData`:
summary, stages, throughput over time, lengths of the text column, dead letters by cause, the spec."""

from __future__ import annotations

import html
from pathlib import Path

import yaml

from jobs.report import REPORT_FILE, ReportData, length_percentiles, throughput


def write_html(data: ReportData, path: Path | None = None) -> Path:
    """Write the report (OUTPUT/report.html by default): one self-contained file (inline CSS and
    SVG, no scripts)."""
    m = data.manifest
    esc = html.escape
    spec = m.get("spec") or {}
    seconds = m.get("seconds") or 0.0
    sections = []

    status = "committed" if data.committed else "NOT committed (no _SUCCESS)"
    summary_rows = [("output", str(data.output)), ("status", status), ("date", spec.get("date") or "-"),
                    ("started", m.get("started_at", "-")), ("finished", m.get("finished_at", "-")),
                    ("seconds", f"{seconds:.1f}"),
                    ("time", ", ".join(f"{k.replace('_', ' ')} {v:.1f}s" for k, v in (m.get("phases") or {}).items())
                     or "-"), ("rows in", f"{m.get('rows_in', 0):,}"),
                    ("rows out", f"{m.get('rows_out', 0):,}"), ("dead letter", f"{m.get('rows_dead_letter', 0):,}"),
                    ("filtered", f"{m.get('rows_filtered', 0):,}"),
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
        p50, p90, p99 = length_percentiles(data)
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
    sections.append("<h2>Spec</h2><pre>" + esc(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)) + "</pre>")
    sections.append("<h2>Versions</h2>" + _table(["package", "version"], sorted((m.get("versions") or {}).items())))

    title = f"raybatch report: {m.get('name')} {spec.get('date') or ''}".strip()
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{''.join(sections)}</body></html>\n")
    path = path or data.output / REPORT_FILE
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

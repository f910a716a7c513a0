"""report.html: one self-contained page (inline CSS and SVG, no scripts) from a `ReportData`:
summary, stages, throughput over time, lengths of the text column, dead letters by cause, the spec."""

from __future__ import annotations

import html
from pathlib import Path

import yaml

from jobs.report import REPORT_FILE, ReportData, length_percentiles, throughput
from jobs.report_charts import bar_chart, hbar_chart, table
from jobs.report_stages import stage_sections, throughput_section


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
    sections.append("<h2>Summary</h2>" + table([], summary_rows, header=False))
    stage_rows = [(s["name"], f"{s['rows_in']:,}", f"{s['rows_out']:,}", f"{s['rows_dead']:,}", f"{s['seconds']:.2f}",
                   f"{s.get('rows_per_second', 0):,.0f}") for s in m.get("stages", [])]
    sections.append("<h2>Stages</h2>" + table(["stage", "rows in", "rows out", "dead", "seconds", "rows/s"],
                                               stage_rows))

    over_time = throughput_section(m)
    if over_time:
        sections.append(over_time)
    elif data.parts:
        ends, rates, width = throughput(data)
        note = (f"Input rows per second in {width:.1f}s steps, by when each part of the output was written "
                f"({len(data.parts)} part(s)).")
        if data.reused_parts:
            note += f" {data.reused_parts} part(s) reused from an interrupted run are not counted."
        digits = 0 if width >= 1 else 1
        chart = bar_chart([f"{e:.{digits}f}" for e in ends], rates, "seconds since start", "rows/s")
        sections.append(f"<h2>Throughput</h2>{chart}<p class=note>{esc(note)}</p>")
    else:
        sections.append("<h2>Throughput</h2><p class=note>No parts written by this run.</p>")

    sections.extend(stage_sections(data.files_root or data.output, m))
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
        chart = bar_chart(labels, counts.tolist(), f"characters ({data.column})", "rows",
                           extra=dead_counts.tolist() if dead_counts is not None else None)
        sections.append(f"<h2>Length of the input column {esc(data.column)}</h2>{chart}"
                        f"<p class=note>{esc(note)}</p>")

    if data.dead_by_cause:
        labels = [f"{stage} / {error_type}" for stage, error_type, _ in data.dead_by_cause]
        counts = [rows for _, _, rows in data.dead_by_cause]
        sections.append("<h2>Dead letters by stage and error type</h2>" + hbar_chart(labels, counts)
                        + table(["stage", "error type", "rows"], [(s, t, f"{n:,}") for s, t, n in data.dead_by_cause]))
    else:
        sections.append("<h2>Dead letters by stage and error type</h2><p class=note>None: every row made it.</p>")

    if data.missing:
        sections.append("<h2>Missing files</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in data.missing) + "</ul>")
    if m.get("spec_text"):
        sections.append("<h2>Spec, as written</h2><pre>" + esc(m["spec_text"]) + "</pre>")
    else:
        sections.append("<h2>Spec</h2><pre>" + esc(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)) + "</pre>")
    sections.append("<h2>Versions</h2>" + table(["package", "version"], sorted((m.get("versions") or {}).items())))

    title = f"raybatch report: {m.get('name')} {spec.get('date') or ''}".strip()
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{''.join(sections)}</body></html>\n")
    path = path or data.output / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}.note{color:#555}"
        ".text td,.text th{text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:8px;overflow:auto}svg text{font:11px sans-serif;fill:#333}")

"""report.html's middle: rows/s over time per stage (from the progress the run recorded), then a
section per stage in the terms that matter for its kind, and sample rows of the output.

- augment: copies made and dropped per op, why rows were kept without copies, an edit-rate
  histogram, before/after examples;
- model stages: tokens in and out, tokens/s, padding efficiency, engine and decoding mode;
- every stage: its other counters (kinds found, reasons), and the lengths (or, for short codes
  such as a language, the values) of the columns it wrote.
"""

from __future__ import annotations

import html
from pathlib import Path

from jobs.report_charts import bar_chart, histogram, line_chart, table

BASE_KEYS = {"index", "name", "rows_in", "rows_out", "rows_dead", "rows_filtered", "seconds", "rows_per_second"}
MODEL_KEYS = ("model", "revision", "engine", "decoding", "tokens_in", "tokens_out", "tokens_in_padded",
              "generate_seconds", "tokens_out_per_second", "model_load_seconds", "model_loads")
OP_OUTCOMES = ("made", "retries", "dropped_duplicate", "dropped_edit_rate", "no_candidates", "unsupported_language")
SAMPLE_ROWS = 5
READ_LIMIT = 200_000  # rows read for the charts and examples: enough to show a shape, cheap at 10M
LINEAGE = {"parent_id", "aug_op", "aug_seed", "is_augmented", "edit_rate", "aug_skipped"}


def rates_over_time(progress: list[dict], buckets: int = 40) -> dict[str, list[tuple[float, float]]]:
    """Input rows per second per stage, in equal time steps from the run's start to its last block."""
    end = max((p[0] for s in progress for p in s["points"]), default=0.0)
    if end <= 0:
        return {}
    width = end / buckets
    series = {}
    for stage in progress:
        points = sorted(stage["points"])
        rates, done_before, i = [], 0, 0
        for b in range(buckets):
            upto = (b + 1) * width
            done = done_before
            while i < len(points) and points[i][0] <= upto + 1e-9:
                done = points[i][1]
                i += 1
            rates.append(((b + 0.5) * width, (done - done_before) / width))
            done_before = done
        series[stage["label"]] = [(0.0, 0.0), *rates]
    return series


def throughput_section(manifest: dict) -> str | None:
    """Rows/s over time per stage and the phases, or None when the run recorded no progress."""
    series = rates_over_time(manifest.get("progress") or [])
    if not series:
        return None
    spans, start = [], 0.0
    for name, seconds in (manifest.get("phases") or {}).items():
        spans.append((start, start + seconds, name.replace("_", " ")))
        start += seconds
    note = ("Input rows per second through each stage, from what the workers reported after each block "
            "(seconds since the run started), over the run's phases: "
            + (", ".join(f"{label} {a:.1f}–{b:.1f}s" for a, b, label in spans) or "-") + ".")
    loads = [f"{s['name']} {s['model_load_seconds'] / s['model_loads']:.1f}s" for s in manifest.get("stages", [])
             if s.get("model_loads")]
    if loads:
        note += f" Model load per actor, within work: {', '.join(loads)}."
    chart = line_chart(series, "seconds since start", "input rows/s", spans=spans)
    return f"<h2>Throughput over time</h2>{chart}<p class=note>{html.escape(note)}</p>"


def read_output(output: Path, manifest: dict, limit: int = READ_LIMIT):
    """The first `limit` output rows (the manifest's files, in order), or None without any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, rows = [], 0
    for entry in manifest.get("files", []):
        path = output / entry["path"]
        if rows >= limit or not path.exists():
            continue
        table = pq.read_table(path)
        tables.append(table.slice(0, limit - rows))
        rows += tables[-1].num_rows
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _masked(rows: list[list], specs: list[dict]) -> tuple[list[list[str]], bool]:
    """A few rows for the page, each value as short text, masked as the dead letter is when the job
    has a redact stage (its scrubber finds personal data in every column: ids, lists, chats too).
    Returns the rows and whether a scrubber ran."""
    import pyarrow as pa

    from jobs.stages.registry import stage_class

    width = max((len(r) for r in rows), default=0)
    table = pa.table({f"c{i}": pa.array([_text(r[i]) for r in rows], pa.string()) for i in range(width)})
    scrubbed = False
    for params in specs:
        try:
            cls = stage_class(params["use"])
            scrub = cls.scrubber(cls.Params.model_validate(params))
        except Exception:
            scrub = None
        if scrub is not None:
            try:
                table = scrub(table)
            except Exception as exc:  # its model cannot load here: show nothing rather than raw rows
                note = f"(hidden: {params['use']} could not run here: {type(exc).__name__})"
                hidden = pa.array([note] * table.num_rows)
                table = pa.table({name: hidden for name in table.column_names})
            scrubbed = True
    columns = [table[f"c{i}"].to_pylist() for i in range(width)]
    return [[_short(column[n], 120) for column in columns] for n in range(len(rows))], scrubbed


def stage_sections(output: Path, manifest: dict) -> list[str]:
    """One section per stage, then sample rows of the output."""
    specs = (manifest.get("spec") or {}).get("stages", [])
    rows = read_output(output, manifest)
    sections = []
    for stats in manifest.get("stages", []):
        params = specs[stats["index"]] if stats["index"] < len(specs) else {}
        parts = [_model_part(stats), _augment_part(stats, params, rows, specs), _counts_part(stats),
                 _columns_part(stats, params, rows, specs)]
        title = f"Stage {stats['index']}: {stats['name']}"
        if params.get("column"):
            title += f" (column {params['column']})"
        sections.append(f"<h2>{html.escape(title)}</h2>" + "".join(p for p in parts if p))
    if rows is not None and rows.num_rows:
        columns = [c for c in rows.column_names if c not in LINEAGE or c == "aug_op"]
        sample = rows.slice(0, SAMPLE_ROWS).select(columns).to_pylist()
        shown, masked = _masked([[r[c] for c in columns] for r in sample], specs)
        note = ("Personal data masked as in the dead letter (the job has a redact stage)." if masked else
                "As the output holds them: the job has no redact stage.")
        sections.append("<h2>Sample rows of the output</h2>" + table(columns, shown, text=True)
                        + f"<p class=note>{note}</p>")
    return sections


def _text(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _short(value, width: int = 80) -> str:
    """Cut after masking, so a value is never cut where the scrubber would no longer know it."""
    text = _text(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def _model_part(stats: dict) -> str | None:
    if "tokens_in" not in stats:
        return None
    padded = stats.get("tokens_in_padded") or 0
    facts = [("model", stats.get("model", "-")), ("revision", stats.get("revision", "-")),
             ("engine", stats.get("engine", "-")), ("decoding mode", stats.get("decoding", "-")),
             ("tokens in", f"{stats['tokens_in']:,}"), ("tokens out", f"{stats.get('tokens_out', 0):,}"),
             ("tokens out/s", f"{stats.get('tokens_out_per_second', 0):,.1f}"),
             ("padding efficiency", f"{stats['tokens_in'] / padded:.0%}" if padded else "-")]
    if stats.get("model_loads"):
        facts.append(("model load", f"{stats['model_load_seconds'] / stats['model_loads']:.1f}s per actor, "
                                    f"{stats['model_loads']} actor(s)"))
    return "<h3>Model</h3>" + table([], facts, header=False)


def _augment_part(stats: dict, params: dict, rows, specs: list[dict]) -> str | None:
    """Copies per op, the copies' edit rates, and copies next to their parents."""
    ops = sorted({key[3:-len(outcome) - 1] for key in stats for outcome in OP_OUTCOMES
                  if key.startswith("op_") and key.endswith("_" + outcome)})
    if params.get("use") != "augment" and not ops:
        return None
    parts = []
    if ops:
        parts.append("<h3>Copies per op</h3>" + table(
            ["op", *(o.replace("_", " ") for o in OP_OUTCOMES)],
            [[op, *(f"{stats.get(f'op_{op}_{o}', 0):,}" for o in OP_OUTCOMES)] for op in ops]))
    if rows is not None and "edit_rate" in rows.column_names and "is_augmented" in rows.column_names:
        import pyarrow.compute as pc

        copies = rows.filter(pc.fill_null(rows["is_augmented"], False))
        rates = copies["edit_rate"].drop_null().to_numpy(zero_copy_only=False)
        if rates.size:
            parts.append("<h3>Edit rate of the copies</h3>" + histogram(rates, 20, "edit rate", "copies", 0.0,
                                                                          max(1.0, float(rates.max()))))
        parts.append(_examples(rows, copies, params.get("column"), specs))
    return "".join(p for p in parts if p)


def _examples(rows, copies, column: str | None, specs: list[dict]) -> str | None:
    """A handful of copies next to their parents (when the output keeps the originals)."""
    if not column or column not in rows.column_names or not copies.num_rows:
        return None
    chosen = copies.slice(0, SAMPLE_ROWS).to_pylist()
    parents = {}
    if "row_id" in rows.column_names:  # only the shown copies' parents, not a dict of every row read
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = pa.array([c.get("parent_id") for c in chosen], rows["row_id"].type)
        found = rows.filter(pc.is_in(rows["row_id"], value_set=wanted))
        parents = dict(zip(found["row_id"].to_pylist(), found[column].to_pylist()))
    shown, _ = _masked([[c.get("aug_op") or "-", parents.get(c.get("parent_id"), "(original not kept)"), c[column]]
                        for c in chosen], specs)
    return "<h3>Before and after</h3>" + table(["op", "before", "after"], shown, text=True)


def _counts_part(stats: dict) -> str | None:
    """The stage's other counters: kinds found, reasons rows were skipped, kept or failed."""
    counts = [(k, v) for k, v in stats.items() if k not in BASE_KEYS and k not in MODEL_KEYS
              and not (k.startswith("op_") and any(k.endswith("_" + o) for o in OP_OUTCOMES))
              and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not counts:
        return None
    return "<h3>Counts by kind and reason</h3>" + table(
        ["counter", "value"], [(k.replace("_", " "), f"{v:,}" if isinstance(v, int) else f"{v:,.3f}")
                               for k, v in sorted(counts)])


def _columns_part(stats: dict, params: dict, rows, specs: list[dict]) -> str | None:
    """Lengths of each text column the stage wrote (values, for short codes)."""
    if rows is None or not params.get("use"):
        return None
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from jobs.stages.registry import stage_class

    try:
        cls = stage_class(params["use"])
        written = cls.output_columns(cls.Params.model_validate(params))
    except Exception:
        return None
    parts = []
    for name in written:
        if name not in rows.column_names or name in LINEAGE or not pa.types.is_string(rows[name].type):
            continue
        values = rows[name].drop_null()
        if not len(values):
            continue
        lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
        if lengths.max() <= 8:  # codes (a language, a label): how often each value appears
            counted = sorted(pc.value_counts(values).to_pylist(), key=lambda c: -c["counts"])[:20]
            labels, _ = _masked([[c["values"]] for c in counted], specs)
            parts.append(f"<h3>Values of {html.escape(name)}</h3>" + bar_chart(
                [label for label, in labels], [c["counts"] for c in counted], name, "rows"))
        else:
            p50, p90 = (int(np.percentile(lengths, q)) for q in (50, 90))
            parts.append(f"<h3>Length of {html.escape(name)}</h3>"
                         + histogram(lengths, 30, f"characters ({name})", "rows", 0.0)
                         + f"<p class=note>{len(lengths):,} row(s): median {p50}, p90 {p90}, max {lengths.max()} "
                           f"characters.</p>")
    return "".join(parts) or None

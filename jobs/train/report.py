"""A fine-tuning run's report.html: train and eval loss over the steps, the eval metrics, the data,
the model and the hyperparameters. Written into staging before publishing and listed in the
manifest, so the committed output never changes afterwards. One file, inline SVG, no scripts."""

from __future__ import annotations

import html
import json
from pathlib import Path

from jobs.commit.layout import DERIVED_FILES

REPORT_FILE = DERIVED_FILES[0]  # report.html
_COLORS = {"train loss": "#1f77b4", "eval loss": "#d62728"}
_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #ddd;"
        "text-align:left}.note{color:#555}pre{background:#f6f6f6;padding:8px;overflow:auto}"
        "svg text{font:11px sans-serif;fill:#333}")


def write_train_report(folder: Path, manifest: dict) -> Path:
    esc = html.escape
    m = manifest
    resumed = f" (resumed from step {m['resumed_from_step']})" if m.get("resumed_from_step") else ""
    summary = [("job", m["name"]), ("task", m["task"]), ("steps", f"{m['steps']}{resumed}"),
               ("workers", m["world_size"]), ("seconds", f"{m['seconds']:.1f}"), ("finished", m["finished_at"]),
               ("data", f"{m['data']['path']} ({', '.join(f'{k} {v}' for k, v in sorted(m['data']['rows'].items()))})"),
               ("model", f"{m['model']['source']} ({m['model']['revision']})")]
    series = {"train loss": m["train_loss"], "eval loss": m["eval_loss"]}
    metrics = [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in sorted(m["eval_metrics"].items())]
    sections = [
        "<h2>Summary</h2>" + _table(summary),
        "<h2>Loss</h2>" + _line_chart({k: v for k, v in series.items() if v}),
        "<h2>Eval metrics (last evaluation)</h2>" + (_table(metrics) if metrics else "<p class=note>No eval split.</p>"),
        "<h2>Hyperparameters</h2><pre>" + esc(json.dumps(m["hyperparameters"], indent=2)) + "</pre>",
        "<h2>Versions</h2>" + _table(sorted(m["versions"].items())),
    ]
    title = f"raybatch train report: {m['name']} {m['spec'].get('date', '')}".strip()
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{''.join(sections)}</body></html>\n")
    path = folder / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


def train_manifest(output: Path) -> dict | None:
    """The manifest of a committed fine-tuning output; None when `output` is not one."""
    manifest_path = Path(output) / "_manifest.json"
    if not (Path(output) / "_SUCCESS").is_file() or not manifest_path.is_file():
        return None
    m = json.loads(manifest_path.read_text(encoding="utf-8"))
    return m if m.get("kind") == "train" else None


def print_train_report(output: Path, echo) -> bool:
    """The losses and metrics of a committed fine-tuning output, and where its report is; False when
    `output` is not one."""
    m = train_manifest(output)
    if m is None:
        return False
    losses = m["train_loss"]
    echo(f"{m['name']}: {m['task']}, {m['steps']} steps on {m['world_size']} worker(s), {m['seconds']:.1f}s")
    if losses:
        echo(f"train loss: {losses[0]['loss']:.4g} at step {losses[0]['step']} → {losses[-1]['loss']:.4g} "
             f"at step {losses[-1]['step']}")
    for name, value in sorted(m["eval_metrics"].items()):
        echo(f"eval {name}: {value:.4g}" if isinstance(value, float) else f"eval {name}: {value}")
    echo(f"report: {Path(output) / REPORT_FILE}")
    return True


def _table(rows) -> str:
    esc = html.escape
    return "<table>" + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                               for row in rows) + "</table>"


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value`: round axis ticks."""
    import math

    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _line_chart(series: dict[str, list[dict]], width: int = 900, height: int = 300) -> str:
    """Loss against step, one polyline per series, with axes, ticks and a legend."""
    if not series:
        return "<p class=note>No loss was logged (fewer steps than logging_steps).</p>"
    left, right, top, bottom = 60, 20, 20, 40
    steps = [p["step"] for points in series.values() for p in points]
    losses = [p["loss"] for points in series.values() for p in points]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    y1 = _nice_max(max(losses))

    def x(step):
        return left + (step - x0) / (x1 - x0) * (width - left - right)

    def y(loss):
        return top + (1 - loss / y1) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>']
    for k in range(5):
        value = y1 * k / 4
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    for step in sorted(set(steps))[:: max(1, len(set(steps)) // 10)]:
        parts.append(f'<text x="{x(step):.1f}" y="{height - bottom + 16}" text-anchor="middle">{step}</text>')
    parts.append(f'<text x="{(width + left) / 2}" y="{height - 6}" text-anchor="middle">step</text>')
    for row, (name, points) in enumerate(series.items()):
        color = _COLORS.get(name, "#555")
        line = " ".join(f"{x(p['step']):.1f},{y(p['loss']):.1f}" for p in points)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
        parts += [f'<circle cx="{x(p["step"]):.1f}" cy="{y(p["loss"]):.1f}" r="3" fill="{color}"/>' for p in points]
        key_y = top + 16 * (row + 1)
        parts.append(f'<line x1="{width - right - 120}" y1="{key_y - 4}" x2="{width - right - 96}" y2="{key_y - 4}" '
                     f'stroke="{color}" stroke-width="3"/><text x="{width - right - 90}" y="{key_y}">{name}</text>')
    return "".join(parts) + "</svg>"

"""SVG charts and tables for report.html: inline, no scripts, readable offline."""

from __future__ import annotations

import html


def table(columns: list[str], rows, header: bool = True, text: bool = False) -> str:
    """An HTML table; `text` aligns every cell left (sentences, not numbers)."""
    esc = html.escape
    head = "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{' class=text' if text else ''}>{head}{body}</table>"


def nice_max(value: float, ticks: int = 4) -> float:
    """An axis maximum at or above `value` whose `ticks` steps are round (1, 2, 2.5, 5 × 10^k)."""
    import math

    if value <= 0:
        return float(ticks)
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return step * ticks


def bar_chart(labels: list[str], values: list[float], xlabel: str, ylabel: str,
               extra: list[float] | None = None, width: int = 900, height: int = 260) -> str:
    """Vertical bars with a y axis (4 ticks) and every few x labels; `extra` stacks red bars."""
    esc = html.escape
    left, right, top, bottom = 60, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [v + (extra[i] if extra else 0) for i, v in enumerate(values)]
    top_value = nice_max(max(totals, default=0))
    slot = plot_w / max(len(values), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(ylabel)} by {esc(xlabel)}">']
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(top_value * i / 4)}</text>')
    every = max(1, len(labels) // 10)
    for i, value in enumerate(values):
        x = left + i * slot + slot * 0.1
        h = plot_h * value / top_value
        y = top + plot_h - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" fill="#4c78a8">'
                     f'<title>{esc(labels[i])}: {fmt(value)}</title></rect>')
        if extra and extra[i]:
            h2 = plot_h * extra[i] / top_value
            parts.append(f'<rect x="{x:.1f}" y="{y - h2:.1f}" width="{slot * 0.8:.1f}" height="{h2:.1f}" '
                         f'fill="#e45756"><title>{esc(labels[i])}: {fmt(extra[i])} dead letter</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                         f'{esc(labels[i])}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#888"/>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>'
                 f'<text x="12" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">{esc(ylabel)}</text></svg>')
    return "".join(parts)


def hbar_chart(labels: list[str], values: list[int], width: int = 900) -> str:
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


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"


PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d")


def line_chart(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
               spans: list[tuple[float, float, str]] = (), width: int = 900, height: int = 260) -> str:
    """One line per series, with a legend; x and y start at 0. `spans` shade (start, end, label)
    ranges of x behind the lines (a run's phases)."""
    esc = html.escape
    left, right, top, bottom = 60, 150, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for values in series.values() for p in values]
    x_max = nice_max(max([x for x, _ in points] + [end for _, end, _ in spans], default=0))
    y_max = nice_max(max((y for _, y in points), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(ylabel)} by {esc(xlabel)}">']
    for n, (start, end, label) in enumerate(spans):
        x0, x1 = left + plot_w * start / x_max, left + plot_w * end / x_max
        parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0.5):.1f}" height="{plot_h}" '
                     f'fill="{("#f2f2f2", "#e8eef6")[n % 2]}"><title>{esc(label)}</title></rect>')
        if x1 - x0 > 7 * len(label):  # a label only where it fits
            parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{top + 12}" text-anchor="middle">{esc(label)}</text>')
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        x = left + plot_w * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(y_max * i / 4)}</text>'
                     f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{fmt(x_max * i / 4)}</text>')
    for n, (label, values) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        coords = " ".join(f"{left + plot_w * x / x_max:.1f},{top + plot_h - plot_h * y / y_max:.1f}"
                          for x, y in values)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2">'
                     f'<title>{esc(label)}</title></polyline>'
                     f'<rect x="{left + plot_w + 12}" y="{top + 4 + n * 18}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{left + plot_w + 30}" y="{top + 14 + n * 18}">{esc(label)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>'
                 f'<text x="12" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">{esc(ylabel)}</text></svg>')
    return "".join(parts)


def histogram(values, bins: int, xlabel: str, ylabel: str = "rows", low: float | None = None,
              high: float | None = None) -> str:
    """A bar chart of `values` (a numpy array) in `bins` equal steps."""
    import numpy as np

    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    counts, edges = np.histogram(values, bins=bins, range=(low, high if high > low else low + 1))
    digits = 0 if edges[1] - edges[0] >= 1 else 2
    return bar_chart([f"{e:.{digits}f}" for e in edges[:-1]], counts.tolist(), xlabel, ylabel)

"""`raybatch report`: the summary and report.html of a real run with dead letters, checked against
the committed files themselves."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs.plan import plan_job
from jobs.runner import run_job
from jobs.report import load_report, print_report, throughput
from jobs.report_html import write_html
from jobs.report_stages import rates_over_time
from jobs.spec import load_spec
from tests.conftest import ROOT, eda_sentences
from tests.helpers.jobs import read_output, write_spec

# Rows the clean stage must reject, with the error type it gives them.
BAD = {"bad-null": (None, "null"), "bad-empty": ("   \t ", "empty"), "bad-long-1": ("word " * 120, "too_long"),
       "bad-long-2": ("x" * 700, "too_long")}


@pytest.fixture(scope="module")
def committed(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "in").mkdir()
    rows = [(f"r{i}", text) for i, (_, text) in enumerate(eda_sentences(limit=400))]
    rows[10:10] = [(key, text) for key, (text, _) in BAD.items()]
    pq.write_table(pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}), tmp / "in" / "a.parquet")
    spec = write_spec(tmp / "job.yaml", {
        "name": "report-job", "input": {"path": str(tmp / "in"), "id_column": "id", "shard_rows": 60},
        "output": {"path": str(tmp / "out" / "{name}" / "{date}")},
        "stages": [{"use": "clean", "column": "text", "max_chars": 400}]})
    result = run_job(plan_job(load_spec(spec, [], "2026-01-31")))
    return result.output_path, len(rows)


def test_report_numbers_come_from_the_committed_files(committed):
    out, rows_in = committed
    data_rows, dead_rows, manifest = read_output(out)
    report = load_report(out)
    assert report.committed and report.column == "text" and not report.missing
    assert manifest["rows_in"] == rows_in == manifest["rows_out"] + manifest["rows_dead_letter"]
    # Dead letters by cause, as the dead-letter files say, and as the bad rows were built.
    assert {(s, t): n for s, t, n in report.dead_by_cause} == dict(Counter(
        zip(dead_rows["stage"].to_pylist(), dead_rows["error_type"].to_pylist())))
    assert dict(Counter(t for _, t in BAD.values())) == {t: n for _, t, n in report.dead_by_cause}
    # Lengths: one per output row, as pyarrow counts them.
    assert sorted(report.lengths.tolist()) == sorted(pc.utf8_length(data_rows["text"]).to_pylist())
    assert sorted(report.dead_lengths.tolist()) == sorted(len(t) for t, _ in BAD.values() if t is not None)
    # Throughput: every part this run wrote is on the timeline, and the buckets hold every input row.
    assert len(report.parts) == len(manifest["files"]) + len(manifest["dead_letter_files"])
    assert sum(n for _, n, _ in report.parts) == rows_in and report.reused_parts == 0
    _, rates, width = throughput(report)
    assert sum(rates) * width == pytest.approx(rows_in)


def test_the_run_wrote_report_html_with_its_data_and_lists_it(committed, tmp_path):
    out, _ = committed
    report = load_report(out)
    assert report.manifest["report"] == "report.html"
    path = os.path.join(out, "report.html")
    # Drawn again from the committed output, the page is the one the run wrote.
    assert write_html(report, tmp_path / "again.html").read_text() == open(path, encoding="utf-8").read()
    page = open(path, encoding="utf-8").read()
    assert f"<td>output</td><td>{out}</td>" in page and "NOT committed" not in page
    assert "name: report-job" in page and "{&quot;" not in page  # the spec as YAML, not a JSON dump


def test_report_html_is_self_contained_with_its_plots_and_the_spec_as_written(committed):
    out, rows_in = committed
    report = load_report(out)
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.findall(r"(?:src|href)\s*=|url\(|@import", page), "the report must not fetch anything"
    assert re.findall(r"<h2>(.*?)</h2>", page)[:7] == [
        "Summary", "Stages", "Throughput over time", "Stage 0: clean (column text)", "Sample rows of the output",
        "Length of the input column text", "Dead letters by stage and error type"]
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 4
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    over_time, written_svg, length_svg, dead_svg = svgs
    # Rows/s over time, from the workers' progress: the steps add up to every input row.
    assert 'aria-label="input rows/s by seconds since start"' in over_time and "<title>clean</title>" in over_time
    series = rates_over_time(report.manifest["progress"])
    width = series["clean"][1][0] * 2
    assert sum(rate for _, rate in series["clean"][1:]) * width == pytest.approx(rows_in)
    # The column the stage wrote has its own histogram, over every output row.
    data_rows, _, _ = read_output(out)
    assert sum(int(n) for n in re.findall(r'fill="#4c78a8"><title>[^<]*: (\d+)</title>', written_svg)) == \
        data_rows["text_clean"].drop_null().length()
    # The input column's histogram holds every output row (blue) and every dead-letter row with text (red).
    blue = sum(int(n) for n in re.findall(r'fill="#4c78a8"><title>[^<]*: (\d+)</title>', length_svg))
    red = sum(int(n) for n in re.findall(r": (\d+) dead letter</title>", length_svg))
    assert (blue, red) == (report.lengths.size, report.dead_lengths.size)
    for stage, error_type, rows in report.dead_by_cause:
        assert f"<title>{stage} / {error_type}: {rows}</title>" in dead_svg
    assert f"<td>rows in</td><td>{report.manifest['rows_in']:,}</td>" in page
    # Sample rows and the spec as its file says it.
    assert f"<td>{data_rows['row_id'][0].as_py()}</td>" in page
    spec_text = (Path(out).parents[2] / "job.yaml").read_text(encoding="utf-8")
    assert report.manifest["spec_text"] == spec_text
    assert "<h2>Spec, as written</h2><pre>" + html.escape(spec_text) + "</pre>" in page


def test_parts_older_than_the_run_count_as_reused_not_as_throughput(committed, tmp_path):
    out, rows_in = committed
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    first = manifest["files"][0]
    first["written_at"] = 0.0  # as if written by an earlier, interrupted run
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    again = load_report(copy)
    assert again.reused_parts == 1
    assert sum(n for _, n, _ in again.parts) == rows_in - first["rows"]


def test_cli_report_prints_the_summary_and_never_changes_the_output(committed, tmp_path):
    out, _ = committed
    before = _snapshot(out)
    result = subprocess.run([sys.executable, "-m", "jobs", "report", out], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "report-job for 2026-01-31" in result.stdout
    assert "dead letter: 2 row(s) from stage 'clean': too_long" in result.stdout
    assert f"report: {os.path.join(out, 'report.html')}" in result.stdout
    elsewhere = tmp_path / "elsewhere.html"
    written = subprocess.run([sys.executable, "-m", "jobs", "report", out, "--html", str(elsewhere)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert written.returncode == 0 and f"report: {elsewhere}" in written.stdout and elsewhere.exists()
    inside = subprocess.run([sys.executable, "-m", "jobs", "report", out, "--html", os.path.join(out, "r.html")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert inside.returncode == 2 and "inside the committed output" in inside.stderr
    scripted = subprocess.run([sys.executable, "-m", "jobs", "report", out, "--json"], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)
    record = json.loads(scripted.stdout)
    manifest = json.loads(open(os.path.join(out, "_manifest.json"), encoding="utf-8").read())
    assert {k: record[k] for k in ("rows_in", "rows_out", "rows_dead_letter")} == {
        k: manifest[k] for k in ("rows_in", "rows_out", "rows_dead_letter")}
    assert record["report"] == os.path.join(out, "report.html") and record["committed"]
    assert {(c["error_type"], c["rows"]) for c in record["dead_letter_by_cause"]} >= {("too_long", 2)}
    assert _snapshot(out) == before
    missing = subprocess.run([sys.executable, "-m", "jobs", "report", str(tmp_path)], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip() == (
        f"error: {tmp_path}: no _manifest.json here; give a committed raybatch output folder")
    wrong = subprocess.run([sys.executable, "-m", "jobs", "report", out, "--column", "body"], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: --column 'body' is not in the output; available: ")


def test_print_report_names_causes_and_lengths(committed, capsys):
    out, _ = committed
    report = load_report(out)
    print_report(report)
    text = capsys.readouterr().out
    assert "dead letter: 1 row(s) from stage 'clean': null" in text
    assert f"max {int(report.lengths.max())} over {report.lengths.size} row(s)" in text
    assert "throughput: peak" in text


def _snapshot(folder) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return found


def test_load_dataset_on_the_output_gives_exactly_its_rows(committed, tmp_path):
    """The dataset card's configs: the output rows by default, the dead letter on its own."""
    import datasets

    out, _ = committed
    data_rows, dead_rows, manifest = read_output(out)
    assert manifest["dataset_card"] == "README.md" and dead_rows.num_rows > 0
    rows = datasets.load_dataset(out, split="train", cache_dir=str(tmp_path / "cache"))
    assert rows.num_rows == manifest["rows_out"]
    assert sorted(rows["row_id"]) == sorted(data_rows["row_id"].to_pylist())
    assert set(rows.column_names) == set(data_rows.column_names)
    dead = datasets.load_dataset(out, "dead_letter", split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(dead["row_id"]) == sorted(dead_rows["row_id"].to_pylist())
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    assert f"read_parquet('{out}/data/*.parquet')" in card


def test_the_page_renders_in_headless_chromium_with_every_chart_drawn(committed, tmp_path):
    """A real browser: the page loads with no console error, and every chart it lays out has marks."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    page = os.path.join(committed[0], "report.html")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,3000",
              "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "report.png"
    drawn = subprocess.run([*common, f"--screenshot={shot}", f"file://{page}"], capture_output=True, text=True,
                           timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, drawn.stderr[-2000:]
    assert "CONSOLE" not in drawn.stderr and "Uncaught" not in drawn.stderr, drawn.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=120).stdout
    svgs = re.findall(r"<svg.*?</svg>", dom, re.S)
    assert len(svgs) == 4
    for svg in svgs:  # data bars with height, or a line that leaves the axis
        heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)" fill="#(?:4c78a8|e45756)"', svg)]
        lines = [{y for _, y in re.findall(r"([\d.]+),([\d.]+)", points)}
                 for points in re.findall(r'<polyline points="([^"]+)"', svg)]
        assert any(h > 0 for h in heights) or any(len(ys) > 1 for ys in lines), svg[:300]

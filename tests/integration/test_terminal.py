"""What a run shows: our own progress in a real pseudo-terminal, lines in a pipe, one line with
--quiet, Ray's output with --verbose; and Ray's output always in the run's log file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import ROOT, eda_sentences
from tests.helpers.jobs import write_spec

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
# What Ray and the libraries print that a user should not have to read.
RAY_NOISE = ("core_worker.cc", "Token authentication", "MapBatches", "Truncating long operator name",
             "streaming_executor", "Data sink", "FutureWarning", " INFO ", " WARNING ")


def job(tmp_path: Path, stages: list[dict], rows: int = 200, shard_rows: int = 50) -> Path:
    texts = [text for _, text in eda_sentences("sst2", limit=rows)]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": [f"r{i:04d}" for i in range(len(texts))], "text": texts}),
                   tmp_path / "in" / "a.parquet")
    return write_spec(tmp_path / "job.yaml", {
        "name": "shown", "input": {"path": str(tmp_path / "in"), "id_column": "id", "shard_rows": shard_rows},
        "output": {"path": str(tmp_path / "out" / "shown")}, "stages": stages})


def log_named_in(text: str) -> Path:
    found = re.search(r"log: (\S+\.log)", text)
    assert found, text
    return Path(found.group(1))


def test_a_terminal_shows_our_progress_per_stage_and_none_of_rays_output(tiny_models, tmp_path):
    spec = job(tmp_path, [{"use": "clean", "column": "text"},
                          {"use": "summarize", "model": str(tiny_models.t5), "column": "text_clean",
                           "max_new_tokens": 4, "long_input": "truncate", "max_input_tokens": 32}])
    child = pexpect.spawn(sys.executable, ["-m", "jobs", "run", str(spec)], cwd=str(ROOT), encoding="utf-8",
                          dimensions=(40, 160), timeout=300)
    child.expect(pexpect.EOF)
    child.close()
    screen = ANSI.sub("", child.before)
    assert child.exitstatus == 0, screen[-3000:]
    for noise in RAY_NOISE:
        assert noise not in screen, (noise, screen[-3000:])
    # The bars, named after the spec's stages, with rows done of total, rows/s, ETA and dead letters.
    assert re.search(r"clean +\S+ 200/200 rows +[\d,]+ rows/s +ETA 0:00 +dead 0", screen), screen[-3000:]
    assert re.search(r"summarize +\S+ 200/200 rows +[\d,]+ rows/s +ETA 0:00 +dead 0", screen), screen[-3000:]
    assert "starting Ray" in screen and "running (models load first)" in screen
    assert re.search(r"time: prepare [\d.]+s, Ray start [\d.]+s, work [\d.]+s, commit [\d.]+s \(total [\d.]+s\); "
                     r"summarize model load [\d.]+s per actor", screen), screen[-2000:]
    # What Ray printed is kept, in the log file the summary names, next to the job's output.
    log = log_named_in(screen)
    assert log.parent == tmp_path / "out" / ".raybatch-shown.logs"
    kept = log.read_text(encoding="utf-8", errors="replace")
    assert "core_worker.cc" in kept and "execution finished" in kept  # Ray's C++ core and Ray Data's INFO


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_in_a_pipe_progress_is_lines_every_few_seconds_and_stdout_stays_clean(tmp_path):
    spec = job(tmp_path, [{"use": "clean", "column": "text"}, {"use": "clean", "column": "text_clean"}])
    result = run_cli(spec, "--progress-every", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("\n") == 1 and '"rows_out": 200' in result.stdout  # --json: one object, nothing else
    # The spec names the same stage twice: each gets its own line, numbered.
    assert re.search(r"^\[\d+:\d\d\] clean#1: \d+/200 rows \(\d+%\), [\d,]+ rows/s, ETA [-\d:]+, 0 dead letter$",
                     result.stderr, re.M), result.stderr
    assert re.search(r"^\[\d+:\d\d\] clean#2: ", result.stderr, re.M)
    for noise in RAY_NOISE:
        assert noise not in result.stderr + result.stdout, noise


def test_quiet_prints_the_final_line_only_and_verbose_shows_rays_output(tmp_path):
    spec = job(tmp_path, [{"use": "clean", "column": "text"}])
    quiet = run_cli(spec, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-3000:]
    output = re.escape(str(tmp_path / "out" / "shown"))
    assert re.fullmatch(rf"shown: 200 rows in, 200 out, 0 dead letter, 0 filtered, [\d.]+s: {output}\n",
                        quiet.stdout), quiet.stdout
    verbose = run_cli(spec, "--verbose", "--overwrite")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "execution finished" in verbose.stderr and "[0:00] starting Ray" in verbose.stderr
    log = log_named_in(verbose.stdout)
    assert "execution finished" in log.read_text(encoding="utf-8", errors="replace")
    both = run_cli(spec, "--verbose", "--quiet")
    assert both.returncode == 2 and both.stderr.strip() == "error: --verbose and --quiet: choose one"

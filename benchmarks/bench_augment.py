"""Benchmark: the augment job through raybatch against the loop a user writes today.

Both sides augment the same rows (SST-2 sentences repeated) with substitute / insert / reorder /
delete at rate 0.1, four copies per row plus the original, reading and writing Parquet:

- raybatch: `raybatch run` on a spec (Ray start, shard reads, the augment stage, commit), in its
  own process tree; rows/s = input rows / wall seconds.
- loop: one Python process, row by row: nlpaug's SynonymAug (WordNet), EDA's random insertion
  (nlpaug has no WordNet insertion), nlpaug's RandomWordAug swap and delete; then one Parquet write.
  Offline there is no NLTK tagger model, so nlpaug's tagger is swapped for raybatch's WordNet-based
  one (cheaper than the perceptron tagger a connected user would run: this favours the loop).
  The loop runs every row by default: on a sample (--loop-rows) its rows/s is extrapolated and the
  output says so, but NLTK's caches warm up over the run, so a sample understates the loop.

Peak memory: the largest sum of PSS (RSS where PSS is unavailable) over each side's process tree,
sampled every 0.2 s; PSS splits shared pages (Ray's object store) between the processes mapping them.

    .venv/bin/python benchmarks/bench_augment.py --rows 1000000
    .venv/bin/python benchmarks/bench_augment.py --rows 50000          # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "eda" / "4_full" / "sst2" / "train_orig.txt"
RATE = 0.1


def sentences() -> list[tuple[int, str]]:
    if SST2.exists():
        rows = []
        for line in SST2.read_text(encoding="utf-8").splitlines():
            label, _, text = line.partition("\t")
            if text.strip():
                rows.append((int(label), text.strip()))
        return rows
    import pyarrow.parquet as pq

    table = pq.read_table(ROOT / "sample_data" / "reviews" / "sst2.parquet")
    return list(zip(table["label"].to_pylist(), table["text"].to_pylist()))


def make_input(path: Path, rows: int) -> None:
    """SST-2 repeated to `rows` rows: id, text, label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = sentences()
    labels = [base[i % len(base)][0] for i in range(rows)]
    texts = [base[i % len(base)][1] for i in range(rows)]
    ids = [f"sst2-{i:08d}" for i in range(rows)]
    pq.write_table(pa.table({"id": ids, "text": texts, "label": labels}), path, row_group_size=50_000)


class PeakMemory:
    """Samples the largest PSS (or RSS) sum over a process and its descendants."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0
        for proc in procs:
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", 0) or info.rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    meter = PeakMemory(proc.pid)
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    peak = meter.stop()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return seconds, peak, output


def run_raybatch(input_path: Path, work: Path, shard_rows: int) -> dict:
    import yaml

    spec = {
        "name": "bench-augment", "seed": 0,
        "input": {"path": str(input_path), "id_column": "id", "shard_rows": shard_rows},
        "output": {"path": str(work / "raybatch_out")},
        "stages": [{"use": "augment", "column": "text", "copies": 4, "label_column": "label",
                    "ops": [{"op": name, "rate": RATE} for name in ("substitute", "insert", "reorder", "delete")]}],
    }
    spec_path = work / "bench_augment.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    command = [str(Path(sys.executable).with_name("raybatch"))]
    seconds, peak, _ = run_measured([*command, "run", str(spec_path), "--overwrite"], env)
    manifest = json.loads((work / "raybatch_out" / "_manifest.json").read_text())
    stage = manifest["stages"][0]
    return {"seconds": seconds, "peak_bytes": peak, "rows_in": manifest["rows_in"], "rows_out": manifest["rows_out"],
            "stage_seconds": stage["seconds"], "job_seconds": manifest["seconds"]}


def run_loop(input_path: Path, work: Path, rows: int) -> dict:
    seconds, peak, output = run_measured([sys.executable, __file__, "--loop-worker", str(input_path),
                                          str(work / "loop_out.parquet"), str(rows)])
    return {**json.loads(output.strip().splitlines()[-1]), "wall_seconds": seconds, "peak_bytes": peak}


# ---- the loop a user writes today (runs in its own process) ----------------------------------------


def loop_worker(input_path: str, output_path: str, rows: int) -> None:
    """nlpaug + NLTK WordNet, row by row, as in nlpaug's and EDA's READMEs."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    from augment.lexicon import offline

    offline()  # NLTK data path + nlpaug's tagger without a download (see the module docstring)
    import nlpaug.augmenter.word as naw
    from nltk.corpus import wordnet

    random.seed(0)
    synonym = naw.SynonymAug(aug_src="wordnet", aug_p=RATE)
    swap = naw.RandomWordAug(action="swap", aug_p=RATE)
    drop = naw.RandomWordAug(action="delete", aug_p=RATE)

    def get_synonyms(word):  # EDA's code
        found = set()
        for syn in wordnet.synsets(word):
            for lemma in syn.lemmas():
                name = lemma.name().replace("_", " ").replace("-", " ").lower()
                found.add("".join(ch for ch in name if ch in " qwertyuiopasdfghjklzxcvbnm"))
        found.discard(word)
        return list(found)

    def random_insertion(text):
        words = text.split()
        for _ in range(max(1, int(RATE * len(words)))):
            for _attempt in range(10):
                candidates = get_synonyms(words[random.randint(0, len(words) - 1)])
                if candidates:
                    words.insert(random.randint(0, len(words) - 1), candidates[0])
                    break
        return " ".join(words)

    def first(result, fallback):
        return result[0] if isinstance(result, list) and result else (result or fallback)

    table = pq.read_table(input_path).slice(0, rows)
    out_ids, out_texts, out_labels, out_ops = [], [], [], []
    load_seconds = time.perf_counter() - started
    for row_id, text, label in zip(table["id"].to_pylist(), table["text"].to_pylist(), table["label"].to_pylist()):
        copies = [("original", text), ("substitute", first(synonym.augment(text), text)),
                  ("insert", random_insertion(text)), ("reorder", first(swap.augment(text), text)),
                  ("delete", first(drop.augment(text), text))]
        for n, (op, new) in enumerate(copies):
            out_ids.append(row_id if n == 0 else f"{row_id}~aug{n - 1}")
            out_texts.append(new)
            out_labels.append(label)
            out_ops.append(op)
    pq.write_table(pa.table({"row_id": out_ids, "text": out_texts, "label": out_labels, "aug_op": out_ops}),
                   output_path)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": table.num_rows, "rows_out": len(out_ids), "seconds": seconds,
                      "setup_seconds": load_seconds}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--loop-worker":
        sys.path.insert(0, str(ROOT))
        loop_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows for raybatch (default 1M)")
    parser.add_argument("--loop-rows", type=int, default=None,
                        help="rows the loop runs (default: all; fewer = measured on a sample and extrapolated)")
    parser.add_argument("--shard-rows", type=int, default=20_000, help="raybatch input.shard_rows")
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--skip-loop", action="store_true", help="run only the raybatch side")
    parser.add_argument("--skip-raybatch", action="store_true", help="run only the loop")
    args = parser.parse_args()
    loop_rows = min(args.loop_rows or args.rows, args.rows)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        input_path = work / "sst2_repeated.parquet"
        make_input(input_path, args.rows)
        print(f"input: {args.rows:,} rows of SST-2 text ({input_path.stat().st_size / 1e6:.1f} MB Parquet), "
              f"ops substitute/insert/reorder/delete at rate {RATE}, 4 copies + original per row; "
              f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        if not args.skip_raybatch:
            ray = run_raybatch(input_path, work, args.shard_rows)
            ray_rate = ray["rows_in"] / ray["seconds"]
            print(f"raybatch: {ray['rows_in']:,} rows in, {ray['rows_out']:,} out in {ray['seconds']:.1f}s "
                  f"end to end = {ray_rate:,.0f} rows/s; peak memory {ray['peak_bytes'] / 2**30:.2f} GiB "
                  f"(job {ray['job_seconds']:.1f}s of it; augment stage {ray['stage_seconds']:.1f} task-seconds)",
                  flush=True)
        if args.skip_loop:
            return
        loop = run_loop(input_path, work, loop_rows)
        sampled = loop["rows"] < args.rows
        if sampled:
            # Start-up (imports, WordNet load) happens once; the rows scale at the measured pace.
            overhead = loop["wall_seconds"] - loop["seconds"] + loop["setup_seconds"]
            pace = loop["rows"] / (loop["seconds"] - loop["setup_seconds"])
            loop_seconds = overhead + args.rows / pace
            note = (f"measured on the first {loop['rows']:,} rows ({loop['wall_seconds']:.1f}s, start-up "
                    f"{overhead:.1f}s), extrapolated to {args.rows:,} rows: {loop_seconds:.0f}s")
        else:
            loop_seconds = loop["wall_seconds"]
            note = f"{loop['rows_out']:,} rows out in {loop_seconds:.1f}s"
        loop_rate = args.rows / loop_seconds
        print(f"loop (nlpaug + NLTK WordNet, one process): {note} = {loop_rate:,.0f} rows/s end to end; "
              f"peak memory {loop['peak_bytes'] / 2**30:.2f} GiB", flush=True)
        if args.skip_raybatch:
            return
        ratio = ray_rate / loop_rate
        print(f"ratio: raybatch {ratio:.2f}x the loop's rows/s (target >= 1.8x): {'PASS' if ratio >= 1.8 else 'FAIL'}; "
              f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine slows both sides)")


if __name__ == "__main__":
    main()

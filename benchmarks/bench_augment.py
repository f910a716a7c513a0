"""Benchmark: the augment job through `raybatch run` against the simplest loop a user writes, on two
workloads, each side a whole command on the same Parquet rows of SST-2 text (repeated to size).

- Ops: substitute, insert, reorder (swap), delete, at rate 0.1.
- Workloads: `1 copy` (one augmented row per input row, no original kept: row i gets one op, the ops
  in turn) and `4 copies` (every op once per row, plus the original).
- raybatch: `raybatch run` on a spec: Ray start, shard reads, the augment stage, the exactly-once
  commit. rows/s = input rows / wall seconds.
- loop: one Python process, row by row, as EDA's and nlpaug's READMEs write it: WordNet synonyms
  through `nltk.corpus.wordnet` (EDA's synonym replacement and random insertion), nlpaug's
  `RandomWordAug` swap and delete; then one Parquet write.
- Peak memory: the largest sum of PSS (RSS where PSS is unavailable) over each side's process tree,
  sampled every 0.5 s from the kernel's smaps_rollup; PSS splits shared pages (Ray's object store)
  between the processes mapping them. `--flat-rows N` also runs raybatch on N rows and prints its
  peak against the first size.

    .venv/bin/python benchmarks/bench_augment.py --rows 1000000 --pairs 2
    .venv/bin/python benchmarks/bench_augment.py --rows 1000000 --flat-rows 10000000 --skip-loop
    .venv/bin/python benchmarks/bench_augment.py --rows 50000          # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import run_measured  # noqa: E402

SST2 = ROOT.parent / "shared" / "data" / "eda" / "4_full" / "sst2" / "train_orig.txt"
RATE = 0.1
OPS = ("substitute", "insert", "reorder", "delete")
WORKLOADS = {"1 copy": {"copies": 1, "keep_original": False}, "4 copies": {"copies": 4, "keep_original": True}}


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
    """SST-2 repeated to `rows` rows: id, text, label, written in row groups so memory stays small."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = sentences()
    step = 500_000
    with pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.int64())])) as out:
        for start in range(0, rows, step):
            span = range(start, min(start + step, rows))
            out.write_table(pa.table({"id": [f"sst2-{i:08d}" for i in span],
                                      "text": [base[i % len(base)][1] for i in span],
                                      "label": [base[i % len(base)][0] for i in span]}), row_group_size=50_000)


def run_raybatch(input_path: Path, work: Path, workload: str, shard_rows: int) -> dict:
    import yaml

    out = work / f"raybatch_out_{workload.replace(' ', '_')}"
    spec = {
        "name": "bench-augment", "seed": 0,
        "input": {"path": str(input_path), "id_column": "id", "shard_rows": shard_rows},
        "output": {"path": str(out)},
        "stages": [{"use": "augment", "column": "text", "label_column": "label", **WORKLOADS[workload],
                    "ops": [{"op": name, "rate": RATE} for name in OPS]}],
    }
    spec_path = work / "bench_augment.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    command = [str(Path(sys.executable).with_name("raybatch")), "run", str(spec_path), "--overwrite"]
    seconds, peak, _ = run_measured(command, env)
    manifest = json.loads((out / "_manifest.json").read_text())
    return {"seconds": seconds, "peak_bytes": peak, "rows_in": manifest["rows_in"], "rows_out": manifest["rows_out"],
            "job_seconds": manifest["seconds"]}


def run_loop(input_path: Path, work: Path, workload: str) -> dict:
    seconds, peak, output = run_measured([sys.executable, __file__, "--loop-worker", str(input_path),
                                          str(work / "loop_out.parquet"), workload])
    return {**json.loads(output.strip().splitlines()[-1]), "seconds": seconds, "peak_bytes": peak}


# ---- the loop a user writes (runs in its own process) ----------------------------------------------


def loop_worker(input_path: str, output_path: str, workload: str) -> None:
    """EDA's WordNet ops and nlpaug's random-word ops, row by row, in one process."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from augment.wordnet_install import offline

    offline()  # the NLTK data path (WordNet from the Debian packages), no downloads
    import nlpaug.augmenter.word as naw
    from nltk.corpus import wordnet

    from augment.ops import STOPWORDS  # NLTK's English list, as EDA uses

    random.seed(0)
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

    def synonym_replacement(text):  # EDA's code
        words = text.split()
        n = max(1, int(RATE * len(words)))
        new_words, candidates, replaced = list(words), list({w for w in words if w not in STOPWORDS}), 0
        random.shuffle(candidates)
        for word in candidates:
            synonyms = get_synonyms(word)
            if synonyms:
                synonym = random.choice(synonyms)
                new_words = [synonym if w == word else w for w in new_words]
                replaced += 1
            if replaced >= n:
                break
        return " ".join(new_words)

    def random_insertion(text):  # EDA's code
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

    apply = {"substitute": synonym_replacement, "insert": random_insertion,
             "reorder": lambda t: first(swap.augment(t), t), "delete": lambda t: first(drop.augment(t), t)}
    table = pq.read_table(input_path)
    out_ids, out_texts, out_labels, out_ops = [], [], [], []
    one_copy = WORKLOADS[workload]["copies"] == 1
    for i, (row_id, text, label) in enumerate(zip(table["id"].to_pylist(), table["text"].to_pylist(),
                                                  table["label"].to_pylist())):
        chosen = [OPS[i % len(OPS)]] if one_copy else list(OPS)
        if not one_copy:
            out_ids.append(row_id), out_texts.append(text), out_labels.append(label), out_ops.append(None)
        for n, op in enumerate(chosen):
            out_ids.append(f"{row_id}~aug{n}")
            out_texts.append(apply[op](text))
            out_labels.append(label)
            out_ops.append(op)
    pq.write_table(pa.table({"row_id": out_ids, "text": out_texts, "label": out_labels, "aug_op": out_ops}),
                   output_path)
    print(json.dumps({"rows": table.num_rows, "rows_out": len(out_ids)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--loop-worker":
        loop_worker(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (default 1M)")
    parser.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="raybatch input.shard_rows")
    parser.add_argument("--flat-rows", type=int, help="also run raybatch on this many rows and compare peak memory")
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--skip-loop", action="store_true", help="run only the raybatch side")
    parser.add_argument("--pairs", type=int, default=1, help="raybatch and loop runs in turn (default 1)")
    args = parser.parse_args()
    workloads = list(WORKLOADS) if args.workload == "both" else [args.workload]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        input_path = work / "sst2_repeated.parquet"
        make_input(input_path, args.rows)
        print(f"input: {args.rows:,} rows of SST-2 text ({input_path.stat().st_size / 1e6:.1f} MB Parquet); ops "
              f"{'/'.join(OPS)} at rate {RATE}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
              flush=True)
        for workload in workloads:
            ratios = []
            for _ in range(1 if args.skip_loop else args.pairs):  # in turn: a drift of the machine hits both
                ray = run_raybatch(input_path, work, workload, args.shard_rows)
                ray_rate = ray["rows_in"] / ray["seconds"]
                print(f"[{workload}] raybatch run: {ray['rows_in']:,} rows in, {ray['rows_out']:,} out, "
                      f"{ray['seconds']:.1f} s = {ray_rate:,.0f} rows/s; peak {ray['peak_bytes'] / 2**20:,.0f} MiB",
                      flush=True)
                if args.skip_loop:
                    break
                loop = run_loop(input_path, work, workload)
                loop_rate = loop["rows"] / loop["seconds"]
                print(f"[{workload}] loop:         {loop['rows']:,} rows in, {loop['rows_out']:,} out, "
                      f"{loop['seconds']:.1f} s = {loop_rate:,.0f} rows/s; peak {loop['peak_bytes'] / 2**20:,.0f} MiB",
                      flush=True)
                ratios.append(ray_rate / loop_rate)
            if ratios:
                print(f"[{workload}] ratio: {statistics.median(ratios):.2f}x the loop, median of {len(ratios)} "
                      f"pair(s) run in turn (target >= 2.5x)", flush=True)
            if args.flat_rows:
                big_input = work / "sst2_big.parquet"
                make_input(big_input, args.flat_rows)
                big = run_raybatch(big_input, work, workload, args.shard_rows)
                big_input.unlink()
                print(f"[{workload}] raybatch run on {args.flat_rows:,} rows: {big['seconds']:.1f} s = "
                      f"{big['rows_in'] / big['seconds']:,.0f} rows/s; peak {big['peak_bytes'] / 2**20:,.0f} MiB = "
                      f"{big['peak_bytes'] / ray['peak_bytes']:.2f}x the peak at {args.rows:,} rows "
                      f"(target <= 1.2x)", flush=True)


if __name__ == "__main__":
    main()

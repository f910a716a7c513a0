"""Benchmark: near-duplicate removal as a user runs it, `raybatch run` with a dedup stage, against
datasketch's MinHashLSH in one process, each side a whole command over the same Parquet files.

- Rows: documents of three real sentences (all five EDA sets, training and test splits) as
  originals, half the rows; the other half copies of them: one-word edits (a word substituted,
  deleted or inserted; 75%) and verbatim repeats, shuffled over --files Parquet files, so
  duplicates cross files and shards.
- raybatch: `raybatch run` on a spec with one stage, `{use: dedup, method: near, threshold: 0.8}`:
  Ray start, reads, signatures in parallel, grouping, both passes, the exactly-once commit.
- datasketch: the loop its README shows, with its fastest MinHash path: read the files, shingle
  each row alike (the word set of our normalize(), so both sides compare the same sets),
  `MinHash.bulk`, then per row `MinHashLSH.query` then `insert`, every candidate checked with
  `jaccard`, groups by union-find (the earliest row of a group kept), kept and removed rows
  written to Parquet. Same threshold and num_perm. `--peer-update` instead builds each MinHash
  with `update()` per shingle, as most code written against datasketch does.
- rows/s = input rows / wall seconds of the whole command. Peak memory: the largest PSS sum over
  the command's process tree (benchmarks/measure.py).
- Quality, from each side's output: recall = copies whose kept row is their original's kept row;
  distinct kept = originals left in groups of their own or kept as their group's row.

    .venv/bin/python benchmarks/bench_dedup_job.py --rows 1000000
    .venv/bin/python benchmarks/bench_dedup_job.py --rows 1000000 --flat-rows 10000000 --skip-peer
    .venv/bin/python benchmarks/bench_dedup_job.py --rows 50000          # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dedup_core import EDA, datasketch_groups, make_rows  # noqa: E402
from measure import run_measured  # noqa: E402

SETS = ("sst2", "subj", "trec", "cr", "pc")
THRESHOLD, NUM_PERM = 0.8, 256


def documents(count: int, seed: int) -> list[str]:
    """`count` documents of three real sentences each, no two sharing more than one sentence and
    no sentence over 40% of its document's words, so no two documents are near duplicates."""
    sentences = sorted({line.partition("\t")[2].strip()
                        for name in SETS
                        for path in (EDA / "4_full" / name / "train_orig.txt", EDA / "test" / name / "test.txt")
                        if path.exists()
                        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()} - {""})
    if len(sentences) < 1000:
        sys.exit(f"too few sentences under {EDA}")
    words = [len(s.split()) for s in sentences]
    rng, used, docs = random.Random(seed), set(), []
    while len(docs) < count:
        picked = rng.sample(range(len(sentences)), 3)
        pairs = {(min(a, b), max(a, b)) for a in picked for b in picked if a != b}
        if max(words[i] for i in picked) > 0.4 * sum(words[i] for i in picked) or pairs & used:
            continue
        used |= pairs
        docs.append(" ".join(sentences[i] for i in picked))
    return docs


def make_input(folder: Path, total: int, files: int, seed: int = 0):
    """Writes the rows as `files` Parquet files (id, text); returns (n_originals, source, position)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts, n_orig, source, position = make_rows(total, 0.75, seed, pool=documents(total // 2, seed))
    folder.mkdir(parents=True)
    per_file = -(-len(texts) // files)
    for f, lo in enumerate(range(0, len(texts), per_file)):
        span = range(lo, min(lo + per_file, len(texts)))
        pq.write_table(pa.table({"id": [f"r{i:09d}" for i in span], "text": texts[lo:lo + per_file]}),
                       folder / f"part-{f:03d}.parquet", row_group_size=50_000)
    return n_orig, source, position


def run_raybatch(folder: Path, out: Path, shard_rows: int) -> dict:
    import yaml

    spec = {"name": "bench-dedup", "seed": 0,
            "input": {"path": str(folder / "*.parquet"), "id_column": "id", "shard_rows": shard_rows},
            "output": {"path": str(out)},
            "stages": [{"use": "dedup", "column": "text", "method": "near", "threshold": THRESHOLD,
                        "num_perm": NUM_PERM}]}
    spec_path = out.parent / f"{out.name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    seconds, peak, _ = run_measured([str(Path(sys.executable).with_name("raybatch")), "run", str(spec_path),
                                     "--overwrite"], env)
    manifest = json.loads((out / "_manifest.json").read_text())
    return {"seconds": seconds, "peak": peak, "rows_in": manifest["rows_in"], "removed": manifest["rows_filtered"],
            "kept_of": _kept_of(out / "_filtered", "row_id", "duplicate_of")}


def run_peer(folder: Path, out: Path, update: bool) -> dict:
    cmd = [sys.executable, __file__, "--peer-worker", str(folder), str(out)] + (["--peer-update"] if update else [])
    seconds, peak, output = run_measured(cmd)
    return {**json.loads(output.strip().splitlines()[-1]), "seconds": seconds, "peak": peak,
            "kept_of": _kept_of(out, "id", "duplicate_of", pattern="removed.parquet")}


def _kept_of(folder: Path, id_column: str, of_column: str, pattern: str = "*.parquet") -> dict[str, str]:
    import pyarrow.parquet as pq

    kept_of: dict[str, str] = {}
    for path in sorted(folder.rglob(pattern)):
        table = pq.read_table(path, columns=[id_column, of_column])
        kept_of.update(zip(table[id_column].to_pylist(), table[of_column].to_pylist()))
    return kept_of


def quality(kept_of: dict[str, str], n_orig: int, source: dict, position: np.ndarray) -> tuple[float, float]:
    def rep(k: int) -> str:
        row_id = f"r{position[k]:09d}"
        return kept_of.get(row_id, row_id)

    recall = sum(rep(k) == rep(i) for k, i in source.items()) / max(len(source), 1)
    distinct = len({rep(k) for k in range(n_orig)}) / n_orig
    return recall, distinct


# ---- the datasketch loop (runs in its own process) -------------------------------------------------


def peer_worker(folder: str, out: str, update: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasketch import MinHash, MinHashLSH

    from jobs.hygiene.minhash import normalize, tokens

    table = pq.read_table(sorted(str(p) for p in Path(folder).glob("*.parquet")))
    ids, texts = table["id"].to_pylist(), table["text"].to_pylist()
    shingles = [[t.encode("utf-8") for t in set(tokens(normalize(text or "")))] for text in texts]
    if update:
        minhashes = []
        for words in shingles:
            m = MinHash(num_perm=NUM_PERM)
            for word in words:
                m.update(word)
            minhashes.append(m)
    else:
        minhashes = MinHash.bulk(shingles, num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    reps, _, pairs = datasketch_groups(shingles, minhashes, lsh, THRESHOLD)
    keep = [r == i for i, r in enumerate(reps)]
    Path(out).mkdir(parents=True)
    pq.write_table(table.filter(pa.array(keep)), Path(out) / "kept.parquet")
    removed = [i for i, k in enumerate(keep) if not k]
    pq.write_table(pa.table({"id": [ids[i] for i in removed], "duplicate_of": [ids[reps[i]] for i in removed]}),
                   Path(out) / "removed.parquet")
    print(json.dumps({"rows_in": len(texts), "removed": len(removed), "pairs": pairs, "bands": lsh.b}))


def report(name: str, side: dict, n_orig: int, source: dict, position: np.ndarray) -> float:
    recall, distinct = quality(side["kept_of"], n_orig, source, position)
    rate = side["rows_in"] / side["seconds"]
    print(f"{name:22} {side['seconds']:8.1f} s {rate:10,.0f} rows/s  removed {side['removed']:>9,}  "
          f"recall {recall:7.2%}  distinct kept {distinct:7.3%}  peak {side['peak'] / 2**20:7,.0f} MiB", flush=True)
    return rate


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer-worker":
        peer_worker(sys.argv[2], sys.argv[3], "--peer-update" in sys.argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10, help="Parquet files the rows are spread over")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="raybatch input.shard_rows")
    parser.add_argument("--peer-update", action="store_true", help="datasketch MinHash.update per shingle")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--flat-rows", type=int, help="also run raybatch on this many rows; compare peak memory")
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        n_orig, source, position = make_input(work / "input", args.rows, args.files)
        print(f"input: {args.rows:,} rows in {args.files} files: {n_orig:,} distinct three-sentence documents, "
              f"{len(source):,} copies (75% one-word edits); threshold {THRESHOLD}, num_perm {NUM_PERM}; "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}", flush=True)
        small = run_raybatch(work / "input", work / "ours", args.shard_rows)
        ours = report("raybatch run", small, n_orig, source, position)
        if not args.skip_peer:
            name = "datasketch (update)" if args.peer_update else "datasketch (bulk)"
            peer = report(name, run_peer(work / "input", work / "peer", args.peer_update), n_orig, source, position)
            print(f"ratio: {ours / peer:.1f}x {name}'s rows/s", flush=True)
        if args.flat_rows:
            make_input(work / "big", args.flat_rows, args.files * args.flat_rows // args.rows)
            big = run_raybatch(work / "big", work / "ours_big", args.shard_rows)
            print(f"raybatch run on {args.flat_rows:,} rows: {big['seconds']:.1f} s = "
                  f"{big['rows_in'] / big['seconds']:,.0f} rows/s; peak {big['peak'] / 2**20:,.0f} MiB = "
                  f"{big['peak'] / small['peak']:.2f}x the peak at {args.rows:,} rows", flush=True)


if __name__ == "__main__":
    main()

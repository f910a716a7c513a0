"""Benchmark: the summarize job a user runs (`raybatch run`, Ray start and Parquet I/O included)
against the plain loop a user writes (one process: load the model, read the Parquet, `generate` in
batches of 32, write Parquet), each timed as a whole command, in the same run, on the same files.

The model is the t5-small shape of bench_summarize.py (random weights, greedy, exactly 32 new
tokens per document so both sides do the same work); 512 documents of 1-12 EDA sentences.
Rounds alternate loop/job; the best of each is reported. Run:
    .venv/bin/python benchmarks/bench_summarize_job.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_summarize import NEW_TOKENS, ROOT, build_model, eda_corpus, make_documents  # noqa: E402

LOOP = '''
import sys, torch, pyarrow as pa, pyarrow.parquet as pq
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model_path, source, target, new_tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForSeq2SeqLM.from_pretrained(model_path).eval()
table = pq.read_table(source)
texts, out = table["text"].to_pylist(), []
with torch.inference_mode():
    for start in range(0, len(texts), 32):
        encoded = tokenizer(["summarize: " + t for t in texts[start:start + 32]], return_tensors="pt", padding=True)
        ids = model.generate(**encoded, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
pq.write_table(table.append_column("summary", pa.array(out)), target)
'''


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    corpus = eda_corpus()
    documents = make_documents(corpus, args.docs, 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(tmp / "t5-small-random", corpus)
        source = tmp / "in" / "docs.parquet"
        source.parent.mkdir()
        pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(documents))], "text": documents}), source)
        loop_times, job_times = [], []
        for round_ in range(args.rounds):
            loop_times.append(timed([sys.executable, "-c", LOOP, str(model), str(source), str(tmp / f"loop{round_}.parquet"),
                                     str(NEW_TOKENS)], env))
            spec = tmp / f"job{round_}.yaml"
            spec.write_text(yaml.safe_dump({
                "name": "bench-summarize", "input": {"path": str(source.parent), "id_column": "id"},
                "output": {"path": str(tmp / f"out{round_}")},
                "stages": [{"use": "summarize", "model": str(model), "column": "text",
                            "max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS}]}))
            job_times.append(timed([str(Path(sys.executable).parent / "raybatch"), "run", str(spec)], env))
        loop_text = pq.read_table(tmp / "loop0.parquet")["summary"].to_pylist()
        import glob

        job = pa.concat_tables([pq.read_table(p) for p in glob.glob(str(tmp / "out0" / "data" / "*.parquet"))])
        job_text = dict(zip(job["row_id"].to_pylist(), job["summary"].to_pylist()))
        same = sum(job_text.get(f"d{i}") == t.strip() for i, t in enumerate(loop_text))
    loop_best, job_best = min(loop_times), min(job_times)
    print(f"documents: {len(documents)}; t5-small-shaped random model, fp32, CPU ({os.cpu_count()} cores); "
          f"{NEW_TOKENS} new tokens each, greedy")
    print(f"rounds, wall s: loop {', '.join(f'{t:.1f}' for t in loop_times)}; "
          f"raybatch run {', '.join(f'{t:.1f}' for t in job_times)}")
    print(f"plain loop (whole process):   {len(documents) / loop_best:6.2f} rows/s")
    print(f"raybatch run (whole command): {len(documents) / job_best:6.2f} rows/s")
    print(f"ratio: {loop_best / job_best:.2f}x the loop, end to end")
    print(f"same text as the loop: {same}/{len(documents)} rows")


if __name__ == "__main__":
    main()

"""Benchmark: the summarize stage vs a plain transformers loop, same model, same documents.

The model is t5-small-shaped (d_model 512, 6 encoder + 6 decoder layers, 8 heads, d_ff 2048, a
32,128-token BPE vocabulary trained on the EDA text) with random weights: its text is noise, the
arithmetic is t5-small's. 512 documents of 1-12 EDA sentences each. Both sides decode greedily and
generate exactly 32 new tokens per document (min_new_tokens = max_new_tokens suppresses EOS; a random
model would otherwise stop at random points and the two sides would do different work).

The loop: batches of 32 in input order, padded to the longest, `model.generate`. The stage:
`SummarizeStage` called in this process on the whole block (no Ray, so both sides get the same CPU
threads). Rounds alternate loop/stage and the best round of each is reported, because a shared
machine's neighbours add noise. Run: .venv/bin/python benchmarks/bench_summarize.py
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EDA = ROOT.parent / "shared" / "data" / "eda"
NEW_TOKENS = 32
LOOP_BATCH = 32


def eda_corpus(size: str = "4_full") -> list[str]:
    """Every training sentence of every EDA set at `size` (mixed domains and lengths)."""
    texts = []
    for path in sorted(glob.glob(str(EDA / size / "*" / "train_orig.txt"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            text = line.partition("\t")[2].strip()
            if text:
                texts.append(text)
    if not texts:
        sys.exit(f"no EDA sentences under {EDA / size}")
    return texts


def make_documents(sentences: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(sentences) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def build_model(folder: Path, corpus: list[str]) -> Path:
    from tests.tiny_models import build_t5, train_bpe

    backend = train_bpe(corpus, vocab_size=32_128)
    return build_t5(folder, backend, d_model=512, layers=6, heads=8, d_ff=2048, d_kv=64, seed=0)


def run_loop(model, tokenizer, documents: list[str], prefix: str) -> tuple[list[str], int, int]:
    """The plain loop a user would write: input order, fixed batches, padded to the longest."""
    import torch

    texts, real, padded = [], 0, 0
    with torch.inference_mode():
        for start in range(0, len(documents), LOOP_BATCH):
            batch = [prefix + d for d in documents[start:start + LOOP_BATCH]]
            encoded = tokenizer(batch, return_tensors="pt", padding=True)
            real += int(encoded["attention_mask"].sum())
            padded += encoded["attention_mask"].numel()
            out = model.generate(**encoded, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
            texts.extend(t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True))
    return texts, real, padded


def encoder_seconds(model, tokenizer, documents: list[str], prefix: str) -> tuple[float, float, int]:
    """Encoder time alone: over the loop's batches (input order, padded), and over length-sorted
    slices of all documents as the stage cuts them; also the tokens those slices compute."""
    import torch

    from jobs.engine.batching import encoder_slices

    encoder = model.get_encoder()
    texts = [prefix + d for d in documents]
    with torch.inference_mode():
        started = time.perf_counter()
        for start in range(0, len(texts), LOOP_BATCH):
            encoder(**tokenizer(texts[start:start + LOOP_BATCH], return_tensors="pt", padding=True))
        loop = time.perf_counter() - started
        lengths = [len(i) for i in tokenizer(texts)["input_ids"]]
        padded = 0
        started = time.perf_counter()
        for group in encoder_slices(lengths):
            encoder(**tokenizer([texts[i] for i in group], return_tensors="pt", padding=True))
            padded += len(group) * max(lengths[i] for i in group)
        tight = time.perf_counter() - started
    return loop, tight, padded


def t5_macs(config) -> tuple[int, int, int]:
    """Multiply-adds of a T5 without attention scores: per encoder token, per input token for the
    decoder's cross-attention keys and values (once per row), and per generated token."""
    d, ff = config.d_model, config.d_ff
    inner = config.num_heads * config.d_kv
    encoder = config.num_layers * (4 * d * inner + 2 * d * ff)
    cross_kv = config.num_decoder_layers * 2 * d * inner
    step = config.num_decoder_layers * (6 * d * inner + 2 * d * ff) + d * config.vocab_size
    return encoder, cross_kv, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="alternating loop/stage rounds; best of each is kept")
    parser.add_argument("--batch-size", type=int, default=None, help="stage batch_size (default: the stage's)")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="stage max_batch_tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import pyarrow as pa
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from jobs.stages.base import StageContext
    from jobs.stages.summarize import SummarizeParams, SummarizeStage

    corpus = eda_corpus()
    documents = make_documents(corpus, args.docs, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp) / "t5-small-random", corpus)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
        settings = {"batch_size": args.batch_size, "max_batch_tokens": args.max_batch_tokens}
        params = SummarizeParams(use="summarize", model=str(path), column="text", max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, **{k: v for k, v in settings.items() if v})
        stage = SummarizeStage(params, StageContext("bench", args.seed, 0, "summarize"))
        prefix = stage.engine.prefix  # T5 declares "summarize: "; the loop gets the same input text
        table = pa.table({"row_id": [str(i) for i in range(len(documents))], "text": documents})

        loop_times, stage_times, loop_cpu, stage_cpu = [], [], [], []
        for _ in range(args.rounds):
            started, cpu = time.perf_counter(), time.process_time()
            loop_texts, loop_real, loop_padded = run_loop(model, tokenizer, documents, prefix)
            loop_times.append(time.perf_counter() - started)
            loop_cpu.append(time.process_time() - cpu)
            started, cpu = time.perf_counter(), time.process_time()
            out = stage(table)
            stage_times.append(time.perf_counter() - started)
            stage_cpu.append(time.process_time() - cpu)
            stats = stage.take_metrics()

        encoder_loop, encoder_tight, slice_tokens = encoder_seconds(model, tokenizer, documents, prefix)

    stage_texts = out["summary"].to_pylist()
    loop_rate = len(documents) / min(loop_times)
    stage_rate = len(documents) / min(stage_times)
    lengths = [len(ids) for ids in tokenizer([prefix + d for d in documents])["input_ids"]]
    same = sum(a == b for a, b in zip(loop_texts, stage_texts))
    print(f"model: t5-small-shaped random weights (d_model 512, 6+6 layers, vocab {len(tokenizer)}), fp32, CPU, "
          f"{torch.get_num_threads()} threads")
    print(f"documents: {len(documents)} of 1-12 EDA sentences; input tokens min {min(lengths)}, "
          f"mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}; {NEW_TOKENS} new tokens each, greedy")
    print(f"stage settings: batch_size {params.batch_size}, max_batch_tokens {params.max_batch_tokens} "
          f"({'the stage defaults' if not any(settings.values()) else 'set on the command line'})")
    print(f"rounds, wall s: loop {', '.join(f'{t:.1f}' for t in loop_times)}; "
          f"stage {', '.join(f'{t:.1f}' for t in stage_times)}")
    print(f"rounds, CPU s:  loop {', '.join(f'{t:.1f}' for t in loop_cpu)}; "
          f"stage {', '.join(f'{t:.1f}' for t in stage_cpu)}")
    print(f"plain loop:      {loop_rate:6.2f} rows/s  padding efficiency {loop_real / loop_padded:6.1%}")
    print(f"summarize stage: {stage_rate:6.2f} rows/s  padding efficiency "
          f"{stats['tokens_in'] / stats['tokens_in_padded']:6.1%}  ({int(stats['batches'])} decode batches; "
          f"the encoder runs length-sorted slices of them)")
    print(f"ratio: {stage_rate / loop_rate:.2f}x the loop's rows/s "
          f"(by CPU time: {min(loop_cpu) / min(stage_cpu):.2f}x; steadier when other work shares the machine)")
    print(f"same text as the loop: {same}/{len(documents)} rows")
    loop_best, stage_best = min(loop_times), min(stage_times)
    decoding = loop_best - encoder_loop
    print(f"where the loop's {loop_best:.1f}s go: encoder {encoder_loop:.1f}s, decoding {decoding:.1f}s; over "
          f"length-sorted slices the encoder takes {encoder_tight:.1f}s, so sorting with the loop's decoding "
          f"would give {loop_best / (encoder_tight + decoding):.2f}x; decoding {params.batch_size} rows a step "
          f"gives the rest")
    # An upper bound: the stage's arithmetic if every step ran at the big encoder matmuls' rate.
    # Decoding one token per row per step cannot reach that rate; the gap is what is left to win.
    per_token, cross_kv, per_step = t5_macs(model.config)
    rate = slice_tokens * per_token / encoder_tight
    work = stats["tokens_in"] * (per_token + cross_kv) + len(documents) * NEW_TOKENS * per_step
    print(f"upper bound: the stage's work is {work / 1e9:.0f} GMAC (attention scores aside); at the encoder's "
          f"{rate / 1e9:.0f} GMAC/s that is {work / rate:.1f}s (it took {stage_best:.1f}s), "
          f"{loop_best / (work / rate):.2f}x the loop")


if __name__ == "__main__":
    main()

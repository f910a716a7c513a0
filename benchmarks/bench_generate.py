"""Benchmark: the generate stage vs a plain transformers loop with a causal LM, made for a GPU.

The default model is Qwen2.5-0.5B-shaped with random weights: hidden 896, 24 layers, 14 query and
2 key/value heads, MLP 4864. Its vocabulary is a 32,128-token BPE trained on the EDA text, not
Qwen's 151,936, so it has about 0.36B parameters. Its text is noise; the arithmetic is a 0.5B
model's. The prompts are 512 EDA documents of 1-12 sentences under the template "Write one
question a reader might ask about: {text}". Both sides decode greedily and make exactly
`--new-tokens` tokens per prompt: min_new_tokens = max_new_tokens, so both do the same work.

The loop: batches of 32 in input order, left-padded, `model.generate`, in the same dtype as the stage
(bf16 on a GPU, fp32 on CPU). The stage: `GenerateStage` called in this process on the whole block
(no Ray). Rounds alternate loop/stage; the best round of each counts.

On a machine without a GPU, `--shape tiny` runs the same comparison on a small model in
seconds, to check that the script works:
  .venv/bin/python benchmarks/bench_generate.py                 # GPU: the 0.5B shape
  .venv/bin/python benchmarks/bench_generate.py --shape tiny --docs 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_summarize import eda_corpus, make_documents  # noqa: E402

PROMPT = "Write one question a reader might ask about: {text}"
LOOP_BATCH = 32
SHAPES = {
    "qwen0.5b": {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864},
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128},
}


def build_model(folder: Path, corpus: list[str], shape: dict) -> Path:
    from tests.tiny_models import build_llama, train_bpe

    backend = train_bpe(corpus, vocab_size=32_128)
    return build_llama(folder, backend, max_positions=2048, seed=0, **shape)


def run_loop(model, tokenizer, prompts: list[str], new_tokens: int, device: str) -> tuple[int, int, int]:
    """What a user writes: input order, fixed batches, left padding; returns real and padded prompt
    tokens and the tokens generated."""
    import torch

    real = padded = made = 0
    with torch.inference_mode():
        for start in range(0, len(prompts), LOOP_BATCH):
            batch = tokenizer(prompts[start:start + LOOP_BATCH], return_tensors="pt", padding=True).to(device)
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
            out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            made += (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return real, padded, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen0.5b")
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="stage batch_size (default: the stage's)")
    args = parser.parse_args()

    import pyarrow as pa
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jobs.stages.base import StageContext
    from jobs.stages.generate import GenerateParams, GenerateStage

    device = "cuda" if torch.cuda.is_available() else "cpu"
    corpus = eda_corpus()
    documents = make_documents(corpus, args.docs, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp) / "causal-random", corpus, SHAPES[args.shape])
        settings = {"batch_size": args.batch_size} if args.batch_size else {}
        params = GenerateParams(use="generate", model=str(path), prompt=PROMPT, max_new_tokens=args.new_tokens,
                                min_new_tokens=args.new_tokens, output_column="question",
                                resources={"num_gpus": 1 if device == "cuda" else 0}, **settings)
        stage = GenerateStage(params, StageContext("bench", 0, 0, "generate"))
        dtype = stage.engine.dtype
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        prompts = [stage.engine.prompt_text({"text": d}) for d in documents]  # the same text on both sides
        table = pa.table({"row_id": [str(i) for i in range(len(documents))], "text": documents})
        parameters = sum(p.numel() for p in model.parameters())

        loop_times, stage_times = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            loop_real, loop_padded, loop_made = run_loop(model, tokenizer, prompts, args.new_tokens, device)
            loop_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            stage(table)
            stage_times.append(time.perf_counter() - started)
            stats = stage.take_metrics()

    loop_rate = loop_made / min(loop_times)
    stage_rate = stats["tokens_out"] / min(stage_times)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"model: Llama/Qwen-shaped ({args.shape}) random weights, {parameters / 1e6:.0f}M parameters, "
          f"{str(dtype).replace('torch.', '')}, {name}")
    print(f"prompts: {len(documents)} EDA documents of 1-12 sentences; {args.new_tokens} new tokens each, greedy")
    print(f"stage settings: batch_size {params.batch_size}, max_batch_tokens {params.max_batch_tokens}")
    print(f"rounds, wall s: loop {', '.join(f'{t:.1f}' for t in loop_times)}; "
          f"stage {', '.join(f'{t:.1f}' for t in stage_times)}")
    print(f"plain loop:     {loop_rate:9.1f} tokens/s  padding efficiency {loop_real / loop_padded:6.1%}")
    print(f"generate stage: {stage_rate:9.1f} tokens/s  padding efficiency "
          f"{stats['tokens_in'] / stats['tokens_in_padded']:6.1%}  ({int(stats['batches'])} batches)")
    print(f"ratio: {stage_rate / loop_rate:.2f}x the loop's tokens/s")


if __name__ == "__main__":
    main()

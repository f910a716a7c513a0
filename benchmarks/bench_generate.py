"""Benchmark: the generate job a user runs (`raybatch run`, engine vllm) against raw vLLM offline
and against a plain transformers loop, each timed as a whole command on the same Parquet file.

- raw vLLM: one process: `LLM(...)`, `LLM.generate` over all prompts, output written to Parquet
  (model load included), with the same settings the stage gives vLLM (dtype; eager mode and a 2 GiB
  KV cache on CPU).
- plain loop: one process: load the model, `generate` in batches of 32 in input order, write Parquet.
- raybatch run: the whole command, Ray start, validation and the exactly-once commit included.

The model is Qwen2-shaped with random weights (`--shape cpu`: hidden 512, 8 layers, 8 query and 2
key/value heads, MLP 1024, an 8k BPE vocabulary trained on the EDA text: about 26M parameters;
`--shape qwen0.5b` on a GPU: hidden 896, 24 layers, 14/2 heads, MLP 4864, bf16). Prompts: EDA
documents of 1-12 sentences under "Write one question a reader might ask about: {text}"; every side
decodes greedily and makes exactly `--new-tokens` tokens per prompt. Rounds alternate; the best of
each side counts. Run:
    .venv/bin/python benchmarks/bench_generate.py            # 1,024 prompts, 32 new tokens
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_summarize import eda_corpus, make_documents  # noqa: E402
from bench_summarize_job import timed  # noqa: E402

PROMPT = "Write one question a reader might ask about: {text}"
SHAPES = {
    "cpu": {"hidden": 512, "layers": 8, "heads": 8, "kv_heads": 2, "intermediate": 1024, "vocab": 8192},
    "qwen0.5b": {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864, "vocab": 32_128},
}
RAW_VLLM = '''
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
def main():
    model, source, target, new_tokens, dtype = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2"); os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform
    llm = LLM(model=model, dtype=dtype, enforce_eager=current_platform.is_cpu(), seed=0)
    table = pq.read_table(source)
    prompts = [PROMPT.format(text=t) for t in table["text"].to_pylist()]
    params = SamplingParams(temperature=0, max_tokens=new_tokens, min_tokens=new_tokens)
    outputs = llm.generate(prompts, params, use_tqdm=False)
    pq.write_table(table.append_column("question", pa.array([o.outputs[0].text for o in outputs])), target)
if __name__ == "__main__":
    main()
'''
LOOP = '''
import sys, torch, pyarrow as pa, pyarrow.parquet as pq
from transformers import AutoModelForCausalLM, AutoTokenizer
model_path, source, target, new_tokens, dtype = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
device = "cuda" if torch.cuda.is_available() else "cpu"
tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(device).eval()
table = pq.read_table(source)
texts, out = table["text"].to_pylist(), []
with torch.inference_mode():
    for start in range(0, len(texts), 32):
        batch = tokenizer([PROMPT.format(text=t) for t in texts[start:start + 32]], return_tensors="pt",
                          padding=True).to(device)
        ids = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        out.extend(tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True))
pq.write_table(table.append_column("question", pa.array(out)), target)
'''


def build_model(folder: Path, corpus: list[str], shape: dict) -> Path:
    from tests.tiny_models import build_qwen2, train_bpe

    shape = dict(shape)
    backend = train_bpe(corpus, vocab_size=shape.pop("vocab"))
    return build_qwen2(folder, backend, max_positions=2048, chat=False, seed=0, **shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: qwen0.5b on a GPU, else cpu")
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-loop", action="store_true", help="time raybatch and raw vLLM only")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    import yaml

    gpu = torch.cuda.is_available()
    shape = args.shape or ("qwen0.5b" if gpu else "cpu")
    dtype = "bfloat16" if gpu else "float32"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    corpus = eda_corpus()
    documents = make_documents(corpus, args.docs, 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(tmp / "qwen2-random", corpus, SHAPES[shape])
        parameters = sum(p.numel() for p in __import__("safetensors.torch").torch.load_file(
            str(model / "model.safetensors")).values())
        source = tmp / "in" / "docs.parquet"
        source.parent.mkdir()
        pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(documents))], "text": documents}), source)
        times: dict[str, list[float]] = {"raybatch run": [], "raw vLLM": [], "plain loop": []}
        for round_ in range(args.rounds):
            common = [str(model), str(source), str(tmp / f"{{}}{round_}.parquet"), str(args.new_tokens), dtype]
            raw = [sys.executable, "-c", f"PROMPT = {PROMPT!r}\n{RAW_VLLM}"]
            times["raw vLLM"].append(timed(raw + [a.format("raw") for a in common], env))
            if not args.skip_loop:
                loop = [sys.executable, "-c", f"PROMPT = {PROMPT!r}\n{LOOP}"]
                times["plain loop"].append(timed(loop + [a.format("loop") for a in common], env))
            spec = tmp / f"job{round_}.yaml"
            spec.write_text(yaml.safe_dump({
                "name": "bench-generate", "input": {"path": str(source.parent), "id_column": "id"},
                "output": {"path": str(tmp / f"out{round_}")},
                "stages": [{"use": "generate", "engine": "vllm", "model": str(model), "prompt": PROMPT,
                            "output_column": "question", "max_new_tokens": args.new_tokens,
                            "min_new_tokens": args.new_tokens, "dtype": dtype}]}))
            times["raybatch run"].append(timed([str(Path(sys.executable).parent / "raybatch"), "run", str(spec)], env))
    best = {side: min(t) for side, t in times.items() if t}
    tokens = len(documents) * args.new_tokens
    print(f"model: Qwen2-shaped ({shape}) random weights, {parameters / 1e6:.1f}M parameters, {dtype}, "
          f"{torch.cuda.get_device_name() if gpu else f'CPU ({os.cpu_count()} cores)'}")
    print(f"prompts: {len(documents)} EDA documents; {args.new_tokens} new tokens each, greedy")
    for side, wall in best.items():
        rounds = ", ".join(f"{t:.1f}" for t in times[side])
        print(f"{side:13s} {len(documents) / wall:7.2f} rows/s {tokens / wall:9.1f} tokens/s  (wall s: {rounds})")
    print(f"ratio: raybatch run is {best['raw vLLM'] / best['raybatch run']:.2f}x raw vLLM's throughput")
    if "plain loop" in best:
        print(f"ratio: raybatch run is {best['plain loop'] / best['raybatch run']:.2f}x the plain loop's")


if __name__ == "__main__":
    main()

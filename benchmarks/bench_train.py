"""Benchmark: fine-tuning through `raybatch train` (Ray Train, data-parallel workers on this machine's
CPUs) against the same transformers Trainer run in one process without Ray, each a whole command on
the same model, rows, tokenization and steps.

- Model: a Qwen2-shaped causal LM with random weights (--hidden, --layers), a BPE tokenizer trained on
  SST-2; data: SST-2 reviews as prompt/completion (the export layout), one epoch, sft.
- raybatch: `raybatch train` with --workers workers of batch_size rows each per step.
- one process: `Trainer.train()` with batch_size x workers rows per step (the same global batch and
  number of steps), torch on all cores, the same encode functions (jobs/train/encode.py).
- rows/s and tokens/s (non-padding tokens through the model) over the whole command and over the
  training loop alone (the Trainer's own train_runtime); the difference is where Ray's overhead goes.

    .venv/bin/python benchmarks/bench_train.py
    .venv/bin/python benchmarks/bench_train.py --rows 4000 --hidden 256 --layers 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import run_measured  # noqa: E402


def build(work: Path, rows: int, hidden: int, layers: int) -> tuple[Path, Path]:
    from tests.conftest import eda_sentences
    from tests.helpers.train_data import write_export
    from tests.tiny_models import build_qwen2, train_bpe

    texts = [t for _, t in eda_sentences(size="4_full")]
    model = build_qwen2(work / "model", train_bpe(texts, 2000), hidden=hidden, layers=layers, heads=max(2, hidden // 32),
                        kv_heads=1, max_positions=256)
    data = write_export(work / "export", train_rows=rows, eval_rows=32, size="4_full")
    return model, data


def tokens_per_epoch(model: Path, data: Path, max_length: int) -> int:
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from jobs.train.encode import encode_prompt_completion

    tokenizer = AutoTokenizer.from_pretrained(model)
    table = pq.read_table(data / "train.parquet", columns=["prompt", "completion"])
    return sum(len(encode_prompt_completion(tokenizer, p, c, max_length)["input_ids"])
               for p, c in zip(table["prompt"].to_pylist(), table["completion"].to_pylist()))


def one_process(model: str, data: str, out: str, batch: int, max_length: int, lr: float) -> None:
    """The same Trainer, one process, no Ray: prints the Trainer's train_runtime and steps."""
    import pyarrow.parquet as pq
    import torch
    import transformers

    from jobs.train.encode import encode_prompt_completion, pad_batch

    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    table = pq.read_table(Path(data) / "train.parquet", columns=["prompt", "completion"])
    rows = [encode_prompt_completion(tokenizer, p, c, max_length)
            for p, c in zip(table["prompt"].to_pylist(), table["completion"].to_pylist())]
    args = transformers.TrainingArguments(output_dir=out, per_device_train_batch_size=batch, num_train_epochs=1,
                                          learning_rate=lr, logging_steps=10, save_strategy="no", report_to=[],
                                          disable_tqdm=True, use_cpu=True, seed=0, remove_unused_columns=False)
    trainer = transformers.Trainer(model=transformers.AutoModelForCausalLM.from_pretrained(model), args=args,
                                   train_dataset=rows, data_collator=lambda b: pad_batch(b, tokenizer.pad_token_id))
    result = trainer.train()
    print(json.dumps({"train_runtime": result.metrics["train_runtime"], "steps": trainer.state.global_step,
                      "loss": result.training_loss}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one-process":
        one_process(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2048, help="training rows (one epoch)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per worker per step")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    lr = 1e-3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, data = build(work, args.rows, args.hidden, args.layers)
        tokens = tokens_per_epoch(model, data, args.max_length)
        print(f"{args.rows:,} SST-2 rows, {tokens:,} tokens per epoch; Qwen2-shaped random model hidden {args.hidden}, "
              f"{args.layers} layers; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}", flush=True)
        import yaml

        spec = {"name": "bench-train", "seed": 0, "output": {"path": str(work / "out")},
                "train": {"data": str(data), "model": str(model), "epochs": 1, "learning_rate": lr,
                          "batch_size": args.batch_size, "max_length": args.max_length, "eval_split": None,
                          "logging_steps": 10, "save_steps": 10_000, "resources": {"num_workers": args.workers}}}
        (work / "train.yaml").write_text(yaml.safe_dump(spec))
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        seconds, peak, _ = run_measured([str(Path(sys.executable).with_name("raybatch")), "train",
                                         str(work / "train.yaml")], env)
        manifest = json.loads((work / "out" / "_manifest.json").read_text())
        loop = next(h["train_runtime"] for h in manifest["log_history"] if "train_runtime" in h)
        base_seconds, base_peak, output = run_measured([sys.executable, __file__, "--one-process", str(model), str(data),
                                                        str(work / "base"), str(args.batch_size * args.workers),
                                                        str(args.max_length), str(lr)])
        base = json.loads(output.strip().splitlines()[-1])
        for name, whole, inner, steps, mem in (("raybatch train", seconds, loop, manifest["steps"], peak),
                                               ("one process", base_seconds, base["train_runtime"], base["steps"],
                                                base_peak)):
            print(f"{name:15} {steps} steps: whole command {whole:6.1f} s = {args.rows / whole:7.1f} rows/s "
                  f"{tokens / whole:9,.0f} tokens/s; training loop {inner:6.1f} s = {args.rows / inner:7.1f} rows/s "
                  f"{tokens / inner:9,.0f} tokens/s; peak {mem / 2**20:,.0f} MiB", flush=True)
        print(f"ratio raybatch / one process: whole command {base_seconds / seconds:.2f}x, training loop "
              f"{base['train_runtime'] / loop:.2f}x; Ray start, workers, data and commit: {seconds - loop:.1f} s "
              f"against {base_seconds - base['train_runtime']:.1f} s of imports and loading", flush=True)


if __name__ == "__main__":
    main()

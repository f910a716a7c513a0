"""Build the demo's smoke-test models: a tiny T5 (out/demo_model) and a tiny chat model, Qwen2-shaped
(out/demo_chat_model), both with RANDOM weights and a BPE tokenizer trained on sample_data/ text.
Their output is noise; they exist so `make demo` can show model stages and fine-tuning offline (no
hub download). Real jobs name real models (see jobs/specs/).

Run from the project root: python tools/build_demo_model.py [--out out/demo_model] [--chat-out ...] [--force]
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CARD = """# SMOKE-TEST MODEL (random weights: its text is noise)

Built by tools/build_demo_model.py for `make demo`: a tiny T5 (d_model 64, 2+2 layers) with random
weights and a byte-level BPE tokenizer trained on sample_data/. It exercises loading, batching and
bookkeeping of the summarize stage offline. Do not use its output for anything.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo_model")
    parser.add_argument("--chat-out", default="out/demo_chat_model")
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder holds a model")
    args = parser.parse_args()
    out, chat_out = Path(args.out), Path(args.chat_out)
    if (out / "config.json").exists() and (chat_out / "config.json").exists() and not args.force:
        print(f"smoke-test models already in {out} and {chat_out} (use --force to rebuild)")
        return

    import pyarrow.parquet as pq

    from tests.tiny_models import build_qwen2, build_t5, train_bpe

    texts = [t for path in sorted(glob.glob(str(ROOT / "sample_data" / "*" / "*.parquet")))
             for t in pq.read_table(path, columns=["text"])["text"].to_pylist() if t]
    backend = train_bpe(texts, vocab_size=2000)
    build_t5(out, backend, d_model=64, layers=2, heads=4, d_ff=128, init_factor=5.0, max_input_tokens=256)
    (out / "README.md").write_text(CARD, encoding="utf-8")
    build_qwen2(chat_out, backend, hidden=64, layers=2, max_positions=512)
    (chat_out / "README.md").write_text(CARD.replace("a tiny T5 (d_model 64, 2+2 layers)",
                                                     "a tiny Qwen2-shaped chat model (hidden 64, 2 layers)")
                                        .replace("of the summarize stage", "of fine-tuning and the generate stage"),
                                        encoding="utf-8")
    print(f"built the smoke-test models (random weights, output is noise) in {out} and {chat_out}")

if __name__ == "__main__":
    main()

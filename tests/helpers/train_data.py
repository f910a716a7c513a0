"""Fine-tuning data laid out as `raybatch export` writes it (one Parquet file per split and
`_export.json`), built from real SST-2 sentences: prompt/completion, messages, text and label."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import eda_sentences

PROMPT = "Review: {text}\nIs this review positive or negative?"
NAMES = {0: "negative", 1: "positive"}
MESSAGE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def write_export(folder: Path, train_rows: int = 64, eval_rows: int = 16, size: str = "1_tiny") -> Path:
    """An export folder with `train` and `validation` splits of SST-2 reviews (EDA's `size` set)."""
    rows = eda_sentences(size=size, limit=train_rows + eval_rows)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": rows[:train_rows], "validation": rows[train_rows:]}
    for split, part in splits.items():
        prompts = [PROMPT.format(text=text) for _, text in part]
        completions = [NAMES[label] for label, _ in part]
        table = pa.table({
            "row_id": [f"{split}-{i}" for i in range(len(part))],
            "prompt": prompts, "completion": completions,
            "messages": pa.array([[{"role": "user", "content": p}, {"role": "assistant", "content": c}]
                                  for p, c in zip(prompts, completions)], MESSAGE),
            "text": [text for _, text in part], "label": [label for label, _ in part],
            "split": [split] * len(part)})
        pq.write_table(table, folder / f"{split}.parquet")
    files = sorted(f"{split}.parquet" for split in splits)
    (folder / "_export.json").write_text(json.dumps({"source": "tests", "files": files,
                                                     "splits": {s: len(p) for s, p in splits.items()}}))
    return folder


def train_spec(data: Path, model: Path, out: Path, **train) -> dict:
    """A train spec (as a mapping) over `data` with a few steps on 2 CPU workers."""
    section = {"data": str(data), "model": str(model), "task": "sft", "max_steps": 6, "learning_rate": 3e-3,
               "batch_size": 8, "max_length": 96, "logging_steps": 3, "save_steps": 3,
               "resources": {"num_workers": 2}, **train}
    return {"name": "sft-test", "seed": 0, "train": section, "output": {"path": str(out)}}

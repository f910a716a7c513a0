"""Build sample_data/ Parquet files from the EDA sentence-classification sets (see sample_data/README.md).

Run from the project root: python tools/build_sample_data.py [path/to/shared/data/eda]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SETS = {"sst2": "reviews", "cr": "reviews", "subj": "subjectivity", "trec": "questions"}


def read_set(root: Path, size: str, name: str) -> list[tuple[int, str]]:
    rows = []
    for line in (root / size / name / "train_orig.txt").read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        if text.strip():
            rows.append((int(label), text.strip()))
    return rows


def main(eda_root: str) -> None:
    root, out = Path(eda_root), Path("sample_data")
    rng = random.Random(0)
    for name, folder in SETS.items():
        rows = read_set(root, "4_full", name)
        picked = rng.sample(rows, 300)  # the small files are unbalanced; sample the full split
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        splits = ["train"] * 240 + ["validation"] * 60
        pq.write_table(pa.table({
            "id": [f"{name}-{i:04d}" for i in range(len(picked))],
            "text": [text for _, text in picked],
            "label": [label for label, _ in picked],
            "split": splits,
            "source": [name] * len(picked),
        }), target / f"{name}.parquet", row_group_size=100)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/eda")

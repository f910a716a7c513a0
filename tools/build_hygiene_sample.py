"""Build sample_data/hygiene/ (see sample_data/README.md): real sentences with planted personal data,
exact and near copies, and an eval set some rows copy, for the hygiene demo job.

Run from the project root: python tools/build_hygiene_sample.py [path/to/shared/data/eda]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Made-up values that pass their checksums (Luhn, mod 97, GB 11643 check digit): no real person's.
PLANTED_EN = ["you can reach the reviewer at jane.doe@example.com for the full notes",
              "call the box office on +44 20 7946 0958 before friday",
              "refund went to card 4111 1111 1111 1111 after two weeks",
              "wire it to DE89 3704 0044 0532 0130 00 and keep the receipt",
              "the stream kept dropping from 203.0.113.42 all evening",
              "my ssn 078-05-1121 was printed on the ticket stub which is absurd",
              "the api link was https://api.example.com/v1?token=9f8e7d6c5b4a39281706 oops"]
PLANTED_ZH = ["请联系13812345678获取退款",
              "身份证号11010519491231002X已登记",
              "发邮件到wang.fang@example.cn或者打电话",
              "付款卡号6222021234567890128已冻结"]


def sentences(path: Path) -> list[str]:
    rows = [line.partition("\t")[2].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(r for r in rows if len(r.split()) >= 8))


def main(eda_root: str) -> None:
    root, out = Path(eda_root), Path("sample_data/hygiene")
    rng = random.Random(0)
    corpus = rng.sample(sentences(root / "4_full" / "sst2" / "train_orig.txt"), 260)
    chinese = [t for t in pq.read_table("sample_data/multilingual/zh_mixed.parquet")["text"].to_pylist()[:100]
               if len(t) >= 10][:40]
    evals = rng.sample(sentences(root / "test" / "sst2" / "test.txt"), 30)
    rows = corpus + chinese + PLANTED_EN + PLANTED_ZH + evals[:5]  # five rows copy the eval set
    for text in rng.sample(corpus, 10):  # exact copies: case and spacing differ
        rows.append("  " + text.upper() + " ")
    for text in rng.sample(corpus, 10):  # near copies: one word changed
        words = text.split()
        words[rng.randrange(len(words))] = rng.choice(["really", "quite", "truly", "rather"])
        rows.append(" ".join(words))
    rng.shuffle(rows)
    out.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for name, part in (("part-0", rows[:half]), ("part-1", rows[half:])):
        start = 0 if name == "part-0" else half
        pq.write_table(pa.table({"id": [f"hyg-{start + i:04d}" for i in range(len(part))], "text": part}),
                       out / f"{name}.parquet")
    eval_dir = Path("sample_data/hygiene_eval")
    eval_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": evals, "label": [0] * len(evals)}), eval_dir / "sst2_test.parquet")
    print(f"{len(rows)} rows in {out}, {len(evals)} eval rows in {eval_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/eda")

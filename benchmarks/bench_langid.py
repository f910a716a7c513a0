"""Benchmark: the langid stage's identifier (`jobs.hygiene.langid.LanguageId.detect_many`, as the
stage calls it per batch) against plain `py3langid.classify` row by row, on real translated
sentences of fourteen languages (Debian's gettext catalogs, frozen in tests/data/lang_sentences.json.gz;
tests/helpers/lang_corpus.py).

- Accuracy: overall, per language, and on the harder slice: Chinese rows with an English phrase
  inserted (label zh) and 2-3 word messages of every language. "und" counts as wrong.
- Speed: rows/s over the whole labelled set, the best of `--repeat` timings per side, the sides
  alternating in one process (model loads excluded: both load once, before timing).

    .venv/bin/python benchmarks/bench_langid.py                 # 300 sentences per language
    .venv/bin/python benchmarks/bench_langid.py --per-lang 100 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def accuracy(predicted: list[str], rows: list[tuple[str, str]]) -> float:
    return sum(code == label for code, (_, label) in zip(predicted, rows)) / max(len(rows), 1)


def per_language(predicted: list[str], rows: list[tuple[str, str]]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for code, (_, label) in zip(predicted, rows):
        hits[label].append(code == label)
    return {label: sum(found) / len(found) for label, found in hits.items()}


def rows_per_second(run, texts: list[str]) -> float:
    start = time.perf_counter()
    run(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-lang", type=int, default=300, help="sentences per language (default 300)")
    parser.add_argument("--mixed", type=int, default=100, help="code-mixed Chinese rows (default 100)")
    parser.add_argument("--short-per-lang", type=int, default=20, help="2-3 word messages per language (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per side; the best counts (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import py3langid

    from jobs.hygiene.langid import LanguageId
    from tests.helpers.lang_corpus import FOURTEEN, code_mixed_chinese, labelled_sentences, short_messages

    rows = labelled_sentences(FOURTEEN, args.per_lang, args.seed)
    mixed = code_mixed_chinese(args.mixed, args.seed)
    short = short_messages(FOURTEEN, args.short_per_lang, args.seed)
    texts = [text for text, _ in rows]
    print(f"corpus: {len(rows):,} sentences in {len({code for _, code in rows})} languages, "
          f"{len(mixed)} code-mixed Chinese rows, {len(short)} short messages", flush=True)

    model = LanguageId()
    sides = {"ours": lambda batch: [code for code, _ in model.detect_many(batch)],
             "py3langid": lambda batch: [py3langid.classify(text)[0] for text in batch]}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeat):  # alternate, so that a busy machine slows both sides alike
        for name, run in sides.items():
            rates[name].append(rows_per_second(run, texts))

    results = {}
    for name, run in sides.items():
        predicted = run(texts)
        results[name] = {"all": accuracy(predicted, rows), "langs": per_language(predicted, rows),
                         "mixed": accuracy(run([t for t, _ in mixed]), mixed),
                         "short": accuracy(run([t for t, _ in short]), short), "rate": max(rates[name])}

    print(f"{'':10} {'overall':>8} {'code-mixed':>11} {'short':>7} {'rows/s':>9}")
    for name, r in results.items():
        print(f"{name:10} {r['all']:8.3f} {r['mixed']:11.3f} {r['short']:7.3f} {r['rate']:9,.0f}")
    print("per language (ours / py3langid):")
    langs = {code: results["ours"]["langs"][code] for code in FOURTEEN if code in results["ours"]["langs"]}
    print("  " + "  ".join(f"{code} {langs[code]:.2f}/{results['py3langid']['langs'][code]:.2f}" for code in langs))
    worst = sorted(langs, key=langs.get)[:3]
    print("worst three, ours: " + ", ".join(f"{code} {langs[code]:.3f}" for code in worst))
    theirs = results["py3langid"]["langs"]
    worst = sorted(theirs, key=theirs.get)[:3]
    print("worst three, py3langid: " + ", ".join(f"{code} {theirs[code]:.3f}" for code in worst))
    print(f"ratio: {results['ours']['rate'] / results['py3langid']['rate']:.2f}x py3langid's rows/s", flush=True)


if __name__ == "__main__":
    main()

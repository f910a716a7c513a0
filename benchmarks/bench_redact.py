"""Benchmark: the redact stage's detector (`jobs.hygiene.pii.Detector.find`, row by row as the stage
calls it) against Microsoft Presidio's AnalyzerEngine, on the same rows of the planted corpus
(tests/helpers/pii_corpus.py): real English and Chinese sentences with checksum-valid values planted,
decoys (prices, years, dates, versions, numbers failing their checksum) and clean sentences.
Presidio is the usual off-the-shelf answer to "find PII"; this says what ours gains or loses against it.

Presidio runs offline: a blank English spaCy pipeline (no model: no NER, and no lemmas, so its context
words never raise a score; at its default threshold 0 every match counts anyway), only the pattern
recognizers of the kinds both sides know (PRESIDIO_KINDS), at their defaults, and its email check reads
the public suffix list bundled with tldextract instead of fetching it. Every socket connection and
DNS lookup in this process is refused and counted (0 expected). Presidio has no Chinese resident id and
no secret/token recognizer, so those kinds score 0 for it.

- recall per kind: a planted value counts found when a detected span of its kind contains it or lies
  inside it (the rule of tests/unit/test_pii.py); "exact" is the share of values whose span is exactly
  the value (a span that swallows the Chinese text around a value still counts found, not exact).
- zh rows: recall on planted values in rows with Chinese characters (built on a Chinese sentence).
- decoy / clean rows flagged: the share of rows with any detection (all of them are false alarms).
- rows/s: all rows (planted + decoys + clean), the best of --rounds, the sides alternating in this one
  process; imports and engine building are excluded (and reported), both sides are warmed up first.

    .venv/bin/pip install -e ".[bench]"                        # Presidio (no spaCy model is needed)
    .venv/bin/python benchmarks/bench_redact.py                 # 2,000 planted, 2,000 decoys, 5,000 clean
    .venv/bin/python benchmarks/bench_redact.py --rounds 1 --min-score 0.5
"""

from __future__ import annotations

import argparse
import re
import resource
import socket
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Presidio entity -> (our kind, its recognizer class in presidio_analyzer.predefined_recognizers).
# Ours also finds cn_id and secret: Presidio has nothing for them.
PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": ("email", "EmailRecognizer"),
    "PHONE_NUMBER": ("phone", "PhoneRecognizer"),
    "CREDIT_CARD": ("credit_card", "CreditCardRecognizer"),
    "IBAN_CODE": ("iban", "IbanRecognizer"),
    "IP_ADDRESS": ("ip", "IpRecognizer"),
    "US_SSN": ("us_ssn", "UsSsnRecognizer"),
}
CJK = re.compile(r"[\u3400-\u9fff]")
NETWORK_TRIES: list[str] = []


def forbid_network() -> None:
    """Make every connection and DNS lookup of this process fail, and count the tries."""
    def refuse(*args, **kwargs):
        NETWORK_TRIES.append(repr(args[1] if isinstance(args[0], socket.socket) else args[0])[:80])
        raise OSError("no network in this benchmark")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.getaddrinfo = socket.create_connection = refuse


def presidio_engine(min_score: float):
    """find(text) -> [(kind, start, end)] with Presidio, built offline as the docstring says."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, predefined_recognizers
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    # No URLs and no cache: the suffix list snapshot inside the tldextract package, never a download.
    suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(predefined_recognizers.EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return suffixes(pattern_text).fqdn != ""

    class BlankSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:  # the stock load() downloads a missing model
            self.nlp = {"en": spacy.blank("en")}

    recognizers = [OfflineEmailRecognizer() if cls == "EmailRecognizer" else getattr(predefined_recognizers, cls)()
                   for _, cls in PRESIDIO_KINDS.values()]
    engine = AnalyzerEngine(registry=RecognizerRegistry(recognizers), nlp_engine=BlankSpacyEngine())
    entities = list(PRESIDIO_KINDS)

    def find(text: str) -> list[tuple[str, int, int]]:
        results = engine.analyze(text, language="en", entities=entities, score_threshold=min_score)
        return sorted((PRESIDIO_KINDS[r.entity_type][0], r.start, r.end) for r in results)

    return find


def run_all(find, texts: list[str]) -> tuple[list[list[tuple[str, int, int]]], float]:
    start = time.perf_counter()
    found = [find(text) for text in texts]
    return found, time.perf_counter() - start


def score(rows: list[dict], found: list[list[tuple[str, int, int]]]) -> dict:
    """Recall per kind (found, exact, planted), over all and on Chinese rows; keys of found values."""
    per_kind: dict[str, Counter] = {}
    hits, total, zh_hits, zh_total, keys = 0, 0, 0, 0, set()
    for i, (row, spans) in enumerate(zip(rows, found)):
        text, chinese = row["text"], bool(CJK.search(row["text"]))
        for j, (kind, value) in enumerate(row["planted"]):
            got = [text[s:e] for k, s, e in spans if k == kind]
            ok = any(value in v or v in value for v in got)
            counts = per_kind.setdefault(kind, Counter())
            counts.update(planted=1, found=ok, exact=value in got)
            hits, total = hits + ok, total + 1
            zh_hits, zh_total = zh_hits + (ok and chinese), zh_total + chinese
            if ok:
                keys.add((i, j))
    return {"kinds": per_kind, "recall": hits / total, "zh": zh_hits / max(zh_total, 1), "zh_total": zh_total,
            "keys": keys}


def flagged(found: list[list[tuple[str, int, int]]]) -> tuple[float, Counter]:
    """Share of rows with any detection, and the detections by kind."""
    return sum(bool(f) for f in found) / max(len(found), 1), Counter(k for f in found for k, _, _ in f)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planted", type=int, default=2000, help="rows with planted values (default 2,000)")
    parser.add_argument("--decoys", type=int, default=2000, help="rows with numbers that are not PII (default 2,000)")
    parser.add_argument("--clean", type=int, default=5000, help="real sentences as they are (default 5,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timings per side; the fastest counts (default 3)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="Presidio's score threshold (default 0, its own default: every match counts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    forbid_network()

    start = time.perf_counter()
    from jobs.hygiene.pii import KINDS, Detector
    from tests.helpers.pii_corpus import clean_rows, decoy_rows, planted_rows

    detector = Detector()
    ours_load = time.perf_counter() - start
    planted, decoys, clean = planted_rows(args.planted, args.seed), decoy_rows(args.decoys, args.seed), \
        clean_rows(args.clean)
    rows = planted + decoys + clean
    texts = [row["text"] for row in rows]
    n_zh = sum(bool(CJK.search(t)) for t in texts)
    print(f"corpus: {len(planted):,} planted rows ({sum(len(r['planted']) for r in planted):,} values), "
          f"{len(decoys):,} decoy rows, {len(clean):,} clean rows; {n_zh:,} of {len(rows):,} rows Chinese", flush=True)

    def ours(text: str) -> list[tuple[str, int, int]]:
        return [(f.kind, f.start, f.end) for f in detector.find(text)]

    ours(texts[0])
    rss_ours = peak_rss_mib()
    start = time.perf_counter()
    theirs = presidio_engine(args.min_score)
    presidio_load = time.perf_counter() - start
    print(f"load (not timed below): ours {ours_load:.2f} s (import + Detector()), Presidio {presidio_load:.2f} s "
          f"(import + blank spaCy + {len(PRESIDIO_KINDS)} recognizers)", flush=True)

    sides = {"ours": ours, "Presidio": theirs}
    for find in sides.values():  # warm-up: first-use costs (lazy regex compiles, phone metadata)
        run_all(find, texts[:: max(len(texts) // 200, 1)])
    best: dict[str, float] = {}
    found: dict[str, list] = {}
    for _ in range(args.rounds):  # alternate, so a busy machine slows both sides alike
        for name, find in sides.items():
            found[name], seconds = run_all(find, texts)
            best[name] = min(best.get(name, seconds), seconds)

    n_p, n_d = len(planted), len(decoys)
    scores = {name: score(planted, f[:n_p]) for name, f in found.items()}
    print(f"\n{'kind':12} {'planted':>8} {'ours':>7} {'exact':>7} {'Presidio':>9} {'exact':>7}")
    for kind in KINDS:
        counts = [scores[name]["kinds"].get(kind, Counter()) for name in sides]
        n = counts[0]["planted"]
        if not n:
            continue
        cells = " ".join(f"{c['found'] / n:>{w}.1%} {c['exact'] / n:>7.1%}" for c, w in zip(counts, (7, 9)))
        note = "" if any(k == kind for k, _ in PRESIDIO_KINDS.values()) else "  (no Presidio recognizer)"
        print(f"{kind:12} {n:>8,} {cells}{note}")
    print(f"{'all':12} {sum(c['planted'] for c in scores['ours']['kinds'].values()):>8,} "
          f"{scores['ours']['recall']:>7.1%} {'':7} {scores['Presidio']['recall']:>9.1%}")
    print(f"{'zh rows':12} {scores['ours']['zh_total']:>8,} {scores['ours']['zh']:>7.1%} {'':7} "
          f"{scores['Presidio']['zh']:>9.1%}")

    print(f"\n{'':10} {'decoy rows flagged':>19} {'clean rows flagged':>19} {'rows/s':>9}  detections on decoys")
    for name in sides:
        decoy_share, decoy_kinds = flagged(found[name][n_p:n_p + n_d])
        clean_share, _ = flagged(found[name][n_p + n_d:])
        kinds = ", ".join(f"{k} {c}" for k, c in decoy_kinds.most_common()) or "none"
        print(f"{name:10} {decoy_share:>19.2%} {clean_share:>19.2%} {len(texts) / best[name]:>9,.0f}  {kinds}")
    print(f"speed ratio ours / Presidio: {best['Presidio'] / best['ours']:.1f}x (best of {args.rounds}, "
          f"{len(texts):,} rows, one row per call)")

    missed = scores["Presidio"]["keys"] - scores["ours"]["keys"]
    examples = [planted[i]["planted"][j] for i, j in sorted(missed)[:3]]
    print(f"values Presidio found and ours missed: {len(missed)}" + "".join(f"\n  {k}: {v!r}" for k, v in examples))
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB (corpus + ours alone: {rss_ours:,.0f} MiB); "
          f"network tries: {len(NETWORK_TRIES)}" + (f" {NETWORK_TRIES[:3]}" if NETWORK_TRIES else ""))


if __name__ == "__main__":
    main()

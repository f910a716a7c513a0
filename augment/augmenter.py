"""The augmenter: each row's copies, with one retry loop for rule and model ops, the quality guards
(no copy equal to its parent or a sibling, the edit-rate bound) and the reasons a row gets fewer
copies than asked. No Ray and no Arrow here: tests and the stage call `augment_block(texts, ids)`.

A copy is a function of (spec seed, row_id, copy, op, attempt) only, never of order, block or
worker. Copy `c` of a row applies the row's ops in turn starting at an offset taken from its row
id, so with fewer copies than ops every op still gets its share of the rows.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from dataclasses import dataclass, field

from augment import languages, measures, ops, rng
from augment.params import AugmentParams

# 53 bits: every seed is exact as a float64 too, so a reader that turns a nullable integer column
# into floats (pandas, JSON in JavaScript) still holds the seed that replays the copy.
_SEED_MASK = (1 << 53) - 1
# Rows whose copies rule ops make together: few enough that their parses stay cached (tokens.PARSE_CACHE).
RULE_CHUNK = 256


def derive_seed(seed: int, row_id: str, copy: int, op: str, attempt: int) -> int:
    """A copy's seed: a hash of what identifies it, never of order, block or worker."""
    return derive_seeds(seed, [row_id], copy, op, attempt)[0]


def derive_seeds(seed: int, row_ids: list[str], copy: int, op: str, attempt: int) -> list[int]:
    """`derive_seed` for many rows' same copy and attempt: the key's fixed parts are formatted once."""
    head, tail = f"{seed}\x1f", f"\x1f{copy}\x1f{op}\x1f{attempt}"
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    return [from_bytes(blake2b((head + row_id + tail).encode(), digest_size=8).digest(), "little") & _SEED_MASK
            for row_id in row_ids]


def first_plan(seed: int, row_id: str, plans: int) -> int:
    """Which op a row's copy 0 applies (copy c applies the next c-th): stable per (seed, row_id)."""
    return (zlib.crc32(row_id.encode()) + seed) % plans if plans > 1 else 0


@dataclass
class Copy:
    index: int
    text: str
    op: str
    seed: int
    edit_rate: float


@dataclass
class RowResult:
    copies: list[Copy] = field(default_factory=list)
    skipped: str | None = None  # row-level reason, or the per-copy reasons joined by "; "


@dataclass
class _Plan:
    label: str  # what aug_op says: the op, or the chained ops joined by "+"
    specs: list  # the op params applied in order
    bound: float  # the edit-rate bound
    retries: int
    lexical: bool  # some op needs English words (WordNet) and has no model to fall back on


class Augmenter:
    """The per-row logic: `augment_block(texts, row_ids, langs)` gives each row its copies."""

    def __init__(self, params: AugmentParams, seed: int, lexicon=None, device: str = "cpu"):
        self.params = params
        self.seed = seed
        self.device = device  # where model-backed ops run
        if params.needs_lexicon and lexicon is None:
            from augment.lexicon import default_lexicon

            lexicon = default_lexicon()
        stopwords = {"english": ops.STOPWORDS, "none": frozenset()}.get(params.stopwords) \
            if isinstance(params.stopwords, str) else frozenset(w.lower() for w in params.stopwords)
        self.vocab = ops.Vocab(lexicon=lexicon, stopwords=stopwords,
                               protect=frozenset(w.lower() for w in params.protect))
        self.counts: Counter[str] = Counter()
        groups = [list(params.ops)] if params.chain else [[op] for op in params.ops]
        self._plans = [self._plan(specs) for specs in groups]
        self._lexical = any(plan.lexical for plan in self._plans)

    def _plan(self, specs: list) -> _Plan:
        bounds = [spec.edit_bound for spec in specs]
        bound = bounds[0] if len(bounds) == 1 else (float("inf") if float("inf") in bounds else min(1.0, sum(bounds)))
        # An op whose output does not depend on the seed would only repeat itself.
        retries = self.params.retries if any(spec.seed_sensitive for spec in specs) else 0
        lexical = any(spec.needs_lexicon for spec in specs)
        return _Plan("+".join(spec.op for spec in specs), specs, bound, retries, lexical)

    def take_counts(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts

    def copy_ops(self, row_id: str, copy: int) -> tuple[str, list]:
        """The op label and op specs the stage gives copy number `copy` of row `row_id`."""
        plan = self._plans[(first_plan(self.seed, row_id, len(self._plans)) + copy) % len(self._plans)]
        return plan.label, plan.specs

    def replay(self, text: str, seed: int, op_specs: list) -> str | None:
        """Redo one copy from its `aug_seed` and op(s): what the stage wrote, byte for byte
        (None when no op found anything to edit)."""
        return self._run([text], [seed], op_specs)[0][0]

    def skip_reason(self, text, lang: str | None = None) -> str | None:
        """Why a row is kept without copies, before any op runs."""
        if text is None:
            return "null_text"
        p = self.params
        if p.languages is not None and (str(lang) if lang else languages.detect(text)).lower() not in p.languages:
            return "language_not_selected"
        if p.min_english and languages.english_ratio(text, self.vocab) < p.min_english:
            return "not_english"
        if ops.word_count(text) < p.min_words:
            return "too_short"
        return None

    def augment(self, text: str | None, row_id: str) -> RowResult:
        return self.augment_block([text], [row_id])[0]

    def augment_block(self, texts: list[str | None], row_ids: list[str],
                      langs: list[str | None] | None = None) -> list[RowResult]:
        """Each row's copies and why some are missing; what a row gets depends on that row alone.
        Rule ops take the rows a chunk at a time (the chunk's parses stay cached across its copies
        and checks); model ops take every live row at once, so each of their calls is one batch."""
        results = [RowResult() for _ in texts]
        live, chunk = [], len(texts) if self.params.uses_models else RULE_CHUNK
        for i, text in enumerate(texts):
            reason = self.skip_reason(text, langs[i] if langs else None)
            if reason is not None:
                self.counts[f"rows_{reason}"] += 1
                results[i].skipped = reason
                continue
            live.append(i)
            if len(live) == chunk:
                self._copies(live, texts, row_ids, results)
                live = []
        if live:
            self._copies(live, texts, row_ids, results)
        return results

    def _run(self, texts: list[str], seeds: list[int], specs: list) -> list[tuple[str | None, list[str]]]:
        """Apply the ops in order to each text, each with its own generator; per text, the result (None
        if no op changed it) and the ops that had nothing to edit. A model op runs over all texts at once."""
        states = [[text, generator, False, []] for text, generator in zip(texts, rng.for_seeds(seeds))]
        for spec in specs:
            current = [state[0] for state in states]
            if spec.uses_model:
                from augment.model_ops import model_op

                outs = model_op(spec, self.device).apply_batch(current, [state[1] for state in states])
            else:
                outs = [ops.apply(text, state[1], spec, self.vocab) for text, state in zip(current, states)]
            for state, out in zip(states, outs):
                if out is None:
                    state[3].append(spec.op)
                else:
                    state[0], state[2] = out, True
        return [(text if changed else None, idle) for text, _, changed, idle in states]

    def _copies(self, rows: list[int], texts, row_ids, results: list[RowResult]) -> None:
        """Every copy of `rows`: copy by copy, attempt by attempt, the rows still looking for that copy
        go to the ops together. A row without English words gets no lexical copy (unsupported_language)."""
        plans, counts, n_plans = self._plans, self.counts, len(self._plans)
        mine = [texts[i] for i in rows]
        ids = [row_ids[i] for i in rows]
        seen = [{measures.normalize_parsed(text)} for text in mine]
        starts = [first_plan(self.seed, row_id, n_plans) for row_id in ids]
        lexical = self._lexical and [not languages.has_english_words(text, self.vocab) for text in mine]
        notes: list[list[str]] = [[] for _ in rows]
        made = [0] * len(rows)
        for copy in range(self.params.copies):
            by_plan: dict[int, list[int]] = {}
            for k, start in enumerate(starts):
                by_plan.setdefault((start + copy) % n_plans, []).append(k)
            for number, group in by_plan.items():
                plan = plans[number]
                if plan.lexical and any(lexical[k] for k in group):
                    for k in group:
                        if lexical[k]:
                            counts[f"op_{plan.label}_unsupported_language"] += 1
                            notes[k].append(f"{plan.label}:unsupported_language")
                    group = [k for k in group if not lexical[k]]
                for k, kept in self._attempts(plan, copy, group, mine, ids, seen, notes).items():
                    results[rows[k]].copies.append(kept)
                    made[k] += 1
        counts["copies_made"] += sum(made)
        for k, i in enumerate(rows):
            if lexical and lexical[k] and not made[k]:
                counts["rows_unsupported_language"] += 1
            if notes[k]:
                results[i].skipped = "; ".join(dict.fromkeys(notes[k]))

    def _attempts(self, plan: _Plan, copy: int, pending: list[int], texts, row_ids, seen, notes) -> dict[int, Copy]:
        """One copy of each pending row, retried with new seeds while it is a duplicate or edits too much."""
        kept: dict[int, Copy] = {}
        why: dict[int, str] = {}
        counts = self.counts
        label = plan.label
        for attempt in range(plan.retries + 1):
            if not pending:
                break
            seeds = derive_seeds(self.seed, [row_ids[k] for k in pending], copy, label, attempt)
            outs = self._run([texts[k] for k in pending], seeds, plan.specs)
            again = []
            for k, seed, (out, idle) in zip(pending, seeds, outs):
                if attempt == 0:
                    for name in idle:
                        counts[f"op_{name}_no_candidates"] += 1
                if out is not None and attempt:
                    counts[f"op_{label}_retries"] += 1
                reason, rate = self._judge(texts[k], out, seen[k], plan.bound)
                if reason is None:
                    if attempt:
                        why.pop(k, None)
                    kept[k] = Copy(copy, out, label, seed, round(rate, 6))
                    continue
                why[k] = reason
                if reason != "no_candidates":  # another seed finds no more candidates than this one
                    again.append(k)
            pending = again
        if kept:
            counts[f"op_{label}_made"] += len(kept)
        for k, reason in why.items():
            if reason != "no_candidates":
                counts[f"op_{label}_dropped_{reason}"] += 1
            notes[k].append(f"{label}:{reason}")
        return kept

    @staticmethod
    def _judge(text: str, out: str | None, seen: set[str], bound: float) -> tuple[str | None, float]:
        """Why a candidate copy is refused (None: kept), and its edit rate; a kept copy joins `seen`."""
        if out is None:
            return "no_candidates", 0.0
        key = measures.normalize(out)
        if key in seen:
            return "duplicate", 0.0
        rate = measures.edit_rate(text, out)
        if rate > bound:
            return "edit_rate", rate
        seen.add(key)
        return None, rate

"""The augment stage: `copies` augmented rows per input row, each a function of (spec seed, row_id,
copy, op) only, with lineage and quality guards.

Input: `column` (text), optionally `label_column` (carried unchanged) and `split_column`.
Output: `column` rewritten on augmented rows; every row gets `parent_id`, `aug_op`, `aug_seed`,
`is_augmented`, `edit_rate` and `aug_skipped` (why a kept row has fewer copies than asked, or null).
Augmented rows get row ids `<parent>~aug<copy>`.

Accounting: the input row keeps the runner's source flag; copies do not. With
`keep_original: false` the first surviving copy takes the flag, and a row with no surviving copy
is kept unaugmented (counted as `rows_kept_without_copy`).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

from augment import ops
from augment.ops import OpSpec
from jobs.errors import SpecError
from jobs.stages.base import ROW_ID, SOURCE, Stage, StageParams, mark_failed, set_column

LINEAGE_COLUMNS = ("parent_id", "aug_op", "aug_seed", "is_augmented", "edit_rate", "aug_skipped")
_MASK63 = (1 << 63) - 1


class AugmentParams(StageParams):
    column: str
    copies: int = Field(1, ge=1, le=100, description="augmented rows made per input row")
    keep_original: bool = True
    ops: list[OpSpec] = Field(min_length=1, description="each copy applies one op, taken in turn")
    chain: bool = Field(False, description="each copy applies every op in order (nlpaug's Sequential)")
    label_column: str | None = None
    split_column: str | None = None
    splits: list[str] | None = Field(None, min_length=1, description="with split_column: splits augmented "
                                     "(default [train])")
    stopwords: Literal["english", "none"] | list[str] = "english"
    protect: list[str] = Field(default_factory=list, description="words no op edits, moves or deletes")
    min_words: int = Field(3, ge=1, description="rows with fewer words are kept unaugmented")
    min_english: float = Field(0.5, ge=0, le=1, description="rows whose share of English words is lower are "
                               "kept unaugmented (0 turns the guard off)")
    retries: int = Field(3, ge=0, le=20, description="new seeds tried when a copy is a duplicate or edits too much")

    @model_validator(mode="after")
    def _guards(self):
        if self.splits is not None and self.split_column is None:
            raise ValueError("splits needs split_column (the column holding each row's split)")
        return self

    @property
    def needs_lexicon(self) -> bool:
        return self.min_english > 0 or any(op.needs_lexicon for op in self.ops)

    @property
    def uses_models(self) -> bool:
        return any(op.uses_model for op in self.ops)

    @property
    def augmented_splits(self) -> frozenset[str] | None:
        if self.split_column is None:
            return None
        return frozenset(self.splits or ["train"])


def corpus_columns(column: str, label_column: str | None, split_column: str | None) -> dict[str, str]:
    """The columns a corpus stage reads: its text (a string), and its label and split if named (any type)."""
    needed = {column: "string"}
    for extra in (label_column, split_column):
        if extra:
            needed.setdefault(extra, "any")
    return needed


def derive_seed(seed: int, row_id: str, copy: int, op: str, attempt: int) -> int:
    """A copy's seed: a hash of what identifies it, never of order, block or worker."""
    key = f"{seed}\x1f{row_id}\x1f{copy}\x1f{op}\x1f{attempt}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _MASK63


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


class Augmenter:
    """The per-row logic, without Ray or Arrow: tests and the stage call `augment(text, row_id)`."""

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
        if params.chain:
            label = "+".join(op.op for op in params.ops)
            bounds = [op.edit_bound for op in params.ops]
            bound = float("inf") if float("inf") in bounds else min(1.0, sum(bounds))
            self._plans = [(label, list(params.ops), bound, self._retries(params.ops))]
        else:
            self._plans = [(op.op, [op], op.edit_bound, self._retries([op])) for op in params.ops]

    def _retries(self, op_specs: list) -> int:
        # An op whose output does not depend on the seed would only repeat itself.
        return self.params.retries if any(spec.seed_sensitive for spec in op_specs) else 0

    def take_counts(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts

    def replay(self, text: str, seed: int, op_specs: list) -> str | None:
        """Redo one copy from its `aug_seed` and op(s): what the stage wrote, byte for byte
        (None when no op found anything to edit)."""
        return self._run_many([text], [seed], op_specs)[0][0]

    def _run_many(self, texts: list[str], seeds: list[int], op_specs: list) -> list[tuple[str | None, list[str]]]:
        """Apply the ops in order to each text, each with its own generator; per text, the result (None
        if no op changed it) and the ops that had nothing to edit. Model ops run over all texts at once."""
        states = [[text, random.Random(seed), False, []] for text, seed in zip(texts, seeds)]
        for spec in op_specs:
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

    def _run_rules(self, text: str, seed: int, op_specs: list) -> tuple[str | None, list[str]]:
        """`_run_many` for one text and rule ops only: the hot path of rule-based augmentation."""
        rng = random.Random(seed)
        changed, idle = False, []
        for spec in op_specs:
            out = ops.apply(text, rng, spec, self.vocab)
            if out is None:
                idle.append(spec.op)
            else:
                text, changed = out, True
        return (text if changed else None), idle

    def skip_reason(self, text) -> str | None:
        """Why a row is kept without copies, before any op runs."""
        if text is None:
            return "null_text"
        if self.params.min_english and ops.english_ratio(text, self.vocab) < self.params.min_english:
            return "not_english"
        if ops.word_count(text) < self.params.min_words:
            return "too_short"
        return None

    def augment(self, text: str | None, row_id: str) -> RowResult:
        return self.augment_block([text], [row_id])[0]

    def augment_block(self, texts: list[str | None], row_ids: list[str]) -> list[RowResult]:
        """Each row's copies and why some are missing; what a row gets depends on that row alone."""
        results = [RowResult() for _ in texts]
        live = []
        for i, text in enumerate(texts):
            reason = self.skip_reason(text)
            if reason is not None:
                self.counts[f"rows_{reason}"] += 1
                results[i].skipped = reason
            else:
                live.append(i)
        notes: dict[int, list[str]] = {i: [] for i in live}
        # Rule ops go row by row (a row's parse stays cached across its copies and checks); model ops
        # take every live row at once, so each of their calls is one batch.
        if self.params.uses_models:
            self._copies_of_rows(live, texts, row_ids, results, notes)
        else:
            for i in live:
                self._copies_of_row(i, texts, row_ids, results, notes)
        for i in live:
            self.counts["copies_made"] += len(results[i].copies)
            results[i].skipped = "; ".join(dict.fromkeys(notes[i])) or None
        return results

    def _judge(self, text: str, out: str | None, seen: set[str], bound: float) -> tuple[str | None, float]:
        """Why a candidate copy is refused (None: kept), and its edit rate; a kept copy joins `seen`."""
        if out is None:
            return "no_candidates", 0.0  # another seed finds no more candidates than this one
        key = ops.normalize(out)
        if key in seen:
            return "duplicate", 0.0
        rate = ops.edit_rate(text, out)
        if rate > bound:
            return "edit_rate", rate
        seen.add(key)
        return None, rate

    def _give_up(self, i: int, label: str, reason: str, notes: dict[int, list[str]]) -> None:
        if reason != "no_candidates":
            self.counts[f"op_{label}_dropped_{reason}"] += 1
        notes[i].append(f"{label}:{reason}")

    def _copies_of_row(self, i: int, texts, row_ids, results: list[RowResult], notes: dict[int, list[str]]) -> None:
        """Every copy of one row, rule ops only (the hot path of rule-based augmentation)."""
        text, seen = texts[i], {ops.normalize(texts[i])}
        for copy in range(self.params.copies):
            label, op_specs, bound, retries = self._plans[copy % len(self._plans)]
            reason = None
            for attempt in range(retries + 1):
                seed = derive_seed(self.seed, row_ids[i], copy, label, attempt)
                out, idle = self._run_rules(text, seed, op_specs)
                if attempt == 0:
                    for name in idle:
                        self.counts[f"op_{name}_no_candidates"] += 1
                if out is not None and attempt:
                    self.counts[f"op_{label}_retries"] += 1
                reason, rate = self._judge(text, out, seen, bound)
                if reason is None:
                    results[i].copies.append(Copy(copy, out, label, seed, round(rate, 6)))
                    self.counts[f"op_{label}_made"] += 1
                    break
                if reason == "no_candidates":
                    break
            if reason is not None:
                self._give_up(i, label, reason, notes)

    def _copies_of_rows(self, rows: list[int], texts, row_ids, results: list[RowResult],
                        notes: dict[int, list[str]]) -> None:
        """Every copy of many rows when an op needs a model: copy by copy, attempt by attempt, the rows
        still looking for that copy go to the ops together, so each model call is one batch."""
        seen = {i: {ops.normalize(texts[i])} for i in rows}
        for copy in range(self.params.copies):
            label, op_specs, bound, retries = self._plans[copy % len(self._plans)]
            pending, why = list(rows), {}
            for attempt in range(retries + 1):
                if not pending:
                    break
                seeds = [derive_seed(self.seed, row_ids[i], copy, label, attempt) for i in pending]
                outs = self._run_many([texts[i] for i in pending], seeds, op_specs)
                again = []
                for i, seed, (out, idle) in zip(pending, seeds, outs):
                    if attempt == 0:
                        for name in idle:
                            self.counts[f"op_{name}_no_candidates"] += 1
                    if out is not None and attempt:
                        self.counts[f"op_{label}_retries"] += 1
                    reason, rate = self._judge(texts[i], out, seen[i], bound)
                    if reason is None:
                        why.pop(i, None)
                        results[i].copies.append(Copy(copy, out, label, seed, round(rate, 6)))
                        self.counts[f"op_{label}_made"] += 1
                        continue
                    why[i] = reason
                    if reason != "no_candidates":
                        again.append(i)
                pending = again
            for i, reason in why.items():
                self._give_up(i, label, reason, notes)


class AugmentStage(Stage):
    """Rule-based, offline, deterministic augmentation; see the module docstring for columns."""

    name = "augment"
    Params = AugmentParams
    adds_rows = True

    def __init__(self, params: AugmentParams, context):
        super().__init__(params, context)
        self.augmenter = Augmenter(params, context.seed, device=_model_device(params))

    @classmethod
    def runs_in_actors(cls, params: AugmentParams) -> bool:
        # An op backed by a model loads it once per actor, as the model stages do.
        return params.uses_models

    @classmethod
    def input_columns(cls, params: AugmentParams) -> dict[str, str]:
        return corpus_columns(params.column, params.label_column, params.split_column)

    @classmethod
    def output_columns(cls, params: AugmentParams) -> list[str]:
        return [params.column, *LINEAGE_COLUMNS]

    @classmethod
    def preflight(cls, params: AugmentParams) -> None:
        if params.needs_lexicon:
            from augment.lexicon import check

            check()
        for index, op in enumerate(params.ops):
            if op.uses_model:
                from augment.model_ops import check_files

                try:
                    check_files(op)
                except SpecError as exc:
                    raise SpecError(f"ops[{index}] ({op.op}).{exc}") from None

    def __call__(self, batch: pa.Table) -> pa.Table:
        p = self.params
        texts, failures = _texts(batch[p.column])
        row_ids = batch[ROW_ID].to_pylist()
        splits = batch[p.split_column].to_pylist() if p.split_column else None
        allowed = p.augmented_splits
        results: dict[int, RowResult] = {}
        chosen = []
        for i in range(len(texts)):
            if i in failures:
                continue
            if allowed is not None and splits[i] not in allowed:
                self.augmenter.counts["rows_split_not_augmented"] += 1
                results[i] = RowResult(skipped="split")
            else:
                chosen.append(i)
        made = self.augmenter.augment_block([texts[i] for i in chosen], [row_ids[i] for i in chosen])
        results.update(zip(chosen, made))
        # One tuple per output row: (input index, text, row_id, op, seed, augmented, rate, skipped, source)
        rows: list[tuple] = []
        # A row accounts for its input row only if it came in doing so: after an earlier augment,
        # its copies come in unflagged and their own copies stay unflagged.
        incoming = batch[SOURCE].to_pylist() if SOURCE in batch.column_names else [True] * len(texts)
        for i, (text, row_id) in enumerate(zip(texts, row_ids)):
            if i in failures:
                rows.append((i, None, row_id, None, None, False, 0.0, None, incoming[i]))
                continue
            result = results[i]
            copies = result.copies
            if p.keep_original or not copies:
                if not p.keep_original:
                    self.augmenter.counts["rows_kept_without_copy"] += 1
                rows.append((i, text, row_id, None, None, False, 0.0, result.skipped, incoming[i]))
            for n, c in enumerate(copies):
                source = bool(incoming[i]) and not p.keep_original and n == 0
                rows.append((i, c.text, f"{row_id}~aug{c.index}", c.op, c.seed, True, c.edit_rate, None, source))
        for key, value in self.augmenter.take_counts().items():
            self.count(key, value)
        return _build(batch, rows, p.column, failures)


def _model_device(params: AugmentParams) -> str:
    """Model-backed ops run on a GPU when the stage asks for one and this worker has it."""
    if not params.uses_models or params.resources.num_gpus <= 0:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _texts(column: pa.ChunkedArray) -> tuple[list[str | None], dict[int, tuple[str, str]]]:
    """The column as Python strings; binary values that are not UTF-8 become per-row failures."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_null(column.type):
        return column.to_pylist(), {}
    texts, failures = [], {}
    for i, value in enumerate(column.to_pylist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                failures[i] = ("invalid_utf8", f"not valid UTF-8: {exc.reason} at byte {exc.start}")
                value = None
        texts.append(value)
    return texts, failures


def _build(batch: pa.Table, rows: list[tuple], column: str, failures: dict) -> pa.Table:
    """The output block: input rows taken (so every other column is carried), lineage set."""
    index, text, row_id, op, seed, augmented, rate, skipped, source = (list(c) for c in zip(*rows)) \
        if rows else ([] for _ in range(9))
    out = batch.take(pa.array(index, pa.int64()))
    text_type = batch.schema.field(column).type
    if pa.types.is_null(text_type):
        text_type = pa.string()
    if pa.types.is_binary(text_type) or pa.types.is_large_binary(text_type):
        # The column keeps its type; a failed row keeps its bytes for the dead letter.
        originals = batch[column].to_pylist()
        text = [originals[i] if i in failures else (t.encode() if t is not None else None)
                for i, t in zip(index, text)]
    out = set_column(out, column, pa.array(text, text_type))
    out = set_column(out, ROW_ID, pa.array(row_id, pa.string()))
    out = set_column(out, SOURCE, pa.array(source, pa.bool_()))
    lineage = {
        "parent_id": batch[ROW_ID].take(pa.array(index, pa.int64())),
        "aug_op": pa.array(op, pa.string()),
        "aug_seed": pa.array(seed, pa.int64()),
        "is_augmented": pa.array(augmented, pa.bool_()),
        "edit_rate": pa.array(rate, pa.float64()),
        "aug_skipped": pa.array(skipped, pa.string()),
    }
    for name, values in lineage.items():
        out = set_column(out, name, values)
    if failures:
        positions = {i: n for n, i in enumerate(index) if i in failures}
        out = mark_failed(out, {positions[i]: failures[i] for i in failures})
    return out


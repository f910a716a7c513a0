"""The augment stage as the runner sees it: Arrow blocks in and out, around the augmenter.

Input: `column` (text), optionally `label_column` (carried unchanged), `split_column`, and the
`lang_column` a language-id stage wrote. Output: `column` rewritten on augmented rows; every row
gets `parent_id`, `aug_op`, `aug_seed`, `is_augmented`, `edit_rate` and `aug_skipped` (why a kept
row has fewer copies than asked, or null). Augmented rows get row ids `<parent>~aug<copy>`
(`<parent>~aug<stage>.<copy>` when an earlier stage of the job added rows too, so ids never collide).

Accounting: the input row keeps the runner's source flag; copies do not. With
`keep_original: false` the first surviving copy takes the flag, and a row with no surviving copy
is kept unaugmented (counted as `rows_kept_without_copy`).
"""

from __future__ import annotations

import gc

import pyarrow as pa

from augment.augmenter import Augmenter, RowResult
from augment.params import AugmentParams
from jobs.errors import SpecError
from jobs.stages.base import ROW_ID, SOURCE, Stage, corpus_columns, mark_failed, set_column

LINEAGE_COLUMNS = ("parent_id", "aug_op", "aug_seed", "is_augmented", "edit_rate", "aug_skipped")


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
            from augment.wordnet_index import ensure

            ensure()  # WordNet installed and compiled here, before any worker needs it
        for index, op in enumerate(params.ops):
            if op.uses_model:
                from augment.model_ops import check_files

                try:
                    check_files(op)
                except SpecError as exc:
                    raise SpecError(f"ops[{index}] ({op.op}).{exc}") from None

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Rule ops make millions of short-lived objects and no cycles; the collector would walk the
        # lexicon memos (long-lived, large) again and again for nothing. Model ops keep it: a
        # framework's cyclic garbage must not pile up for a whole shard.
        was_enabled = gc.isenabled() and not self.params.uses_models
        if was_enabled:
            gc.disable()
        try:
            return self._augment(batch)
        finally:
            if was_enabled:
                gc.enable()

    def _augment(self, batch: pa.Table) -> pa.Table:
        p = self.params
        texts, failures = _texts(batch[p.column])
        row_ids = batch[ROW_ID].to_pylist()
        splits = batch[p.split_column].to_pylist() if p.split_column else None
        allowed = p.augmented_splits
        results: list[RowResult | None] = [None] * len(texts)  # None: a failed row
        chosen = []
        for i in range(len(texts)):
            if i in failures:
                continue
            if allowed is not None and splits[i] not in allowed:
                self.augmenter.counts["rows_split_not_augmented"] += 1
                results[i] = RowResult(skipped="split")
            else:
                chosen.append(i)
        langs = None
        if p.languages is not None and p.lang_column in batch.column_names:
            column = batch[p.lang_column].to_pylist()
            langs = [column[i] for i in chosen]
        if len(chosen) == len(texts):  # every row: no copies of the lists
            results = self.augmenter.augment_block(texts, row_ids, langs)
        else:
            made = self.augmenter.augment_block([texts[i] for i in chosen], [row_ids[i] for i in chosen], langs)
            for i, result in zip(chosen, made):
                results[i] = result
        # One tuple per output row: (input index, text, row_id, op, seed, augmented, rate, skipped, source)
        rows: list[tuple] = []
        # A row accounts for its input row only if it came in doing so: after an earlier augment,
        # its copies come in unflagged and their own copies stay unflagged.
        incoming = batch[SOURCE].to_pylist() if SOURCE in batch.column_names else [True] * len(texts)
        tag = self.context.copy_tag
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
                rows.append((i, c.text, f"{row_id}~{tag}{c.index}", c.op, c.seed, True, c.edit_rate, None, source))
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


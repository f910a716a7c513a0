"""The dedup stage: removes exact or near duplicates across the whole input, and rows that copy
an evaluation set, keeping the first row of each group (input order: file, then row).

Input: `column` (string). Output: no column; removed rows go to `_filtered/` with filter_reason
`duplicate` (duplicate_of = the kept row's row_id) or `contaminated` (duplicate_of = the eval row,
as `<file>:<row>`). `exact` compares normalized text (case, width, whitespace, punctuation);
`near` compares MinHash signatures of shingles, banded for LSH, every candidate pair verified
against `threshold`, groups by connected components (jobs/hygiene/minhash.py).

It decides from every row of the input, so it runs in two halves (jobs/segments.py): `keys` adds
each row's hash keys per block, in parallel; `decide` groups all keys once on the driver, in
numpy, a few bytes per row; `__call__` then marks the removed rows of each block.
"""

from __future__ import annotations

import glob
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from jobs.errors import SpecError
from jobs.hygiene import dupgroups, minhash
from jobs.stages.base import SHARD, Stage, StageContext, StageParams, key_column, mark_filtered

KEY, BANDS, SIGNATURE = "key", "bands", "signature"


class DedupParams(StageParams):
    column: str
    method: Literal["exact", "near"] = "exact"
    threshold: float = Field(0.8, gt=0, le=1, description="near: the Jaccard similarity that makes a duplicate")
    num_perm: int = Field(256, ge=16, le=512)
    # Word unigrams (each Chinese character a word): one changed word in a 12-word sentence keeps
    # a Jaccard near 0.85, where character 5-grams fall to about 0.75 (see jobs/hygiene/minhash.py).
    shingle: Literal["char", "word"] = "word"
    ngram: int = Field(1, ge=1, le=32)
    against: list[str] = Field([], description="globs of eval-set Parquet files; rows that copy them are removed")
    against_column: str | None = Field(None, description="the eval sets' text column; default: column")


class DedupStage(Stage):
    name = "dedup"
    Params = DedupParams
    whole_input = True

    def __init__(self, params: DedupParams, context: StageContext):
        super().__init__(params, context)
        self.hasher = _hasher(params)

    @classmethod
    def input_columns(cls, params: DedupParams) -> dict[str, str]:
        return {params.column: "string"}

    @classmethod
    def preflight(cls, params: DedupParams) -> None:
        for pattern in params.against:
            files = sorted(glob.glob(pattern))
            if not files:
                raise SpecError(f"against: {pattern!r} matches no file")
            for path in files:
                names = pq.read_schema(path).names
                if _eval_column(params) not in names:
                    raise SpecError(f"against: {path} has no column {_eval_column(params)!r}; it has "
                                    f"{', '.join(names)} (set against_column)")

    @classmethod
    def extra_inputs(cls, params: DedupParams) -> list[str]:
        return sorted(p for pattern in params.against for p in glob.glob(pattern))

    def keys(self, batch: pa.Table) -> pa.Table:
        texts = batch[self.params.column].to_pylist()
        for name, values in _keys(self.hasher, self.params, texts).items():
            batch = batch.append_column(key_column(self.context.stage_index, name), values)
        return batch

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = batch.drop_columns([c for c in batch.column_names if c.startswith(key_column(self.context.stage_index, ""))])
        removed: dict[str, tuple[str, str | None]] = {}
        from jobs.commit.work import read_decisions

        for shard in pc.unique(batch[SHARD]).to_pylist():
            removed.update(read_decisions(self.context.decisions_dir, shard))
        ids = batch["row_id"].to_pylist()
        marks = {i: removed[row_id] for i, row_id in enumerate(ids) if row_id in removed}
        for reason, _ in marks.values():
            self.count(f"filtered_{reason}")
        return mark_filtered(batch, marks)

    @classmethod
    def decide(cls, params: DedupParams, rows, context: StageContext) -> pa.Table:
        prefix = key_column(context.stage_index, "")
        hasher = _hasher(params)
        evals, eval_keys = _eval_rows(params, hasher)
        names = [KEY] if params.method == "exact" else [BANDS]
        table = rows.columns([prefix + n for n in names])
        keys, valid = _stack([eval_keys[names[0]], table[prefix + names[0]]])
        e = len(evals)
        pairs = dupgroups.candidate_pairs(keys[:, :1] if params.method == "exact" else keys, valid)
        if params.method == "exact":
            pairs = pairs[np.all(keys[pairs[:, 0]] == keys[pairs[:, 1]], axis=1)]  # both 64-bit halves
        elif len(pairs):
            pairs = pairs[_verified(pairs, e, eval_keys[SIGNATURE], rows, prefix + SIGNATURE, params.threshold)]
        rep = dupgroups.groups(e + table.num_rows, pairs)
        lost = np.flatnonzero(rep[e:] != np.arange(e, e + table.num_rows))
        kept_by = rep[e:][lost]
        row_ids = table["row_id"]
        by_eval = kept_by < e
        of = row_ids.take(pa.array(np.where(by_eval, 0, kept_by - e))).combine_chunks()
        if by_eval.any():
            names = pa.array(evals, pa.string()).take(pa.array(np.where(by_eval, kept_by, 0)))
            of = pc.if_else(pa.array(by_eval), names, of)
        return pa.table({"row_id": row_ids.take(pa.array(lost)), "shard": table[SHARD].take(pa.array(lost)),
                         "reason": pc.if_else(pa.array(by_eval), "contaminated", "duplicate"),
                         "of": of.cast(pa.string())})


def _hasher(params: DedupParams):
    if params.method == "exact":
        return None
    return minhash.MinHasher(threshold=params.threshold, num_perm=params.num_perm, ngram=params.ngram,
                             shingle=params.shingle)


def _eval_column(params: DedupParams) -> str:
    return params.against_column or params.column


def _keys(hasher, params: DedupParams, texts: list) -> dict[str, pa.Array]:
    """The key columns of a list of texts: a 128-bit hash of the normalized text (exact), or LSH
    band keys and the MinHash signature (near). Rows with nothing to compare get nulls."""
    if params.method == "exact":
        keys, valid = minhash.exact_keys(texts)
        return {KEY: _packed(keys, valid)}
    sigs, valid = hasher.signatures(texts)
    # Verification compares the low 16 bits of each value: half the bytes to write and read back,
    # and two different minima agree there with probability 2^-16, a negligible bias.
    return {BANDS: _packed(hasher.band_keys(sigs), valid), SIGNATURE: _packed(sigs.astype(np.uint16), valid)}


def _packed(matrix: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Each row's keys as one fixed-size binary value. They are random hashes: stored as raw bytes,
    Parquet writes them as they are (jobs/commit/work.py skips compression, dictionaries and
    statistics for key columns), where a list of integers cost most of the keys pass to encode."""
    matrix = np.ascontiguousarray(matrix)  # (n, width): one row of keys per row
    validity = None if valid.all() else pa.array(valid, pa.bool_()).buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(matrix.shape[1] * matrix.itemsize), len(matrix),
                                                [validity, pa.py_buffer(matrix)], null_count=int((~valid).sum()))


def _stack(columns: list, dtype=np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Packed key columns (`_packed`) as one (n, width) `dtype` matrix and the valid mask, chunk by
    chunk, read in place, so the matrix is the only full copy. Rows that are not valid hold
    arbitrary values: the mask hides them."""
    chunks = [chunk for c in columns for chunk in (c.chunks if isinstance(c, pa.ChunkedArray) else [c]) if len(chunk)]
    if not chunks:
        return np.zeros((0, 1), dtype), np.zeros(0, bool)
    matrix = np.concatenate([_values(chunk, dtype) for chunk in chunks])
    valid = np.concatenate([chunk.is_valid().to_numpy(zero_copy_only=False) for chunk in chunks]).astype(bool)
    return matrix, valid


def _values(chunk: pa.FixedSizeBinaryArray, dtype) -> np.ndarray:
    size = chunk.type.byte_width
    data = np.frombuffer(chunk.buffers()[1], np.uint8)[chunk.offset * size:(chunk.offset + len(chunk)) * size]
    return data.view(dtype).reshape(len(chunk), -1)


def _eval_rows(params: DedupParams, hasher) -> tuple[list[str], dict[str, pa.Array]]:
    """The eval sets' rows, named `<file>:<row>`, and their keys."""
    names, texts = [], []
    for path in DedupStage.extra_inputs(params):
        column = pq.read_table(path, columns=[_eval_column(params)])[0].to_pylist()
        names.extend(f"{path}:{i}" for i in range(len(column)))
        texts.extend(column)
    return names, _keys(hasher, params, texts)


def _verified(pairs: np.ndarray, e: int, eval_sigs: pa.Array, rows, column: str, threshold: float) -> np.ndarray:
    """Which candidate pairs really are near duplicates: their signatures agree on >= threshold of
    the permutations (LSH alone lets through pairs that only share one band). Only the signatures
    of rows in some pair are read back (rows 0..e-1 are the eval rows, held in memory)."""
    needed = np.unique(pairs)
    from_eval, from_input = needed[needed < e], needed[needed >= e]
    parts = []
    if len(from_eval):
        parts.append(_stack([eval_sigs], np.uint16)[0][from_eval])
    if len(from_input):
        parts.append(_stack([rows.gather(column, from_input - e)], np.uint16)[0])
    sigs = np.concatenate(parts)  # in the order of `needed`: eval rows first, both sorted
    a, b = np.searchsorted(needed, pairs[:, 0]), np.searchsorted(needed, pairs[:, 1])
    ok = np.empty(len(pairs), bool)
    for lo in range(0, len(pairs), 1 << 16):  # bounded memory however many pairs there are
        ok[lo:lo + (1 << 16)] = dupgroups.similar(sigs[a[lo:lo + (1 << 16)]], sigs[b[lo:lo + (1 << 16)]]) >= threshold
    return ok

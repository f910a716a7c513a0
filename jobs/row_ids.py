"""Row ids: one rule for the reader and the planner, duplicates found before any work starts, and
each shard's identity digest, which the commit checks the output against.

A row's id is its `id_column` value, or `<file name>:<row index>`. A null id, or (with
`duplicate_ids: dead_letter`) a repeat of an earlier row's id, sends the row to the dead letter
under `<file name>:<row index>` or `<id>@<file name>:<row index>`, so no two rows share an id.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.commit.identity import id_digest
from jobs.errors import InputDataError
from jobs.inputs import InputFile, Shard


def assign(values: list | None, shard: Shard) -> tuple[list[str], dict[int, tuple[str, str]]]:
    """Row ids of a shard's rows and the rows that fail on their id, {offset: (error_type, message)}."""
    n = shard.num_rows
    if values is None:
        return [f"{shard.name}:{shard.row_start + i}" for i in range(n)], {}
    if not shard.duplicates and None not in values:  # the common case: every row keeps its id
        return list(map(str, values)), {}
    duplicates = set(shard.duplicates)
    ids, failures = [], {}
    for i, value in enumerate(values):
        where = f"{shard.name}:{shard.row_start + i}"
        if value is None:
            ids.append(where)
            failures[i] = ("missing_id", "the id column is null")
        elif shard.row_start + i in duplicates:
            ids.append(f"{value}@{where}")
            failures[i] = ("duplicate_id", f"id {str(value)!r} is already used by an earlier row")
        else:
            ids.append(str(value))
    return ids, failures


def plan_ids(fs: pafs.FileSystem, files: list[InputFile], shards: list[Shard], id_column: str | None,
             duplicate_ids: str) -> list[Shard]:
    """The shards with their duplicate rows and identity digests filled in. With
    `duplicate_ids: fail`, a repeated id is an InputDataError naming the id and both places."""
    if id_column is None:
        return [replace(s, digest=id_digest(assign(None, s)[0])) for s in shards]
    columns = {f.path: _id_values(fs, f, id_column) for f in files}
    later = _later_duplicates(files, columns, id_column, fail=duplicate_ids == "fail")
    planned, made_up = [], {}
    for shard in shards:
        dups = tuple(i for i in later.get(shard.path, ()) if shard.row_start <= i < shard.row_end)
        shard = replace(shard, duplicates=dups)
        values = columns[shard.path].slice(shard.row_start, shard.num_rows).to_pylist()
        ids, failures = assign(values, shard)
        made_up.update({ids[i]: (shard.path, shard.row_start + i) for i in failures})
        planned.append(replace(shard, digest=id_digest(ids)))
    _check_made_up(made_up, columns, id_column)
    del columns, later
    # The id columns and the duplicate search's hash table are freed, but Arrow's allocator keeps
    # their pages: handing them back keeps the driver's memory flat as the input grows.
    pa.default_memory_pool().release_unused()
    return planned


def _check_made_up(made_up: dict[str, tuple[str, int]], columns: dict[str, pa.Array], id_column: str) -> None:
    """An id made up for a null or repeated id must not be some other row's real id."""
    if not made_up:
        return
    real = pa.concat_arrays(list(columns.values()))
    candidates = pa.array(list(made_up), pa.string())
    clash = pc.indices_nonzero(pc.fill_null(pc.is_in(candidates, value_set=real), False)).to_pylist()
    if clash:
        made = candidates[clash[0]].as_py()
        path, row = made_up[made]
        raise InputDataError(f"{path}: row {row}: its id is null or repeated, and the id it would get instead, "
                             f"{made!r}, is a real id in column {id_column!r}; give that row an id of its own")


def _id_values(fs: pafs.FileSystem, file: InputFile, id_column: str) -> pa.Array:
    try:
        with fs.open_input_file(file.path) as handle:
            parquet = pq.ParquetFile(handle)
            if id_column not in parquet.schema_arrow.names:
                return pa.nulls(file.num_rows, pa.string())
            column = parquet.read(columns=[id_column])[id_column]
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{file.path}: cannot read id column {id_column!r} ({' '.join(str(exc).split())[:200]})") \
            from None
    return column.combine_chunks().cast(pa.string())


def _later_duplicates(files: list[InputFile], columns: dict[str, pa.Array], id_column: str,
                      fail: bool) -> dict[str, list[int]]:
    """{file path: row indexes whose id an earlier row (in file order) already has}. A stable sort
    puts equal ids side by side in file order, so each run's first row keeps its id and the rest are
    the later copies; a sort's index costs far less memory than a hash table of every id."""
    ids = pa.concat_arrays([columns[f.path] for f in files]) if files else pa.array([], pa.string())
    if len(ids) < 2:
        return {}
    order = pc.sort_indices(ids).to_numpy()  # nulls last; they never count as equal
    ranked = ids.take(order)
    same = pc.fill_null(pc.equal(ranked.slice(1), ranked.slice(0, len(ranked) - 1)), False).to_numpy(
        zero_copy_only=False)
    if not same.any():
        return {}
    run_start = np.maximum.accumulate(np.where(np.concatenate([[False], same]), 0, np.arange(len(order))))
    starts, offset = [], 0
    for file in files:
        starts.append((offset, file))
        offset += len(columns[file.path])
    ranks = np.flatnonzero(same) + 1
    later: dict[str, list[int]] = {}
    for at, first in sorted(zip(order[ranks].tolist(), order[run_start[ranks]].tolist())):  # in file order
        base, file = next((b, f) for b, f in reversed(starts) if b <= at)
        if fail:
            value = ids[at].as_py()
            where = _place(starts, first)
            raise InputDataError(f"{file.path}: row {at - base}: id {value!r} in column {id_column!r} is "
                                 f"already used by {where}; ids must be unique (or set "
                                 f"input.duplicate_ids: dead_letter to dead-letter later copies)")
        later.setdefault(file.path, []).append(at - base)
    return later


def _place(starts: list[tuple[int, InputFile]], at: int) -> str:
    base, file = next((b, f) for b, f in reversed(starts) if b <= at)
    return f"{file.path} row {at - base}"

"""Reading one shard's rows (plain pyarrow, runs in Ray's read tasks): the row ids, the runner's
columns, and rows that fail on their id marked for the dead letter."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.errors import InputDataError
from jobs.inputs import Shard, short_error
from jobs.row_ids import assign
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, INPUT_ID, ROW_ID, SHARD, SOURCE


def effective_id_column(id_column: str | None, schema: pa.Schema) -> str | None:
    """The column ids come from: the spec's, or `row_id` of an earlier job's output."""
    if id_column is None and ROW_ID in schema.names:
        return ROW_ID
    return id_column


def read_shard(fs: pafs.FileSystem, shard: Shard, schema: pa.Schema, id_column: str | None) -> pa.Table:
    """Read one shard's rows with the unified schema, row_id first and the runner's columns last."""
    try:
        with fs.open_input_file(shard.path) as handle:
            table = _read_rows(pq.ParquetFile(handle), shard.row_start, shard.row_end)
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{shard.path}: cannot read rows {shard.row_start}-{shard.row_end} "
                             f"({short_error(exc)})") from None
    table = _conform(table, schema)
    n = table.num_rows
    id_column = effective_id_column(id_column, schema)
    values = table[id_column].to_pylist() if id_column else None
    row_ids, failures = assign(values, shard)
    if ROW_ID in table.column_names:
        table = table.drop_columns([ROW_ID])
    ids = pa.array(row_ids, pa.string())
    table = table.add_column(0, ROW_ID, ids)
    error_types = [failures[i][0] if i in failures else None for i in range(n)]
    messages = [failures[i][1] if i in failures else None for i in range(n)]
    return (table.append_column(SHARD, pa.array([shard.index] * n, pa.int64()))
            .append_column(SOURCE, pa.array([True] * n, pa.bool_()))
            .append_column(INPUT_ID, ids)
            .append_column(ERROR_STAGE, pa.array(["read" if e else None for e in error_types], pa.string()))
            .append_column(ERROR_TYPE, pa.array(error_types, pa.string()))
            .append_column(ERROR, pa.array(messages, pa.string())))


def _read_rows(parquet: pq.ParquetFile, start: int, end: int) -> pa.Table:
    """Read rows [start, end) touching only the row groups that hold them."""
    groups, offset, first_offset = [], 0, None
    for index in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        if offset + rows > start and offset < end:
            groups.append(index)
            first_offset = offset if first_offset is None else first_offset
        offset += rows
    table = parquet.read_row_groups(groups)
    return table.slice(start - (first_offset or 0), end - start)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give every shard the unified schema (missing columns as nulls) so output files agree."""
    columns = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.table(columns, schema=schema)

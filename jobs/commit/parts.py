"""Writing a block's rows into staging (runs inside Ray's write tasks, no Ray import).

Each shard's part is written as good rows in data/, failed rows in _dead_letter/, rows a stage
removed on purpose in _filtered/, and a marker last. Names come from the part's first row id, so a
retried task rewrites the same files. `scrub` (from the stages, e.g. redaction) cleans the rows the
dead letter and _filtered/ keep, which hold a row's columns as they were before that stage.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.commit.identity import id_digest
from jobs.commit.layout import DATA_DIR, DEAD_DIR, FILTERED_DIR, MARKER_DIR, OutputLocation, write_bytes
from jobs.commit.models import FileEntry, Marker
from jobs.stages.base import (ERROR, ERROR_STAGE, ERROR_TYPE, FILTER_OF, FILTER_REASON, FILTER_STAGE, INPUT_ID,
                              INTERNAL_COLUMNS, SHARD, SOURCE, failed_mask, filtered_mask)

Scrub = Callable[[pa.Table], pa.Table]

STATS_METADATA_KEY = b"raybatch.stage_stats"


def write_block(loc: OutputLocation, block: pa.Table, input_columns: list[str], compression: str,
                scrub: Scrub | None = None) -> list[Marker]:
    """Write one block's rows, grouped by shard, as good, dead-letter and filtered parts; return markers."""
    stats = json.loads((block.schema.metadata or {}).get(STATS_METADATA_KEY, b"[]"))
    markers = []
    shard_ids = pc.unique(block[SHARD]).to_pylist() if block.num_rows else []
    for shard in sorted(shard_ids):
        part = block.filter(pc.equal(block[SHARD], shard))
        markers.append(write_part(loc, shard, part, input_columns, compression, stats, scrub))
    return markers


def write_part(loc: OutputLocation, shard: int, part: pa.Table, input_columns: list[str],
               compression: str, stats: list[dict], scrub: Scrub | None = None) -> Marker:
    """Write a shard's part: good rows to data/, failed rows to _dead_letter/, rows removed on
    purpose to _filtered/, marker last."""
    key = hashlib.sha1(str(part["row_id"][0]).encode()).hexdigest()[:10]
    name = f"part-{shard:06d}-{key}"
    failed = failed_mask(part)
    removed = pc.and_(filtered_mask(part), pc.invert(failed))
    good = _public(part.filter(pc.invert(pc.or_(failed, removed))))
    scrub = scrub or (lambda table: table)
    dead = scrub(dead_letter_rows(part.filter(failed), input_columns))
    filtered = scrub(filtered_rows(part.filter(removed)))
    files = []
    for sub, table, kind in ((DATA_DIR, good, "data"), (DEAD_DIR, dead, "dead_letter"),
                             (FILTERED_DIR, filtered, "filtered")):
        if table.num_rows:
            rel = f"{sub}/{name}.parquet"
            digest = write_parquet(loc, posixpath.join(loc.staging, rel), table, compression)
            files.append(FileEntry(path=rel, rows=table.num_rows, sha256=digest, kind=kind,
                                   written_at=round(time.time(), 3)))
    is_source = pc.fill_null(part[SOURCE], False)
    sources = part.filter(is_source)
    marker = Marker(shard=shard, name=name, source_rows=sources.num_rows,
                    source_digest=id_digest(sources[INPUT_ID].to_pylist()), rows_out=good.num_rows,
                    rows_dead_letter=dead.num_rows, rows_filtered=filtered.num_rows, files=files,
                    stage_stats=stats, source_rows_dead_letter=pc.sum(pc.and_(is_source, failed)).as_py() or 0,
                    source_rows_filtered=pc.sum(pc.and_(is_source, removed)).as_py() or 0)
    write_bytes(loc.fs, posixpath.join(loc.staging, MARKER_DIR, f"{name}.json"), marker.model_dump_json().encode())
    return marker


def _public(table: pa.Table) -> pa.Table:
    """Without the runner's columns (a whole-input stage's `_rb_` keys among them)."""
    return table.drop_columns([c for c in table.column_names if c in INTERNAL_COLUMNS or c.startswith("_rb_")])


def filtered_rows(removed: pa.Table) -> pa.Table:
    """Rows removed on purpose as _filtered/ keeps them: row_id, filter_stage, filter_reason,
    duplicate_of (the kept row's id, or the eval row a copy matched) and the row's columns."""
    if not removed.num_rows:
        return pa.table({})
    head = {"row_id": removed["row_id"], "filter_stage": removed[FILTER_STAGE],
            "filter_reason": removed[FILTER_REASON], "duplicate_of": removed[FILTER_OF]}
    rest = _public(removed.drop_columns(["row_id"]))
    return pa.table({**head, **{name: rest[name] for name in rest.column_names if name not in head}})


def dead_letter_rows(failed: pa.Table, input_columns: list[str]) -> pa.Table:
    """Failed rows as the dead letter keeps them: row_id, stage, error_type, error and the input's
    columns (text a stage could not decode is kept with its bad bytes escaped)."""
    columns = {"row_id": failed["row_id"], "stage": failed[ERROR_STAGE], "error_type": failed[ERROR_TYPE],
               "error": failed[ERROR]}
    for name in input_columns:
        if name in columns or name not in failed.column_names:
            continue
        columns[name] = _valid_utf8(failed[name])
    return pa.table(columns)


def _valid_utf8(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    try:
        column.validate(full=True)
        return column
    except pa.ArrowInvalid:
        values = column.cast(pa.binary()).to_pylist()
        return pa.chunked_array([pa.array([v.decode("utf-8", "backslashreplace") if v is not None else None
                                           for v in values], column.type)])


def write_parquet(loc: OutputLocation, path: str, table: pa.Table, compression: str, raw: tuple[str, ...] = ()) -> str:
    """Write `table`; the `raw` columns (random hashes) are stored as they are: no compression,
    dictionary or statistics, which cost time and save nothing on random bytes."""
    buffer = io.BytesIO()
    options: dict = {"compression": compression}
    if raw:
        rest = [name for name in table.column_names if name not in raw]
        options = {"compression": {name: "none" if name in raw else compression for name in table.column_names},
                   "use_dictionary": rest, "write_statistics": rest}
    pq.write_table(table, buffer, **options)
    data = buffer.getvalue()
    write_bytes(loc.fs, path, data)
    return hashlib.sha256(data).hexdigest()

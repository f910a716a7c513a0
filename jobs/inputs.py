"""Input discovery, shard planning and shard reading (plain pyarrow, no Ray).

A shard is a row range of one input file: the unit of work, of commit and of resume. Shards and
row ids depend only on the files, never on workers or timing, so reruns line up exactly.
"""

from __future__ import annotations

import glob as globlib
import os
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.errors import InputDataError
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, ROW_ID, SHARD, SOURCE


@dataclass(frozen=True)
class InputFile:
    path: str  # path inside `filesystem` (or a local path)
    name: str  # stable name used in row ids: the path relative to the input root
    size: int
    mtime: float
    num_rows: int


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    name: str
    row_start: int
    row_end: int

    @property
    def num_rows(self) -> int:
        return self.row_end - self.row_start

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Local paths stay local; URIs (s3://, gs://, hdfs://, file://) go through pyarrow.fs."""
    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputDataError(f"{uri}: cannot open this filesystem: {exc}") from None
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def list_input_files(uri: str) -> tuple[pafs.FileSystem, list[InputFile]]:
    """Expand a directory, glob or file into Parquet files, sorted, with size and mtime."""
    fs, path = resolve_filesystem(uri)
    has_glob = any(ch in path for ch in "*?[")
    if has_glob:
        if not isinstance(fs, pafs.LocalFileSystem):
            raise InputDataError(f"{uri}: globs are supported on local paths; give a directory for URIs")
        root = path.split("*")[0].rsplit("/", 1)[0] or "/"
        paths = sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p))
        if not paths:
            raise InputDataError(f"{uri}: no files match this glob")
        infos = fs.get_file_info(paths)
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise InputDataError(f"{uri}: input not found")
        if info.type == pafs.FileType.Directory:
            root = path
            selector = pafs.FileSelector(path, recursive=True)
            infos = sorted(
                (i for i in fs.get_file_info(selector)
                 if i.type == pafs.FileType.File and not _hidden(i.path, root)),
                key=lambda i: i.path,
            )
            if not infos:
                raise InputDataError(f"{uri}: directory has no Parquet files")
        else:
            root, infos = os.path.dirname(path), [info]
    files = []
    for info in infos:
        name = os.path.relpath(info.path, root) if root else info.base_name
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        files.append(InputFile(info.path, name, info.size or 0, mtime, _num_rows(fs, info.path)))
    return fs, files


def _hidden(path: str, root: str) -> bool:
    """Skip _SUCCESS, .crc and other marker files that writers leave beside Parquet data."""
    return any(part.startswith(("_", ".")) for part in os.path.relpath(path, root).split(os.sep))


def _num_rows(fs: pafs.FileSystem, path: str) -> int:
    try:
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{path}: not a readable Parquet file ({_short(exc)})") from None


def read_schema(fs: pafs.FileSystem, files: list[InputFile]) -> pa.Schema:
    """The unified schema of all files; a column whose type differs between files is an error."""
    schemas = []
    for file in files:
        try:
            with fs.open_input_file(file.path) as handle:
                schemas.append((file, pq.ParquetFile(handle).schema_arrow))
        except (pa.ArrowException, OSError) as exc:
            raise InputDataError(f"{file.path}: not a readable Parquet file ({_short(exc)})") from None
    unified = schemas[0][1]
    for file, schema in schemas[1:]:
        for field in schema:
            known = unified.field(field.name) if field.name in unified.names else None
            if known is not None and known.type != field.type and not pa.types.is_null(field.type) \
                    and not pa.types.is_null(known.type):
                raise InputDataError(f"{file.path}: column {field.name!r} is {field.type}, "
                                     f"but {schemas[0][0].path} has {known.type}")
        unified = pa.unify_schemas([unified, schema], promote_options="permissive")
    for name in (ROW_ID, SHARD, SOURCE, ERROR_STAGE, ERROR_TYPE, ERROR):
        if name in unified.names and name != ROW_ID:
            raise InputDataError(f"{files[0].path}: column {name!r} is reserved for the runner")
    return unified.remove_metadata()


def plan_shards(files: list[InputFile], shard_rows: int) -> list[Shard]:
    """Split each file into row ranges of at most `shard_rows` rows."""
    shards = []
    for file in files:
        for start in range(0, max(file.num_rows, 1), shard_rows):
            end = min(start + shard_rows, file.num_rows)
            if end > start:
                shards.append(Shard(len(shards), file.path, file.name, start, end))
    return shards


def read_shard(fs: pafs.FileSystem, shard: Shard, schema: pa.Schema, id_column: str | None) -> pa.Table:
    """Read one shard's rows, add row_id and the runner's columns. Row ids: the id column's value,
    or `<file name>:<row index>`. A row with no id is failed here and goes to the dead letter."""
    try:
        with fs.open_input_file(shard.path) as handle:
            table = _read_rows(pq.ParquetFile(handle), shard.row_start, shard.row_end)
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{shard.path}: cannot read rows {shard.row_start}-{shard.row_end} "
                             f"({_short(exc)})") from None
    table = _conform(table, schema)
    n = table.num_rows
    if id_column is None and ROW_ID in table.column_names:
        id_column = ROW_ID  # output of an earlier job: keep its ids
    error_types: list[str | None] = [None] * n
    errors: list[str | None] = [None] * n
    if id_column:
        ids = table[id_column].to_pylist()
        row_ids = []
        for i, value in enumerate(ids):
            if value is None:
                row_ids.append(f"{shard.name}:{shard.row_start + i}")
                error_types[i], errors[i] = "missing_id", f"id column {id_column!r} is null"
            else:
                row_ids.append(str(value))
    else:
        row_ids = [f"{shard.name}:{shard.row_start + i}" for i in range(n)]
    if ROW_ID in table.column_names:
        table = table.drop_columns([ROW_ID])
    table = table.add_column(0, ROW_ID, pa.array(row_ids, pa.string()))
    has_errors = any(error_types)
    return (table.append_column(SHARD, pa.array([shard.index] * n, pa.int64()))
            .append_column(SOURCE, pa.array([True] * n, pa.bool_()))
            .append_column(ERROR_STAGE, pa.array(["read" if e else None for e in error_types], pa.string())
                           if has_errors else pa.nulls(n, pa.string()))
            .append_column(ERROR_TYPE, pa.array(error_types, pa.string()))
            .append_column(ERROR, pa.array(errors, pa.string())))


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


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]

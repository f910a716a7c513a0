"""Input discovery, shard planning and shard reading (plain pyarrow, no Ray).

A shard is a row range of one input file: the unit of work, of commit and of resume. Shards and
row ids depend only on the files, never on workers or timing, so reruns line up exactly.
"""

from __future__ import annotations

import glob as globlib
import os
import posixpath
import re
import stat as stat_module
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.errors import InputDataError
from jobs.secrets import redact_uri
from jobs.stages.base import INTERNAL_COLUMNS


PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")  # what a folder's listing takes; a glob takes what it names


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
    digest: str = ""  # identity digest of the shard's row ids (jobs.row_ids), checked at commit
    duplicates: tuple[int, ...] = ()  # row indexes (in the file) whose id an earlier row has

    @classmethod
    def from_dict(cls, item: dict) -> "Shard":
        return cls(**{**item, "duplicates": tuple(item.get("duplicates") or ())})

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
            raise InputDataError(f"{redact_uri(uri)}: cannot open this filesystem: {short_error(exc)}") from None
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def list_input_files(uri: str) -> tuple[pafs.FileSystem, list[InputFile]]:
    """Expand a directory, glob or file into Parquet files, sorted, with size and mtime. Each real
    file is taken once (symlinks and loops followed once), and only regular files: a FIFO would hang."""
    fs, path = resolve_filesystem(uri)
    shown = redact_uri(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        root, paths = _local_files(path, shown)
        infos = fs.get_file_info(paths)
    else:
        root, infos = _remote_files(fs, path, shown)
    files = []
    for info in infos:
        name = os.path.relpath(info.path, root) if root else info.base_name
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        files.append(InputFile(info.path, name, info.size or 0, mtime, _num_rows(fs, info.path)))
    return fs, files


def local_root(uri: str) -> str | None:
    """The local folder an input path names or starts at (before any glob character); None for a
    remote URI."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    path = os.path.abspath(uri.removeprefix("file://"))
    if any(ch in path for ch in "*?["):
        return re.split(r"[*?\[]", path, maxsplit=1)[0].rsplit("/", 1)[0] or "/"
    return path


def _local_files(path: str, shown: str) -> tuple[str, list[str]]:
    if any(ch in path for ch in "*?["):
        root = local_root(path)
        candidates = _glob_once(path, root)
        if not candidates:
            raise InputDataError(f"{shown}: no files match this glob")
    elif os.path.isdir(path):
        root, candidates = path, [p for p in _walk_once(path) if p.endswith(PARQUET_SUFFIXES)]
        if not candidates:
            raise InputDataError(f"{shown}: directory has no Parquet files")
    elif os.path.lexists(path):
        if not _regular(path):
            raise InputDataError(f"{shown}: not a regular file (a FIFO, device or broken link); give Parquet files")
        return os.path.dirname(path), [path]
    else:
        raise InputDataError(f"{shown}: input not found")
    seen: set[tuple[int, int]] = set()
    paths = []
    for candidate in candidates:
        if _hidden(candidate, root) or not _regular(candidate):
            continue
        stat = os.stat(candidate)
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            paths.append(candidate)
    if not paths:
        raise InputDataError(f"{shown}: no regular Parquet files here")
    return root, paths


def _glob_once(pattern: str, root: str) -> list[str]:
    """Files matching a glob, `**` included, found by walking the folder before the first glob
    character once: glob's own `**` follows directory links round a loop for ever."""
    if "**" not in pattern:
        return sorted(globlib.glob(pattern))
    regex = re.compile(_glob_regex(pattern))
    return [p for p in _walk_once(root) if regex.fullmatch(p)]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _walk_once(root: str) -> list[str]:
    """Every file under root, following directory links but entering each real folder once."""
    visited: set[tuple[int, int]] = set()
    found = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in visited:
            dirs[:] = []
            continue
        visited.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        found.extend(os.path.join(folder, name) for name in names)
    return sorted(found)


def _regular(path: str) -> bool:
    try:
        return stat_module.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _remote_files(fs: pafs.FileSystem, path: str, shown: str) -> tuple[str, list[pafs.FileInfo]]:
    if any(ch in path for ch in "*?["):
        raise InputDataError(f"{shown}: globs are supported on local paths; give a directory for URIs")
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise InputDataError(f"{shown}: input not found")
        if info.type != pafs.FileType.Directory:
            return posixpath.dirname(path), [info]
        infos = sorted((i for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                        if i.type == pafs.FileType.File and i.path.endswith(PARQUET_SUFFIXES)
                        and not _hidden(i.path, path)), key=lambda i: i.path)
    except OSError as exc:
        raise InputDataError(f"{shown}: cannot reach the object store ({redact_uri(short_error(exc))}); "
                             f"check the endpoint, network and credentials") from None
    if not infos:
        raise InputDataError(f"{shown}: directory has no Parquet files")
    return path, infos


def _hidden(path: str, root: str) -> bool:
    """Skip _SUCCESS, .crc and other marker files that writers leave beside Parquet data."""
    return any(part.startswith(("_", ".")) for part in os.path.relpath(path, root).split(os.sep))


def _num_rows(fs: pafs.FileSystem, path: str) -> int:
    try:
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{path}: not a readable Parquet file ({short_error(exc)})") from None


def read_schema(fs: pafs.FileSystem, files: list[InputFile]) -> pa.Schema:
    """The unified schema of all files; a column whose type differs between files is an error."""
    schemas = []
    for file in files:
        try:
            with fs.open_input_file(file.path) as handle:
                schemas.append((file, pq.ParquetFile(handle).schema_arrow))
        except (pa.ArrowException, OSError) as exc:
            raise InputDataError(f"{file.path}: not a readable Parquet file ({short_error(exc)})") from None
    unified = schemas[0][1]
    for file, schema in schemas[1:]:
        for field in schema:
            known = unified.field(field.name) if field.name in unified.names else None
            if known is not None and known.type != field.type and not pa.types.is_null(field.type) \
                    and not pa.types.is_null(known.type):
                raise InputDataError(f"{file.path}: column {field.name!r} is {field.type}, "
                                     f"but {schemas[0][0].path} has {known.type}")
        unified = pa.unify_schemas([unified, schema], promote_options="permissive")
    for name in INTERNAL_COLUMNS:
        if name in unified.names:
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


def short_error(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]

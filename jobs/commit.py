"""Exactly-once output: staging, per-shard parts with commit markers, manifest, atomic publish.

Layout while running (beside the output, so a reader of `output.path` never sees it):
    <parent>/.<basename>.staging/
        _stamp.json                 fingerprint of spec + input; another fingerprint wipes the staging
        data/part-<shard>-<key>.parquet, _dead_letter/part-<shard>-<key>.parquet
        _shards/part-<shard>-<key>.json   written last for each part: the part is complete
Publishing writes `_manifest.json`, then `_SUCCESS`, then renames the staging folder onto
`output.path`. On object stores there is no rename: there the manifest is the commit, and readers
trust `_SUCCESS` and the manifest's file list, never a listing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import posixpath
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.errors import JobFailed
from jobs.inputs import Shard, resolve_filesystem
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, INTERNAL_COLUMNS, SHARD, SOURCE

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
DATA_DIR = "data"
DEAD_DIR = "_dead_letter"
MARKER_DIR = "_shards"
STAMP = "_stamp.json"
STATS_METADATA_KEY = b"raybatch.stage_stats"
FILE_KEYS = ("path", "rows", "sha256", "written_at")  # written_at: epoch seconds, for throughput over time


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class OutputLocation:
    """The final output folder and its staging sibling on one filesystem."""

    fs: pafs.FileSystem
    path: str
    staging: str

    @classmethod
    def for_uri(cls, uri: str) -> "OutputLocation":
        fs, path = resolve_filesystem(uri)
        path = path.rstrip("/")
        parent, base = posixpath.split(path)
        return cls(fs, path, posixpath.join(parent, f".{base}.staging"))

    def is_committed(self) -> bool:
        return self.fs.get_file_info(posixpath.join(self.path, SUCCESS)).type == pafs.FileType.File

    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)


# ---- staging -------------------------------------------------------------------------------


def prepare_staging(loc: OutputLocation, fingerprint: str, shards: list[Shard]) -> list[dict]:
    """Make the staging folder ready and return the markers of shards a previous, interrupted run
    of the same job finished (they are reused, not recomputed). Parts of unfinished shards go."""
    stamp_path = posixpath.join(loc.staging, STAMP)
    if _read_json(loc.fs, stamp_path).get("fingerprint") != fingerprint:
        _delete_dir(loc.fs, loc.staging)
        for sub in (DATA_DIR, DEAD_DIR, MARKER_DIR):
            loc.fs.create_dir(posixpath.join(loc.staging, sub), recursive=True)
        _write_bytes(loc.fs, stamp_path, json.dumps({"fingerprint": fingerprint}).encode())
        return []
    markers = read_markers(loc)
    expected = {s.index: s.num_rows for s in shards}
    complete = complete_shards(markers, expected)
    reused = [m for m in markers if m["shard"] in complete]
    referenced = {f["path"] for m in reused for f in m["files"]}
    for sub in (DATA_DIR, DEAD_DIR, MARKER_DIR):
        for info in loc.fs.get_file_info(pafs.FileSelector(posixpath.join(loc.staging, sub), allow_not_found=True)):
            rel = posixpath.relpath(info.path, loc.staging)
            shard = _shard_of(info.base_name)
            if shard in complete and (sub == MARKER_DIR or rel in referenced):
                continue
            loc.fs.delete_file(info.path)
    for sub in (DATA_DIR, DEAD_DIR, MARKER_DIR):
        loc.fs.create_dir(posixpath.join(loc.staging, sub), recursive=True)
    _delete_if_exists(loc.fs, posixpath.join(loc.staging, SUCCESS))
    return reused


def read_markers(loc: OutputLocation) -> list[dict]:
    selector = pafs.FileSelector(posixpath.join(loc.staging, MARKER_DIR), allow_not_found=True)
    return [_read_json(loc.fs, info.path) for info in sorted(loc.fs.get_file_info(selector), key=lambda i: i.path)]


def accounted_rows(markers: list[dict]) -> dict[int, int]:
    """Input rows each shard's parts account for (one SOURCE row per input row)."""
    seen: dict[int, int] = {}
    for marker in markers:
        seen[marker["shard"]] = seen.get(marker["shard"], 0) + marker["source_rows"]
    return seen


def complete_shards(markers: list[dict], expected_rows: dict[int, int]) -> set[int]:
    """Shards whose parts account for every one of their input rows."""
    return {shard for shard, rows in accounted_rows(markers).items() if expected_rows.get(shard) == rows}


def _shard_of(base_name: str) -> int | None:
    try:
        return int(base_name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return None


# ---- writing parts (runs inside write tasks) ------------------------------------------------


def write_block(loc: OutputLocation, block: pa.Table, input_columns: list[str], compression: str) -> list[dict]:
    """Write one block's rows, grouped by shard, as good and dead-letter parts; return markers."""
    stats = json.loads((block.schema.metadata or {}).get(STATS_METADATA_KEY, b"[]"))
    markers = []
    shard_ids = pc.unique(block[SHARD]).to_pylist() if block.num_rows else []
    for shard in sorted(shard_ids):
        part = block.filter(pc.equal(block[SHARD], shard))
        markers.append(write_part(loc, shard, part, input_columns, compression, stats))
    return markers


def write_part(loc: OutputLocation, shard: int, part: pa.Table, input_columns: list[str],
               compression: str, stats: list[dict]) -> dict:
    """Write a shard's part: good rows to data/, failed rows to _dead_letter/, marker last.
    The name comes from the part's first row id, so a retried task rewrites the same files."""
    key = hashlib.sha1(str(part["row_id"][0]).encode()).hexdigest()[:10]
    name = f"part-{shard:06d}-{key}"
    failed = pc.is_valid(part[ERROR_TYPE])
    good = part.filter(pc.invert(failed)).drop_columns(list(INTERNAL_COLUMNS))
    dead = dead_letter_rows(part.filter(failed), input_columns)
    files = []
    for sub, table in ((DATA_DIR, good), (DEAD_DIR, dead)):
        if table.num_rows:
            rel = f"{sub}/{name}.parquet"
            files.append({"path": rel, "rows": table.num_rows,
                          "sha256": _write_parquet(loc.fs, posixpath.join(loc.staging, rel), table, compression),
                          "kind": "data" if sub == DATA_DIR else "dead_letter",
                          "written_at": round(time.time(), 3)})
    source_rows = pc.sum(part[SOURCE]).as_py() or 0
    marker = {"shard": shard, "name": name, "source_rows": source_rows, "rows_out": good.num_rows,
              "rows_dead_letter": dead.num_rows, "files": files, "stage_stats": stats}
    _write_bytes(loc.fs, posixpath.join(loc.staging, MARKER_DIR, f"{name}.json"), json.dumps(marker).encode())
    return marker


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


# ---- publishing -----------------------------------------------------------------------------


def check_accounting(markers: list[dict], shards: list[Shard]) -> None:
    """Refuse to publish unless every input row is in the output or the dead letter exactly once."""
    expected = {s.index: s.num_rows for s in shards}
    seen = accounted_rows(markers)
    wrong = [(s, seen.get(s, 0), n) for s, n in expected.items() if seen.get(s, 0) != n]
    if wrong:
        shard, got, want = wrong[0]
        raise JobFailed(f"accounting check failed for {len(wrong)} shard(s), e.g. shard {shard}: "
                        f"{got} input rows accounted for, expected {want}; nothing was published")


def aggregate_stage_stats(markers: list[dict], stage_names: list[str]) -> list[dict]:
    """Sum per-shard stage statistics (one copy per shard) into one entry per stage."""
    totals = [{"index": i, "name": name, "rows_in": 0, "rows_out": 0, "rows_dead": 0, "seconds": 0.0}
              for i, name in enumerate(stage_names)]
    seen_shards = set()
    for marker in markers:
        if marker["shard"] in seen_shards:
            continue
        seen_shards.add(marker["shard"])
        for entry in marker["stage_stats"]:
            total = totals[entry["index"]]
            for key, value in entry.items():
                if key in ("index", "name"):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
                elif isinstance(value, str):
                    total.setdefault(key, value)  # model name, revision: the same on every shard
    for total in totals:
        total["seconds"] = round(total["seconds"], 3)
        if total["seconds"] > 0:
            total["rows_per_second"] = round(total["rows_in"] / total["seconds"], 1)
        if total.get("generate_seconds"):
            total["tokens_out_per_second"] = round(total.get("tokens_out", 0) / total["generate_seconds"], 1)
    return totals


def build_manifest(*, spec_resolved: dict, seed: int, shards: list[Shard], markers: list[dict],
                   stage_names: list[str], started_at: str, extra: dict | None = None) -> dict:
    """The manifest: counts, the file list readers trust, per-stage stats, spec and versions."""
    markers = sorted(markers, key=lambda m: m["name"])
    data_files = [f for m in markers for f in m["files"] if f["kind"] == "data"]
    dead_files = [f for m in markers for f in m["files"] if f["kind"] == "dead_letter"]
    manifest = {
        "name": spec_resolved.get("name"),
        "rows_in": sum(s.num_rows for s in shards),
        "rows_out": sum(f["rows"] for f in data_files),
        "rows_dead_letter": sum(f["rows"] for f in dead_files),
        "files": [{k: f[k] for k in FILE_KEYS} for f in data_files],
        "dead_letter_files": [{k: f[k] for k in FILE_KEYS} for f in dead_files],
        "shards": len(shards),
        "stages": aggregate_stage_stats(markers, stage_names),
        "spec": spec_resolved,
        "seed": seed,
        "started_at": started_at,
        "finished_at": now_iso(),
        "versions": versions(),
    }
    manifest.update(extra or {})
    return manifest


def publish(loc: OutputLocation, manifest: dict, overwrite: bool) -> None:
    """Write the manifest and _SUCCESS into staging, then move staging onto the output path."""
    staging_marker_dir = posixpath.join(loc.staging, MARKER_DIR)
    _remove_unlisted(loc, {f["path"] for f in manifest["files"] + manifest["dead_letter_files"]})
    _write_bytes(loc.fs, posixpath.join(loc.staging, MANIFEST), json.dumps(manifest, indent=2).encode())
    _delete_dir(loc.fs, staging_marker_dir)
    _delete_if_exists(loc.fs, posixpath.join(loc.staging, STAMP))
    _write_bytes(loc.fs, posixpath.join(loc.staging, SUCCESS), b"")
    if not loc.is_local():
        raise JobFailed(f"{loc.path}: publishing to this filesystem is not supported; use a local or mounted path")
    if os.path.exists(loc.path):
        if not overwrite and loc.is_committed():
            raise JobFailed(f"{loc.path}: another run published this output meanwhile; nothing replaced")
        # Move the old output aside first: a reader sees the old or the new output, never a mix.
        trash = f"{loc.staging}.old-{uuid.uuid4().hex[:8]}"
        os.rename(loc.path, trash)
        os.rename(loc.staging, loc.path)
        _delete_dir(loc.fs, trash)
    else:
        os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
        os.rename(loc.staging, loc.path)
    _fsync_dir(os.path.dirname(loc.path) or ".")


def _remove_unlisted(loc: OutputLocation, listed: set[str]) -> None:
    """Drop files no marker lists (left by a task that died before its marker), so the published
    folder holds exactly the manifest's files."""
    for sub in (DATA_DIR, DEAD_DIR):
        selector = pafs.FileSelector(posixpath.join(loc.staging, sub), allow_not_found=True)
        for info in loc.fs.get_file_info(selector):
            if posixpath.relpath(info.path, loc.staging) not in listed:
                loc.fs.delete_file(info.path)


def versions() -> dict:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("raybatch", "ray", "pyarrow", "pydantic", "torch", "transformers", "nlpaug", "nltk"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


# ---- small filesystem helpers -------------------------------------------------------------


def _write_parquet(fs: pafs.FileSystem, path: str, table: pa.Table, compression: str) -> str:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=compression)
    data = buffer.getvalue()
    _write_bytes(fs, path, data)
    return hashlib.sha256(data).hexdigest()


def _write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write via a temporary name and rename, so a file is either absent or complete."""
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    else:
        with fs.open_output_stream(path) as handle:
            handle.write(data)


def _read_json(fs: pafs.FileSystem, path: str) -> dict:
    try:
        with fs.open_input_stream(path) as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, OSError, ValueError):
        return {}


def _delete_dir(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def _delete_if_exists(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

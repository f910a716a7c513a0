"""Staging's work folder: every row of a segment that ends at a whole-input stage, per shard, and
that stage's decisions, per shard. Parts are named by shard (a shard is one block), so a retried
task rewrites the same file; a part counts once its marker, written after it, is on disk.
"""

from __future__ import annotations

import os
import posixpath
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.commit.identity import id_digest
from jobs.commit.layout import WORK_DIR, OutputLocation, is_file, read_json, write_bytes, write_json
from jobs.commit.parts import write_parquet
from jobs.inputs import Shard
from jobs.stages.base import (ERROR_TYPE, FILTER_REASON, INPUT_ID, KEYS_PREFIX, SHARD, SOURCE, failed_mask,
                              filtered_mask)

DONE = "_DONE"


def segment_dir(loc: OutputLocation, segment: int) -> str:
    return posixpath.join(loc.staging, WORK_DIR, f"segment-{segment}")


def decisions_dir(loc: OutputLocation, stage: int) -> str:
    return posixpath.join(loc.staging, WORK_DIR, f"decisions-{stage}")


def part_path(folder: str, shard: int) -> str:
    return posixpath.join(folder, f"part-{shard:06d}.parquet")


def write_work_block(loc: OutputLocation, segment: int, block: pa.Table) -> list[dict]:
    """Write a block's rows, all of them with the runner's columns, one part per shard."""
    folder = segment_dir(loc, segment)
    loc.fs.create_dir(folder, recursive=True)
    written = []
    for shard in sorted(pc.unique(block[SHARD]).to_pylist() if block.num_rows else []):
        part = block.filter(pc.equal(block[SHARD], shard))
        keys = tuple(name for name in part.column_names if name.startswith(KEYS_PREFIX))
        write_parquet(loc, part_path(folder, shard), part, "zstd", raw=keys)
        sources = part.filter(pc.fill_null(part[SOURCE], False))
        marker = {"shard": shard, "source_rows": sources.num_rows, "source_digest": id_digest(sources[INPUT_ID].to_pylist())}
        write_json(loc.fs, posixpath.join(folder, f"part-{shard:06d}.json"), marker)
        written.append(marker)
    return written


def done_shards(loc: OutputLocation, segment: int, shards: list[Shard]) -> set[int]:
    """Shards whose work part is complete: its marker accounts for exactly the shard's input ids."""
    folder = segment_dir(loc, segment)
    done = set()
    for shard in shards:
        marker = read_json(loc.fs, posixpath.join(folder, f"part-{shard.index:06d}.json"))
        if marker.get("source_rows") == shard.num_rows and marker.get("source_digest") == shard.digest:
            done.add(shard.index)
    return done


class WorkRows:
    """The live rows (not failed, not filtered) of a segment's work parts, in input order, read a
    few columns at a time so the driver never holds a whole corpus."""

    def __init__(self, loc: OutputLocation, segment: int, shards: list[Shard]):
        self.loc = loc
        self.paths = [part_path(segment_dir(loc, segment), s.index) for s in sorted(shards, key=lambda s: s.index)]
        self._live: list[np.ndarray] | None = None

    def _read(self, path: str, columns: list[str]) -> pa.Table:
        with self.loc.fs.open_input_file(path) as handle:
            return pq.read_table(handle, columns=columns)

    def live_masks(self) -> list[np.ndarray]:
        if self._live is None:
            self._live = []
            for path in self.paths:
                with self.loc.fs.open_input_file(path) as handle:
                    names = pq.read_schema(handle).names
                marks = self._read(path, [c for c in names if c in (ERROR_TYPE, FILTER_REASON)])
                removed = pc.or_(failed_mask(marks), filtered_mask(marks))
                self._live.append(np.asarray(pc.invert(removed)).astype(bool))
        return self._live

    def columns(self, names: list[str]) -> pa.Table:
        """`names` of every live row, concatenated in input order (row_id and shard included)."""
        tables = [self._read(path, ["row_id", SHARD, *names]).filter(pa.array(mask))
                  for path, mask in zip(self.paths, self.live_masks())]
        return pa.concat_tables(tables) if tables else pa.table({})

    def gather(self, name: str, positions: np.ndarray) -> pa.Array:
        """Column `name` at the given positions among the live rows (sorted ascending), read part by
        part, two parts at a time (reading and taking release the GIL)."""
        wanted, offset = [], 0
        for path, mask in zip(self.paths, self.live_masks()):
            count = int(mask.sum())
            lo, hi = np.searchsorted(positions, [offset, offset + count])
            if hi > lo:  # positions among the live rows -> rows of the part (no filtered copy)
                wanted.append((path, np.flatnonzero(mask)[positions[lo:hi] - offset]))
            offset += count

        def take(item: tuple[str, np.ndarray]) -> pa.ChunkedArray:
            return self._read(item[0], [name])[name].take(pa.array(item[1]))

        with ThreadPoolExecutor(max_workers=2) as pool:
            pieces = list(pool.map(take, wanted))
        return pa.chunked_array([c for p in pieces for c in p.chunks], type=pieces[0].type if pieces else None)


def write_decisions(loc: OutputLocation, stage: int, removed: pa.Table) -> None:
    """A whole-input stage's decisions, one file per shard that loses rows, `_DONE` last."""
    folder = decisions_dir(loc, stage)
    loc.fs.create_dir(folder, recursive=True)
    for shard in sorted(pc.unique(removed["shard"]).to_pylist() if removed.num_rows else []):
        rows = removed.filter(pc.equal(removed["shard"], shard)).select(["row_id", "reason", "of"])
        write_parquet(loc, part_path(folder, shard), rows, "zstd")
    write_bytes(loc.fs, posixpath.join(folder, DONE), b"")


def decisions_done(loc: OutputLocation, stage: int) -> bool:
    return is_file(loc.fs, posixpath.join(decisions_dir(loc, stage), DONE))


def read_decisions(folder: str, shard: int) -> dict[str, tuple[str, str | None]]:
    """The removals decided for one shard: row_id -> (reason, of). Used inside Ray's workers."""
    path = part_path(folder, shard)
    if not os.path.exists(path):  # a shard that loses no row has no file
        return {}
    table = pq.read_table(path)
    return dict(zip(table["row_id"].to_pylist(), zip(table["reason"].to_pylist(), table["of"].to_pylist())))

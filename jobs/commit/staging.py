"""The staging folder: made fresh for a new fingerprint, or kept so a rerun reuses finished shards.

The stamp records the job's fingerprint and name; only the run holding the output path's lock
touches staging, so a stamp from another job or spec is stale and the folder starts over.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict

import pyarrow.fs as pafs
from pydantic import ValidationError

from jobs.commit.identity import combine
from jobs.commit.layout import (DATA_DIR, DEAD_DIR, FILTERED_DIR, MARKER_DIR, STAMP, SUCCESS, OutputLocation, delete_dir,
                                delete_file, read_json, write_json)
from jobs.commit.models import Marker
from jobs.inputs import Shard

SUBDIRS = (DATA_DIR, DEAD_DIR, FILTERED_DIR, MARKER_DIR)


def prepare_staging(loc: OutputLocation, fingerprint: str, job_name: str, shards: list[Shard]) -> list[Marker]:
    """Make staging ready; return the markers of shards an interrupted run of the same job and
    spec finished (reused, not recomputed). Everything else in staging goes."""
    loc.check_staging_is_ours()
    stamp = read_json(loc.fs, posixpath.join(loc.staging, STAMP))
    if stamp.get("fingerprint") != fingerprint or stamp.get("job") != job_name:
        delete_dir(loc.fs, loc.staging)
        for sub in SUBDIRS:
            loc.fs.create_dir(posixpath.join(loc.staging, sub), recursive=True)
        write_json(loc.fs, posixpath.join(loc.staging, STAMP), {"fingerprint": fingerprint, "job": job_name})
        return []
    markers = read_markers(loc)
    complete = complete_shards(markers, shards)
    reused = [m for m in markers if m.shard in complete]
    keep = {f.path for m in reused for f in m.files} | {f"{MARKER_DIR}/{m.name}.json" for m in reused}
    for sub in SUBDIRS:
        selector = pafs.FileSelector(posixpath.join(loc.staging, sub), allow_not_found=True)
        for info in loc.fs.get_file_info(selector):
            if posixpath.relpath(info.path, loc.staging) not in keep:
                loc.fs.delete_file(info.path)
        loc.fs.create_dir(posixpath.join(loc.staging, sub), recursive=True)
    delete_file(loc.fs, posixpath.join(loc.staging, SUCCESS))
    return reused


def read_markers(loc: OutputLocation) -> list[Marker]:
    """Every valid marker in staging; a torn or foreign file is skipped (its shard is redone)."""
    selector = pafs.FileSelector(posixpath.join(loc.staging, MARKER_DIR), allow_not_found=True)
    markers = []
    for info in sorted(loc.fs.get_file_info(selector), key=lambda i: i.path):
        if not info.base_name.endswith(".json"):
            continue
        try:
            markers.append(Marker.model_validate(read_json(loc.fs, info.path)))
        except ValidationError:
            continue
    return markers


def accounted(markers: list[Marker]) -> dict[int, tuple[int, str]]:
    """Per shard: the input rows its parts account for, and their combined identity digest."""
    rows: dict[int, int] = defaultdict(int)
    digests: dict[int, list[str]] = defaultdict(list)
    for marker in markers:
        rows[marker.shard] += marker.source_rows
        digests[marker.shard].append(marker.source_digest)
    return {shard: (rows[shard], combine(digests[shard])) for shard in rows}


def complete_shards(markers: list[Marker], shards: list[Shard]) -> set[int]:
    """Shards whose parts account for exactly their input row ids."""
    seen = accounted(markers)
    return {s.index for s in shards if seen.get(s.index) == (s.num_rows, s.digest)}

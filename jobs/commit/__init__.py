"""Exactly-once output: staging, per-shard parts with typed markers, identity checks, atomic publish.

Layout while running (beside the output, so a reader of `output.path` never sees it):
    <parent>/.<basename>.staging/
        _stamp.json                 fingerprint and job name; another one starts staging over
        data/, _dead_letter/, _filtered/part-<shard>-<key>.parquet   output, failed and removed rows
        _shards/part-<shard>-<key>.json   a part's marker, written last: the part is complete
        _work/                      rows and decisions of a stage that needs the whole input (dedup)
Publishing verifies identities and files, writes `_manifest.json`, then `_SUCCESS`, then swaps the
staging folder in atomically. On object stores there is no rename: there the manifest is the
commit, and readers trust `_SUCCESS` and the manifest's file list, never a listing.
"""

from jobs.commit.layout import (DATA_DIR, DEAD_DIR, FILTERED_DIR, MANIFEST, MARKER_DIR, SUCCESS, OutputLocation, disk_full,
                                is_disk_full, now_iso, remove_temp_files)
from jobs.commit.models import FileEntry, Manifest, Marker
from jobs.commit.parts import STATS_METADATA_KEY, write_block
from jobs.commit.publishing import publish, recover
from jobs.commit.staging import prepare_staging, read_markers
from jobs.commit.verify import build_manifest, check_dead_letter_fraction, check_identity, verify_files
from jobs.commit.work import (WorkRows, decisions_dir, decisions_done, done_shards, part_path, segment_dir,
                              write_decisions, write_work_block)

__all__ = ["DATA_DIR", "DEAD_DIR", "FILTERED_DIR", "WorkRows", "decisions_dir", "decisions_done", "done_shards",
           "part_path", "segment_dir", "write_decisions", "write_work_block", "MANIFEST", "MARKER_DIR", "SUCCESS", "STATS_METADATA_KEY", "FileEntry",
           "Manifest", "Marker", "OutputLocation", "build_manifest", "check_dead_letter_fraction",
           "check_identity", "disk_full", "is_disk_full", "now_iso", "prepare_staging", "publish", "read_markers", "recover",
           "remove_temp_files", "verify_files", "write_block"]

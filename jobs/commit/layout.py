"""Where a job's output, staging, lock and publish record live, and small filesystem helpers.

Beside `<parent>/<base>` (the output) the runner keeps, all its own:
    .<base>.staging/   parts, markers and the stamp while the job runs
    .<base>.old/       the previous output during a two-rename swap (only where no exchange exists)
    .<base>.lock       the lock, per output path
    .<base>.publish    the publish record: which run's output is being put in place
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import posixpath
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from jobs.errors import JobFailed, OutputConflict
from jobs.inputs import resolve_filesystem

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
DATA_DIR = "data"
DEAD_DIR = "_dead_letter"
FILTERED_DIR = "_filtered"
MARKER_DIR = "_shards"
WORK_DIR = "_work"  # intermediate results of a stage that needs the whole input (dedup)
STAMP = "_stamp.json"
TMP_INFIX = ".tmp-"
DERIVED_FILES = ("report.html", "README.md")  # written with the data before publishing (the manifest lists them)
# A fine-tuning output: the model, and while it trains, the Trainer's checkpoints and Ray Train's files.
MODEL_DIR, CHECKPOINT_DIR, RAY_TRAIN_DIR, TRAIN_LOG = "model", "_checkpoints", "_ray", "_train_log.json"
STAGING_ENTRIES = {DATA_DIR, DEAD_DIR, FILTERED_DIR, MARKER_DIR, WORK_DIR, STAMP, MANIFEST, SUCCESS,
                   MODEL_DIR, CHECKPOINT_DIR, RAY_TRAIN_DIR, TRAIN_LOG, *DERIVED_FILES}
LISTED_FILES = ("files", "dead_letter_files", "filtered_files")  # the manifest's file lists


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class OutputLocation:
    """The final output folder and the runner's own siblings of it, on one filesystem."""

    fs: pafs.FileSystem
    path: str

    @classmethod
    def for_uri(cls, uri: str) -> "OutputLocation":
        fs, path = resolve_filesystem(uri)
        return cls(fs, path.rstrip("/") or "/")

    def _sibling(self, suffix: str) -> str:
        parent, base = posixpath.split(self.path)
        return posixpath.join(parent, f".{base}.{suffix}")

    @property
    def staging(self) -> str:
        return self._sibling("staging")

    @property
    def trash(self) -> str:
        return self._sibling("old")

    @property
    def lock_path(self) -> str:
        return self._sibling("lock")

    @property
    def publish_record(self) -> str:
        return self._sibling("publish")

    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def is_committed(self) -> bool:
        return is_file(self.fs, posixpath.join(self.path, SUCCESS))

    def committed_fingerprint(self) -> str | None:
        if not self.is_committed():
            return None
        return read_json(self.fs, posixpath.join(self.path, MANIFEST)).get("fingerprint")

    def committed_job(self, path: str | None = None) -> str | None:
        """The job name in a committed output's manifest at `path` (default: the output)."""
        path = path or self.path
        if not is_file(self.fs, posixpath.join(path, SUCCESS)):
            return None
        name = read_json(self.fs, posixpath.join(path, MANIFEST)).get("name")
        return name if isinstance(name, str) else None

    def check_replaceable(self, job_name: str) -> None:
        """Refuse (exit 2, nothing touched) unless the output path is free, an empty folder, or a
        committed output of this same job: the runner never replaces what it did not write."""
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            return
        if info.type != pafs.FileType.Directory:
            raise OutputConflict(f"output.path {self.path}: exists and is not a folder; nothing was touched")
        owner = self.committed_job()
        if owner == job_name:
            return
        entries = self.fs.get_file_info(pafs.FileSelector(self.path))
        if not entries:
            return
        what = (f"a committed output of job {owner!r}" if owner else
                f"a folder this job did not write ({len(entries)} entries)")
        raise OutputConflict(f"output.path {self.path}: holds {what}; choose another output.path or move "
                             f"it away; nothing was touched")


    def check_unchanged(self) -> None:
        """Before replacing this job's committed output: refuse if someone added files to it."""
        added = self.unlisted_files()
        if added:
            raise OutputConflict(f"output.path {self.path}: this job's committed output now also holds "
                                 f"{len(added)} file(s) it did not write (e.g. {added[0]}); move them away "
                                 f"first; nothing was touched")

    def unlisted_files(self) -> list[str]:
        """Files in the committed output that its manifest does not list (someone added them)."""
        manifest = read_json(self.fs, posixpath.join(self.path, MANIFEST))
        listed = {f.get("path") for key in LISTED_FILES for f in manifest.get(key, [])}
        # report.html is ours whether the run or an older `raybatch report` wrote it; a README.md only
        # when the manifest says the run wrote it (a user's own notes are never replaced silently).
        listed |= {SUCCESS, MANIFEST, "report.html"}
        listed |= {manifest[key] for key in ("report", "dataset_card") if manifest.get(key)}
        found = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
        return sorted(rel for rel in (posixpath.relpath(i.path, self.path) for i in found
                                      if i.type == pafs.FileType.File) if rel not in listed)

    def check_staging_is_ours(self) -> None:
        """Refuse to wipe a staging-named folder that holds anything the runner would not put there."""
        if self.fs.get_file_info(self.staging).type == pafs.FileType.NotFound:
            return
        entries = {i.base_name for i in self.fs.get_file_info(pafs.FileSelector(self.staging))}
        foreign = sorted(entries - STAGING_ENTRIES)
        if foreign:
            raise OutputConflict(f"{self.staging}: holds {foreign[0]!r}, which the runner never writes there; "
                                 f"move the folder away; nothing was touched")


# ---- small filesystem helpers -------------------------------------------------------------


def is_file(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write via a temporary name and rename, so a file is either absent or complete; a failed
    write (a full disk) leaves no temporary file behind."""
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(path) as handle:
            handle.write(data)
        return
    tmp = f"{path}{TMP_INFIX}{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(fs: pafs.FileSystem, path: str, value: dict) -> None:
    write_bytes(fs, path, json.dumps(value, indent=1, sort_keys=True).encode())


def read_json(fs: pafs.FileSystem, path: str) -> dict:
    """A JSON object, or {} when the file is absent or unreadable (a torn write counts as absent)."""
    try:
        with fs.open_input_stream(path) as handle:
            value = json.loads(handle.read())
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def delete_dir(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def delete_file(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def remove_temp_files(folder: str) -> None:
    """Remove half-written `*.tmp-*` files under a local staging folder (a write that died)."""
    for root, _, names in os.walk(folder):
        for name in names:
            if TMP_INFIX in name:
                try:
                    os.unlink(os.path.join(root, name))
                except OSError:
                    pass


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(loc: OutputLocation) -> JobFailed:
    """The one-line error for a full disk, once the half-written files are gone."""
    if loc.is_local():
        remove_temp_files(loc.staging)
    return JobFailed(f"no space left on {posixpath.dirname(loc.staging)}: nothing was published, the previous "
                     f"output is untouched; free space and rerun (finished shards are kept in {loc.staging})")

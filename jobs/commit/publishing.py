"""Putting a verified staging folder in place, atomically, and finishing a publish a kill cut short.

Order: the publish record names the run going in place; staging is sealed (manifest, `_SUCCESS`);
then one `renameat2(RENAME_EXCHANGE)` swaps it with the old output (where the filesystem has no
exchange: old output aside to `.<base>.old`, staging in, old deleted). At every instant the output
path holds the old output or the new one, and `recover` finishes any publish a kill interrupted
from the record, never recomputing a sealed staging and never leaking a copy of the old output.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import posixpath

import pyarrow.fs as pafs

from jobs.commit.layout import (CHECKPOINT_DIR, DATA_DIR, DEAD_DIR, DERIVED_FILES, FILTERED_DIR, MANIFEST, MARKER_DIR,
                                MODEL_DIR, RAY_TRAIN_DIR, STAMP, SUCCESS, TRAIN_LOG, WORK_DIR,
                                OutputLocation, delete_dir, delete_file, fsync_dir, is_file, read_json, write_bytes,
                                write_json)
from jobs.commit.models import Manifest
from jobs.crashpoints import crash_point
from jobs.errors import JobFailed

OUTPUT_ENTRIES = {DATA_DIR, DEAD_DIR, FILTERED_DIR, MODEL_DIR, MANIFEST, SUCCESS, MARKER_DIR, WORK_DIR, STAMP,
                  *DERIVED_FILES}
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def publish(loc: OutputLocation, manifest: Manifest) -> None:
    """Seal staging with `manifest` and put it at the output path (see the module docstring).
    The caller has checked the output path is free or this job's own committed output."""
    if not loc.is_local():
        raise JobFailed(f"{loc.path}: publishing to this filesystem is not supported; use a local or mounted path")
    write_json(loc.fs, loc.publish_record, {"run_id": manifest.run_id, "job": manifest.name})
    crash_point("publish.recorded")
    _seal(loc, manifest)
    crash_point("publish.sealed")
    put_in_place(loc, manifest.run_id)
    delete_file(loc.fs, loc.publish_record)


def recover(loc: OutputLocation) -> str | None:
    """Finish or undo what a killed publish left; return what was done, for the log (None: nothing)."""
    if not loc.is_local():
        return None
    done = _clear_leftovers(loc)
    run_id = read_json(loc.fs, loc.publish_record).get("run_id")
    if run_id:
        if _run_id(loc, loc.path) == run_id:
            if _run_id(loc, loc.staging) not in (None, run_id):
                os.rename(loc.staging, loc.trash)  # the old output, swapped out before the kill
                _clear_leftovers(loc)
            done = done or "the interrupted publish had put this run's output in place"
        elif _run_id(loc, loc.staging) == run_id:
            put_in_place(loc, run_id)
            done = "finished publishing the output of an interrupted run"
        delete_file(loc.fs, loc.publish_record)
    return done


def _clear_leftovers(loc: OutputLocation) -> str | None:
    """Delete an old output moved aside (perhaps half deleted when a kill came) and the copies the
    previous protocol leaked (`.<base>.staging.old-*`): ours by name, and by holding only what an
    output holds."""
    parent, base = posixpath.split(loc.path)
    legacy = sorted(glob.glob(posixpath.join(glob.escape(parent), f".{glob.escape(base)}.staging.old-*")))
    done = None
    for folder in [loc.trash, *legacy]:
        if os.path.isdir(folder) and not os.path.islink(folder) and set(os.listdir(folder)) <= OUTPUT_ENTRIES:
            delete_dir(loc.fs, folder)
            done = "removed the previous output left by an interrupted swap"
    return done


def _seal(loc: OutputLocation, manifest: Manifest) -> None:
    """Make staging exactly the committed output: listed files only, manifest, `_SUCCESS` last."""
    listed = {f.path for f in manifest.files + manifest.dead_letter_files + manifest.filtered_files}
    for sub in (DATA_DIR, DEAD_DIR, FILTERED_DIR):
        selector = pafs.FileSelector(posixpath.join(loc.staging, sub), allow_not_found=True)
        for info in loc.fs.get_file_info(selector):
            if posixpath.relpath(info.path, loc.staging) not in listed:
                loc.fs.delete_file(info.path)  # a part of a task that died before its marker
    write_bytes(loc.fs, posixpath.join(loc.staging, MANIFEST), manifest.model_dump_json(indent=2).encode())
    write_bytes(loc.fs, posixpath.join(loc.staging, SUCCESS), b"")
    _tidy(loc)


def _tidy(loc: OutputLocation) -> None:
    """Drop the runner's bookkeeping from a sealed staging folder (markers, intermediates, stamp,
    a fine-tuning's checkpoints)."""
    for folder in (MARKER_DIR, WORK_DIR, CHECKPOINT_DIR, RAY_TRAIN_DIR):
        delete_dir(loc.fs, posixpath.join(loc.staging, folder))
    for name in (STAMP, TRAIN_LOG):
        delete_file(loc.fs, posixpath.join(loc.staging, name))
    fsync_dir(loc.staging)


def put_in_place(loc: OutputLocation, run_id: str) -> None:
    _tidy(loc)
    parent = os.path.dirname(loc.path) or "."
    os.makedirs(parent, exist_ok=True)
    if not os.path.lexists(loc.path) or (os.path.isdir(loc.path) and not os.listdir(loc.path)):
        os.rename(loc.staging, loc.path)  # onto nothing, or onto an empty folder: one atomic rename
    elif _exchange(loc.staging, loc.path):
        crash_point("publish.swapped")
        os.rename(loc.staging, loc.trash)  # the old output: out of the way in one step, then deleted
        delete_dir(loc.fs, loc.trash)
    else:
        os.rename(loc.path, loc.trash)
        crash_point("publish.moved_aside")
        os.rename(loc.staging, loc.path)
        delete_dir(loc.fs, loc.trash)
    fsync_dir(parent)
    if _run_id(loc, loc.path) != run_id:
        raise JobFailed(f"{loc.path}: the published output is not this run's; nothing else was changed")


def _run_id(loc: OutputLocation, folder: str) -> str | None:
    if not is_file(loc.fs, posixpath.join(folder, SUCCESS)):
        return None
    value = read_json(loc.fs, posixpath.join(folder, MANIFEST)).get("run_id")
    return value if isinstance(value, str) else None


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the platform or filesystem can't."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)

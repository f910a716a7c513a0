"""Job state that outlives one run: the job's lock and the incremental record of input files.

Both live in the job's state folder: the part of the output path template before its first
`{date}` (so it lasts from night to night), or the output's parent when there is no `{date}`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass

from jobs.commit import SUCCESS, now_iso
from jobs.errors import LockHeld
from jobs.inputs import InputFile


def state_dir(output_template: str, name: str) -> str:
    template = output_template.replace("{name}", name)
    if "{date}" in template:
        return os.path.abspath(template.split("{date}")[0].rstrip("/") or ".")
    return os.path.dirname(os.path.abspath(template.rstrip("/")))


class JobLock:
    """An exclusive lock per job, held for the whole run. The kernel drops it when the holder
    dies, so a stale lock file (its process gone) is taken over without any guessing."""

    def __init__(self, directory: str, name: str):
        self.path = os.path.join(directory, f".raybatch-{name}.lock")
        self._fd: int | None = None

    def acquire(self) -> "JobLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(f"another run of this job holds {self.path} ({holder}); exiting") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {now_iso()}".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "JobLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class IncrementalState:
    """Which input files earlier runs committed, and into which output. A file counts as done only
    if that output has _SUCCESS, so a run killed before publishing leaves its files to the next."""

    path: str

    @classmethod
    def for_job(cls, directory: str, name: str) -> "IncrementalState":
        return cls(os.path.join(directory, f".raybatch-{name}.state.json"))

    def load(self) -> dict[str, dict]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.load(handle).get("files", {})
        except FileNotFoundError:
            return {}

    def new_files(self, files: list[InputFile], output_path: str) -> list[InputFile]:
        """Files not committed before by another output (a rerun of this output redoes its own)."""
        done = self.load()
        fresh = []
        for file in files:
            entry = done.get(file.path)
            seen = (entry is not None and entry["size"] == file.size and entry["mtime"] == file.mtime
                    and entry["output"] != output_path
                    and os.path.exists(os.path.join(entry["output"], SUCCESS)))
            if not seen:
                fresh.append(file)
        return fresh

    def record(self, files: list[InputFile], output_path: str) -> None:
        """Record files as taken by `output_path`; call before publishing (see the class doc)."""
        done = self.load()
        for file in files:
            done[file.path] = {"size": file.size, "mtime": file.mtime, "output": output_path, "at": now_iso()}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"files": done}, handle, indent=1)
        os.replace(tmp, self.path)

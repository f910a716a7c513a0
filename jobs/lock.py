"""Exclusive run locks: one per output path (two jobs can never share a staging folder), plus one
per job for incremental jobs (their record of taken files is the job's, across dates)."""

from __future__ import annotations

import fcntl
import os
import socket

from jobs.commit.layout import now_iso
from jobs.errors import LockHeld


class RunLock:
    """Held for the whole run. The kernel drops it when the holder dies, so a stale lock file
    (its process gone) is taken over without any guessing."""

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(f"another run holds {self.what} ({self.path}: {holder}); exiting") from None
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

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

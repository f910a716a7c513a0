"""raybatch's per-user cache folder, for files derived once and reused by every later process on the
machine (jieba's dictionary cache, the compiled WordNet index)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/raybatch` (default `~/.cache/raybatch`), made if missing; the temp dir when
    that folder cannot be written (a read-only home on a cluster node)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raybatch"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.gettempdir())

"""Named points in the run's lifecycle where the fault-injection tests kill the process.

`RAYBATCH_CRASH_AT=<name>` makes the run SIGKILL itself on reaching that point, as a power cut or
an OOM kill would; the tests then rerun the job and compare its output with an uninterrupted run.
Unset (always, outside those tests), a point costs one dictionary lookup. The points, in the order
a run reaches them: run.locked, run.executed, publish.recorded, publish.sealed, publish.swapped (or
publish.moved_aside where the filesystem has no atomic exchange), run.published.
"""

from __future__ import annotations

import os
import signal

ENV = "RAYBATCH_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

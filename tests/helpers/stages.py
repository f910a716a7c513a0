"""Stages used only by tests, named in specs as "tests.helpers.stages:Class"."""

from __future__ import annotations

import os
import time

import pyarrow as pa

from jobs.stages.base import Stage, StageParams, set_column


class UpperParams(StageParams):
    column: str
    output_column: str = "upper"
    explode_on: str | None = None  # rows whose text contains this raise, to test isolation
    sleep_per_batch: float = 0.0
    # Kill this worker process once, mid-run, to test retries (a file marks that it happened).
    die_once_flag: str | None = None


class UpperStage(Stage):
    """Upper-cases a column; can raise on chosen rows, sleep, or kill its own worker once."""

    name = "upper"
    Params = UpperParams

    @classmethod
    def input_columns(cls, params):
        return {params.column: "string"}

    @classmethod
    def output_columns(cls, params):
        return [params.output_column]

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.params.sleep_per_batch:
            time.sleep(self.params.sleep_per_batch)
        flag = self.params.die_once_flag
        if flag and not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(1)  # a worker process dying mid-batch, as a node loss or OOM kill would
        values = []
        for value in batch[self.params.column].to_pylist():
            if self.params.explode_on and value and self.params.explode_on in value:
                raise RuntimeError(f"cannot handle {value[:20]!r}")
            values.append(value.upper() if value is not None else None)
        self.count("uppercased", len(values))
        return set_column(batch, self.params.output_column, pa.array(values, pa.string()))


class UpperActorStage(UpperStage):
    """The same stage run in an actor pool, as model stages are."""

    name = "upper_actor"
    uses_actors = True

"""Stages used only by tests, named in specs as "tests.helpers.stages:Class"."""

from __future__ import annotations

import os
import time

import pyarrow as pa

from jobs.errors import SpecError
from jobs.stages.base import Stage, StageParams, set_column


class UpperParams(StageParams):
    column: str
    output_column: str = "upper"
    explode_on: str | None = None  # rows whose text contains this raise a declared row error (ValueError)
    bug_on: str | None = None  # rows whose text contains this hit a plain bug (ZeroDivisionError)
    fail_init: bool = False  # the constructor raises, as a model that cannot load would
    refuse_on_init: bool = False  # the constructor raises SpecError, as an engine refusing a setting does
    drop_and_double: bool = False  # drop the first row and double the last: a stage breaking identity
    sleep_per_batch: float = 0.0
    # Kill this worker process once, mid-run, to test retries (a file marks that it happened).
    die_once_flag: str | None = None


class UpperStage(Stage):
    """Upper-cases a column; can raise on chosen rows, sleep, or kill its own worker once."""

    name = "upper"
    Params = UpperParams
    row_errors = (ValueError,)

    def __init__(self, params, context):
        super().__init__(params, context)
        if params.fail_init:
            raise OSError(f"cannot load weights from /models/{params.column}")
        if params.refuse_on_init:
            raise SpecError(f"target_lang: 'xx' is not a language code of /models/{params.column}")

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
                raise ValueError(f"cannot handle {value[:20]!r}")
            if self.params.bug_on and value and self.params.bug_on in value:
                values.append(str(1 / 0))
            values.append(value.upper() if value is not None else None)
        self.count("uppercased", len(values))
        out = set_column(batch, self.params.output_column, pa.array(values, pa.string()))
        if self.params.drop_and_double and out.num_rows > 1:
            out = pa.concat_tables([out.slice(1), out.slice(out.num_rows - 1)])
        return out


class UpperActorStage(UpperStage):
    """The same stage run in an actor pool, as model stages are."""

    name = "upper_actor"
    uses_actors = True


class ThreadsActorStage(UpperActorStage):
    """Reports the torch threads its actor computes with (a model stage's view of its cores)."""

    name = "threads_actor"

    def info(self) -> dict[str, str]:
        import torch

        return {"torch_threads": str(torch.get_num_threads())}

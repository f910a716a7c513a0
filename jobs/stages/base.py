"""The stage contract: a stage is one callable class over pyarrow batches.

A stage declares its params model, the columns it needs and the columns it adds, so a spec is
checked end to end before Ray starts. `__init__` loads what the stage needs once per worker;
`__call__(batch) -> batch` does the work. Rows a stage cannot process are marked with
`mark_failed`, or the stage raises `RowError` (or one of its declared `row_errors`), and
`StageRunner` (plain Python, no Ray) isolates those rows for the dead letter. Rows a stage removes
on purpose are marked with `mark_filtered` and go to `_filtered/`. Anything else a stage raises is a
bug or a broken model: it fails the block, and the job, naming the stage.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from jobs.errors import RaybatchError, RowError, StageFailed

# Columns the runner adds to every row while it travels through the pipeline; never written as-is.
SHARD = "_rb_shard"
SOURCE = "_rb_source"  # True on exactly one output row per input row (the accounting invariant)
INPUT_ID = "_rb_input_id"  # the input row's id this row descends from (an augmented copy's parent)
ERROR_STAGE = "_rb_error_stage"
ERROR_TYPE = "_rb_error_type"
ERROR = "_rb_error"
# A row a stage removed on purpose (a duplicate, an eval-set copy, personal data): it goes to
# _filtered/ with the stage, the reason and the row it duplicates, and later stages skip it.
FILTER_STAGE = "_rb_filter_stage"
FILTER_REASON = "_rb_filter_reason"
FILTER_OF = "_rb_filter_of"
# A whole-input stage's key columns (`keys` adds them for `decide`): `_rb_keys<stage index>_<name>`.
# Only the driver reads them back; the pass after the decision skips them.
KEYS_PREFIX = "_rb_keys"
INTERNAL_COLUMNS = (SHARD, SOURCE, INPUT_ID, ERROR_STAGE, ERROR_TYPE, ERROR, FILTER_STAGE, FILTER_REASON, FILTER_OF)
ROW_ID = "row_id"


class IdentityError(RuntimeError):
    """A stage returned a batch that does not account for each input row exactly once (a bug)."""


class Resources(BaseModel):
    """Where a stage's workers run: GPUs and CPUs per replica and how many replicas."""

    model_config = ConfigDict(extra="forbid")
    num_gpus: float = Field(0, ge=0)
    num_cpus: float = Field(1, gt=0)
    replicas: int = Field(1, ge=1)


class StageParams(BaseModel):
    """Params every stage accepts; a stage subclasses this with its own keys (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    use: str
    resources: Resources = Resources()


@dataclass(frozen=True)
class StageContext:
    """What a stage knows about its place in the job: seeds derive from `seed`."""

    job_name: str
    seed: int
    stage_index: int
    stage_name: str
    actor_id: str | None = None  # set when the stage runs in a Ray actor, which Ray restarts if it dies
    # Rows this stage adds are named `<parent>~<copy_tag><n>`. A second stage that adds rows gets its
    # own tag, so a copy it makes never takes the id of a copy an earlier stage made and kept.
    copy_tag: str = "aug"
    # For a stage that decides from the whole input: the folder its decisions were written to.
    decisions_dir: str | None = None
    # Where a worker reports what each block did (jobs/progress.py), and under which name.
    progress_board: str | None = None
    progress_label: str = ""


class Stage:
    """Base class of every stage. Subclasses set `name` and `Params` and implement `__call__`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StageParams]] = StageParams
    # Model stages run in a pool of long-lived actors (one model load each); others run as tasks.
    uses_actors: ClassVar[bool] = False
    # Stages that emit more rows than they get (augmentation) say so; the accounting allows it.
    adds_rows: ClassVar[bool] = False
    # Exceptions that mean "this row is bad", beyond RowError: the runner isolates the rows that
    # raise them for the dead letter. Anything else fails the job.
    row_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    # A stage that decides each row from every row of the input (dedup) runs in two halves: `keys`
    # over each block, then `decide` once on the driver over all keys, then `__call__` applies it.
    whole_input: ClassVar[bool] = False

    def __init__(self, params: StageParams, context: StageContext):
        self.params = params
        self.context = context
        self._metrics: dict[str, float] = {}

    @classmethod
    def input_columns(cls, params: StageParams) -> dict[str, str]:
        """Columns this stage reads, mapped to the kind it needs ('string' or 'any')."""
        return {}

    @classmethod
    def output_columns(cls, params: StageParams) -> list[str]:
        """Columns this stage adds (or rewrites)."""
        return []

    @classmethod
    def runs_in_actors(cls, params: StageParams) -> bool:
        """Whether this stage, with these params, runs in an actor pool (it loads a model)."""
        return cls.uses_actors

    @classmethod
    def preflight(cls, params: StageParams) -> None:
        """Check outside resources (model paths, lexicons) before any work; raise SpecError."""

    @classmethod
    def check_engine(cls, params: StageParams) -> None:
        """Check settings against the engine library installed here (validate only: at run time the
        stage checks them where it loads, whose libraries are the ones that count); raise SpecError."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def keys(self, batch: pa.Table) -> pa.Table:
        """A whole-input stage's first half: the batch with the columns `decide` reads added."""
        raise NotImplementedError

    @classmethod
    def key_columns(cls, params: StageParams) -> list[str]:
        """The columns `keys` adds (runner-internal; `__call__` drops them)."""
        return []

    @classmethod
    def decide(cls, params: StageParams, rows, context: StageContext) -> pa.Table:
        """Once, on the driver, over the keys of every live row (a `jobs.commit.work.WorkRows`):
        a table of the rows to remove, with columns row_id, shard, reason and of."""
        raise NotImplementedError

    @classmethod
    def extra_inputs(cls, params: StageParams) -> list[str]:
        """Files the stage reads besides the input (eval sets): they count in the job's fingerprint."""
        return []

    @classmethod
    def scrubber(cls, params: StageParams):
        """A function that cleans a table of rows the dead letter or _filtered/ keeps (redaction),
        or None. Those rows hold the input's columns as they were before this stage ran."""
        return None

    def count(self, key: str, value: float = 1) -> None:
        """Add to a counter that lands in the manifest under this stage (tokens, per-op counts)."""
        self._metrics[key] = self._metrics.get(key, 0) + value

    def add_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.count(key, value)

    def info(self) -> dict[str, str]:
        """Facts about this stage's worker that belong in the manifest (model name, revision)."""
        return {}

    def take_metrics(self) -> dict[str, float]:
        metrics, self._metrics = self._metrics, {}
        return metrics


def mark_failed(batch: pa.Table, failures: dict[int, tuple[str, str]]) -> pa.Table:
    """Return `batch` with rows `{index: (error_type, message)}` marked as failed."""
    if not failures:
        return batch
    types = [failures[i][0] if i in failures else None for i in range(batch.num_rows)]
    messages = [failures[i][1] if i in failures else None for i in range(batch.num_rows)]
    batch = set_column(batch, ERROR_TYPE, pa.array(types, pa.string()))
    return set_column(batch, ERROR, pa.array(messages, pa.string()))


def mark_filtered(batch: pa.Table, filtered: dict[int, tuple[str, str | None]]) -> pa.Table:
    """Return `batch` with rows `{index: (reason, of)}` marked as removed on purpose; `of` names the
    row it duplicates (a kept row's id, or an eval row), or is None."""
    if not filtered:
        return batch
    reasons = [filtered[i][0] if i in filtered else None for i in range(batch.num_rows)]
    of = [filtered[i][1] if i in filtered else None for i in range(batch.num_rows)]
    batch = set_column(batch, FILTER_REASON, pa.array(reasons, pa.string()))
    return set_column(batch, FILTER_OF, pa.array(of, pa.string()))


def key_column(stage_index: int, name: str) -> str:
    return f"{KEYS_PREFIX}{stage_index}_{name}"


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Replace `name` if present (keeping its position), else append it."""
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, name, values)
    return table.append_column(name, values)


def failed_mask(batch: pa.Table) -> pa.Array:
    return _marked(batch, ERROR_TYPE)


def filtered_mask(batch: pa.Table) -> pa.Array:
    return _marked(batch, FILTER_REASON)


def _marked(batch: pa.Table, column: str) -> pa.Array:
    if column not in batch.column_names:
        return pa.array([False] * batch.num_rows)
    return pc.is_valid(batch[column]).combine_chunks() if batch.num_rows else pa.array([], pa.bool_())


class StageRunner:
    """Runs one stage over a batch: skips rows already failed or filtered, isolates rows that raise a
    declared row error, stamps the stage name on new failures and filtered rows, checks identity,
    reports rows and seconds."""

    def __init__(self, stage: Stage, keys: bool = False):
        self.stage = stage
        self.keys = keys  # run the stage's `keys` half instead of its call
        self.row_errors = (RowError, *stage.row_errors)

    def __call__(self, batch: pa.Table) -> tuple[pa.Table, dict]:
        started = time.perf_counter()
        self.stage.take_metrics()  # counters of an attempt that raised must not reach this batch
        removed = pc.or_(failed_mask(batch), filtered_mask(batch))
        live = batch.filter(pc.invert(removed))
        earlier_removed = batch.filter(removed)
        try:
            out = self._call_isolating(live) if live.num_rows else live
            check_identity(live, out, self.stage.name)
            new_failures = failed_mask(out)
            new_filtered = filtered_mask(out)
            out = set_column(out, ERROR_STAGE, self._stamp(new_failures))
            out = set_column(out, FILTER_STAGE, self._stamp(new_filtered))
            result = _concat([out, earlier_removed])
        except RaybatchError:
            raise
        except Exception as exc:
            first = live[ROW_ID][0].as_py() if live.num_rows and ROW_ID in live.column_names else None
            name = self.stage.context.stage_name or self.stage.name  # as the spec names it
            raise StageFailed(f"stage {name!r} raised {type(exc).__name__}: {one_line(exc)} "
                              f"(in a block starting at row_id {first!r}); nothing was published") from exc
        dead_now = pc.sum(new_failures).as_py() or 0
        filtered_now = pc.sum(new_filtered).as_py() or 0
        stats = {
            "rows_in": live.num_rows,
            "rows_out": out.num_rows - dead_now - filtered_now,
            "rows_dead": dead_now,
            "rows_filtered": filtered_now,
            "seconds": time.perf_counter() - started,
            **self.stage.take_metrics(),
            **self.stage.info(),
        }
        return result, stats

    def _stamp(self, mask: pa.Array) -> pa.Array:
        return pc.if_else(mask, pa.scalar(self.stage.name), pa.scalar(None, pa.string()))

    def _call_isolating(self, batch: pa.Table) -> pa.Table:
        """Call the stage; on a declared row error, split the batch until the raising rows are alone.
        What a raising call counted is dropped: the halves count their rows again."""
        counted = self.stage.take_metrics()
        try:
            return self.stage.keys(batch) if self.keys else self.stage(batch)
        except self.row_errors as exc:
            self.stage.take_metrics()
            if batch.num_rows == 1:
                kind = exc.kind if isinstance(exc, RowError) else type(exc).__name__
                return mark_failed(batch, {0: (kind, str(exc) or repr(exc))})
            half = batch.num_rows // 2
            return _concat([self._call_isolating(batch.slice(0, half)),
                            self._call_isolating(batch.slice(half))])
        finally:
            self.stage.add_metrics(counted)


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or repr(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_identity(before: pa.Table, after: pa.Table, stage: str) -> None:
    """Each input row of the batch is accounted for exactly once by the stage's output: the rows
    flagged as source carry the same input ids, no more and no fewer (rows added beside them, like
    augmented copies, are not flagged)."""
    if INPUT_ID not in before.column_names:
        return
    if INPUT_ID not in after.column_names or SOURCE not in after.column_names:
        raise IdentityError(f"stage {stage!r} dropped the runner's columns {INPUT_ID!r}/{SOURCE!r}")
    want = sorted(_source_ids(before))
    got = sorted(_source_ids(after))
    if want != got:
        missing = sorted(set(want) - set(got))[:3]
        doubled = sorted(i for i, n in Counter(got).items() if n > 1)[:3]
        raise IdentityError(f"stage {stage!r} returned {len(got)} rows for {len(want)} input rows "
                            f"(missing e.g. {missing}, doubled e.g. {doubled})")


def _source_ids(table: pa.Table) -> list[str]:
    return table.filter(pc.fill_null(table[SOURCE], False))[INPUT_ID].to_pylist() if table.num_rows else []


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def corpus_columns(column: str, label_column: str | None, split_column: str | None) -> dict[str, str]:
    """The columns a corpus stage reads: its text (a string), and its label and split if named (any type)."""
    needed = {column: "string"}
    for extra in (label_column, split_column):
        if extra:
            needed.setdefault(extra, "any")
    return needed

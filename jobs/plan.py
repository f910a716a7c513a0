"""Everything checked before any work starts: stages, output path, input files, columns, row ids.

`plan_job` (used by `validate` and `run` alike) raises one of our errors naming the place; a plan
that passes has its shards, their identity digests and the job's fingerprint. `run` reads the row
ids (duplicates, digests), most of a large input's planning, while Ray starts (jobs/runner.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from jobs import commit
from jobs.errors import InputDataError, OutputConflict, SpecError
from jobs.inputs import InputFile, Shard, list_input_files, local_root, plan_shards, read_schema
from jobs.reader import effective_id_column
from jobs.row_ids import plan_ids
from jobs.spec import JobSpec
from jobs.stages.base import ROW_ID, Stage
from jobs.stages.registry import stage_class

STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
                pa.types.is_null)


@dataclass
class JobPlan:
    """Everything known before Ray starts."""

    spec: JobSpec
    fs: pafs.FileSystem
    files: list[InputFile]
    schema: pa.Schema
    shards: list[Shard]
    stage_classes: list[type[Stage]]
    output: commit.OutputLocation

    def with_files(self, files: list[InputFile]) -> "JobPlan":
        """The same plan over a subset of the files (incremental runs); shards are renumbered, and
        their row ids are planned again by `with_row_ids`."""
        return replace(self, files=files, shards=plan_shards(files, self.spec.input.shard_rows))

    @property
    def row_ids_planned(self) -> bool:
        """Whether the shards' duplicate rows and identity digests are filled in (a digest is never empty)."""
        return all(shard.digest for shard in self.shards)

    def with_row_ids(self) -> "JobPlan":
        """The plan with its shards' duplicate rows and identity digests: reading every id is most of
        a large input's planning, so `run` does it while Ray starts."""
        if self.row_ids_planned:
            return self
        shards = plan_ids(self.fs, self.files, self.shards, self.id_column, self.spec.input.duplicate_ids)
        return replace(self, shards=shards)

    @property
    def rows_in(self) -> int:
        return sum(s.num_rows for s in self.shards)

    @property
    def id_column(self) -> str | None:
        return effective_id_column(self.spec.input.id_column, self.schema)

    def fingerprint(self) -> str:
        """Changes when the spec, the input files or the code change: staging is then redone. The
        run's date counts only through the paths it fills: a run killed before midnight and rerun
        after it, with no {date} in its paths, resumes."""
        if not self.row_ids_planned:
            raise RuntimeError("the plan's row ids are not planned yet (JobPlan.with_row_ids)")
        spec = self.spec.resolved()
        spec.pop("date", None)
        payload = {"spec": spec, "code": code_digest(self.stage_classes),
                   "files": [(f.path, f.size, f.mtime, f.num_rows) for f in self.files],
                   "shards": [s.digest for s in self.shards], "extra": self._extra_inputs()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


    def _extra_inputs(self) -> list:
        found = []
        for cls, params in zip(self.stage_classes, self.spec.stages):
            for path in cls.extra_inputs(params):
                info = os.stat(path)
                found.append((path, info.st_size, info.st_mtime_ns))
        return found


def plan_job(spec: JobSpec, check_engines: bool = True, row_ids: bool = True) -> JobPlan:
    """Validate the job end to end without Ray; raise SpecError/InputDataError/OutputConflict.
    `check_engines` also checks model stages against the engine installed here (see Stage.check_engine).
    Without `row_ids`, reading the ids (duplicates, digests) is left to `JobPlan.with_row_ids`."""
    classes = [stage_class(p.use, where=f"{spec.source}: stages[{i}].use") for i, p in enumerate(spec.stages)]
    for index, (cls, params) in enumerate(zip(classes, spec.stages)):
        try:
            cls.preflight(params)
            if check_engines:
                cls.check_engine(params)
        except SpecError as exc:
            raise SpecError(f"{spec.source}: stages[{index}] ({params.use}): {exc}") from None
    output = commit.OutputLocation.for_uri(spec.output.path)
    if not output.is_local():
        raise SpecError(f"{spec.source}: output.path: {spec.output.path}: only local or mounted paths can be "
                        f"published atomically; mount the bucket (e.g. s3fs, gcsfuse) and give that path")
    root = local_root(spec.input.path)
    check_no_overlap(spec, output, [root] if root else [])
    fs, files = list_input_files(spec.input.path)
    if isinstance(fs, pafs.LocalFileSystem):
        check_no_overlap(spec, output, [f.path for f in files])  # files reached through links too
    output.check_replaceable(spec.name)
    schema = read_schema(fs, files)
    check_columns(spec, schema, classes, files[0].path)
    plan = JobPlan(spec, fs, files, schema, plan_shards(files, spec.input.shard_rows), classes, output)
    return plan.with_row_ids() if row_ids else plan


def check_no_overlap(spec: JobSpec, output: commit.OutputLocation, inputs: list[str]) -> None:
    """The output may not be, contain or sit inside an input: publishing would replace the input,
    and the next run would read its own output."""
    out = os.path.realpath(output.path)
    for place in (os.path.realpath(p) for p in inputs):
        if out == place or _inside(out, place) or _inside(place, out):
            how = "is" if out == place else ("sits inside" if _inside(out, place) else "contains")
            raise OutputConflict(f"{spec.source}: output.path {output.path} {how} the input {place}; "
                                 f"write the output elsewhere; nothing was touched")


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def check_columns(spec: JobSpec, schema: pa.Schema, classes: list[type[Stage]], where: str) -> None:
    """Walk the stages in order: each stage's input columns must exist by then, with the right kind."""
    available = {f.name: f.type for f in schema}
    if spec.input.id_column and spec.input.id_column not in available:
        raise InputDataError(f"{where}: id_column {spec.input.id_column!r} not in the input; "
                             f"available: {', '.join(available)}")
    available[ROW_ID] = pa.string()
    for index, (cls, params) in enumerate(zip(classes, spec.stages)):
        for column, kind in cls.input_columns(params).items():
            if column not in available:
                shown = [name for name in available if name != ROW_ID]  # ours, not the user's
                raise InputDataError(f"{spec.source}: stages[{index}].{_key_naming(params, column)}: stage "
                                     f"{params.use!r} needs column {column!r}; available: {', '.join(shown)} "
                                     f"(input {where})")
            type_ = available[column]
            if kind == "string" and type_ is not None and not any(check(type_) for check in STRING_TYPES):
                raise InputDataError(f"{where}: column {column!r} is {type_}, stage {params.use!r} "
                                     f"(stages[{index}]) needs a string column")
        for column in cls.output_columns(params):
            available.setdefault(column, None)


def _key_naming(params, column: str) -> str:
    """The spec key whose value is `column` (a template naming it counts too): what the user wrote."""
    for name, value in params:
        if value == column:
            return name
    for name, value in params:
        if isinstance(value, str) and "{" + column + "}" in value:
            return name
    return "column"


def code_digest(stage_classes: list[type[Stage]]) -> str:
    """A digest of the project's source and of each stage's own module (a user's stage too):
    a code change redoes staging even when the version number did not move."""
    roots = [Path(__file__).resolve().parent]
    augment = importlib.util.find_spec("augment")
    if augment is not None and augment.origin:
        roots.append(Path(augment.origin).resolve().parent)
    paths = {p for root in roots for p in root.rglob("*.py")}
    for cls in stage_classes:
        module = importlib.import_module(cls.__module__)
        if getattr(module, "__file__", None):
            paths.add(Path(module.__file__).resolve())
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()

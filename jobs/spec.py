"""Job specs: YAML → validated JobSpec, with `--set` overrides and errors that name the key path."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jobs.errors import SpecError
from jobs.secrets import redact_uri
from jobs.stages.base import StageParams
from jobs.stages.registry import stage_class

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class InputSpec(BaseModel):
    """Where rows come from: a directory, glob, file or URI of Parquet files ({date} allowed)."""

    model_config = ConfigDict(extra="forbid")
    path: str
    id_column: str | None = None
    incremental: bool = False
    duplicate_ids: Literal["fail", "dead_letter"] = Field(
        "fail", description="a repeated id_column value: fail the job (exit 2) or dead-letter the later rows")
    shard_rows: int = Field(10_000, gt=0, description="rows per shard: the unit of work, commit and resume")


class OutputSpec(BaseModel):
    """Where the committed output goes ({name} and {date} allowed)."""

    model_config = ConfigDict(extra="forbid")
    path: str
    compression: str = "zstd"
    shared_filesystem: bool = Field(False, description="output is on storage every node mounts: write from any node")


class JobSpec(BaseModel):
    """A whole job. `stages` holds each stage's own validated params model."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    seed: int = 0
    max_dead_letter_fraction: float = Field(
        0.5, ge=0, le=1, description="more of the input than this in the dead letter fails the job, unpublished")
    input: InputSpec
    output: OutputSpec
    stages: list[Any] = Field(min_length=1)
    # Where the spec came from and the date it runs for; filled by load_spec, not by users.
    source: str = Field("<spec>", exclude=True)
    date: str = Field("", exclude=True)
    output_template: str = Field("", exclude=True)
    text: str = Field("", exclude=True)  # the YAML as the user wrote it, --set overrides after it

    @field_validator("stages")
    @classmethod
    def _stages_are_params(cls, stages: list[Any]) -> list[Any]:
        for stage in stages:
            if not isinstance(stage, StageParams):
                raise ValueError("stages must be validated by parse_spec")
        return stages

    def resolved(self) -> dict:
        """The spec as it runs (paths filled in), for the manifest."""
        data = self.model_dump(mode="json")
        data["stages"] = [s.model_dump(mode="json") for s in self.stages]
        data["date"] = self.date
        for section in ("input", "output"):
            data[section]["path"] = redact_uri(data[section]["path"])
        return data


def today_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def load_spec(path: str | Path, overrides: list[str] | None = None, date: str | None = None) -> JobSpec:
    """Read a YAML spec, apply `KEY=VALUE` overrides, validate it and fill {name}/{date} in paths."""
    return parse_spec(read_spec_mapping(path, overrides), source=spec_source(path), date=date)


def spec_source(path: str | Path) -> str:
    """How errors name a spec: its path, or <stdin>."""
    return "<stdin>" if str(path) == "-" else str(path)


def _stdin_text() -> str:
    """A spec piped in (`raybatch run -`): read it once per command (read_spec_mapping, then parse)."""
    return sys.stdin.read()


def is_train_spec(raw: dict) -> bool:
    """A spec with a `train:` section is a fine-tuning job (jobs/train/), not a data job."""
    return "train" in raw and "stages" not in raw


def read_spec_mapping(path: str | Path, overrides: list[str] | None = None) -> dict:
    """The YAML mapping of a spec file (`-`: standard input) with `KEY=VALUE` overrides applied;
    errors name the file."""
    source = spec_source(path)
    try:
        text = _stdin_text() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: spec file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot read spec: {exc}") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a spec is a YAML mapping with name, input, output and stages")
    for item in overrides or []:
        apply_override(raw, item, source)
    return SpecMapping(raw, text=text + "".join(f"\n# --set {item}" for item in overrides or []))


def _without_secrets(text: str) -> str:
    """The spec's text for the manifest and the report: URI credentials and anything that reads as
    an API key or token (in a comment, say) masked."""
    if not text:
        return text
    from jobs.hygiene import pii

    text = redact_uri(text)
    return pii.redact(text, pii.Detector(["secret"]).find(text), "mask")


class SpecMapping(dict):
    """A spec's mapping that remembers the text it was read from, for the report."""

    def __init__(self, mapping: dict, text: str = ""):
        super().__init__(mapping)
        self.text = text


def parse_spec(raw: dict, source: str = "<spec>", date: str | None = None) -> JobSpec:
    """Validate a spec mapping; every error message starts with `source: key.path:`."""
    date = date or today_utc()
    check_date(date)
    text = getattr(raw, "text", "")
    raw = dict(raw)
    raw_stages = raw.pop("stages", None)
    stages: list[StageParams] = []
    if isinstance(raw_stages, list):
        for index, item in enumerate(raw_stages):
            if isinstance(item, dict) and isinstance(item.get("model"), str):
                # A model can be a dated output of `raybatch train`: out/sft/{date}.
                item = {**item, "model": fill_placeholders(item["model"], str(raw.get("name", "")), date)}
            stages.append(_parse_stage(item, index, source))
    try:
        spec = JobSpec.model_validate({**raw, "stages": stages if raw_stages is not None else None,
                                       "source": source, "date": date})
    except ValidationError as exc:
        if raw_stages is not None and not isinstance(raw_stages, list):
            raise SpecError(f"{source}: stages: must be a list of stages") from None
        raise SpecError(first_error(exc, source, model=JobSpec)) from None
    spec.output_template = spec.output.path
    spec.text = _without_secrets(text)
    for field in (spec.input, spec.output):
        field.path = fill_placeholders(field.path, spec.name, date)
    return spec


def check_date(date: str) -> None:
    """A real calendar date, YYYY-MM-DD: it becomes a folder name."""
    try:
        valid = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)) and dt.date.fromisoformat(date).isoformat() == date
    except ValueError:
        valid = False
    if not valid:
        raise SpecError(f"--date {date!r}: not a calendar date; expected YYYY-MM-DD, like {today_utc()}")


def load_yaml(text: str) -> Any:
    """safe_load, refusing documents whose aliases expand past MAX_NODES nodes (an alias bomb
    would otherwise take minutes and gigabytes to validate)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise SpecError(f"YAML aliases expand to more than {MAX_NODES:,} nodes; a spec needs far fewer")
        return loader.construct_document(node)
    except RecursionError:
        raise SpecError("YAML nested too deeply for a spec") from None
    finally:
        loader.dispose()


MAX_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds once every alias is expanded, counted without expanding it."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once instead of looping
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = min(total, MAX_NODES + 1)
    return memo[key]


def fill_placeholders(path: str, name: str, date: str) -> str:
    """Fill {name} and {date}; plain replace so other braces in a path are left alone."""
    return path.replace("{name}", name).replace("{date}", date)


def _parse_stage(item: Any, index: int, source: str) -> StageParams:
    where = f"{source}: stages[{index}]"
    if not isinstance(item, dict) or "use" not in item:
        raise SpecError(f"{where}: each stage is a mapping with a 'use' key naming the stage")
    if not isinstance(item["use"], str):
        raise SpecError(f"{where}.use: must be a stage name (a string), not a {type(item['use']).__name__}")
    cls = stage_class(item["use"], where=f"{where}.use")
    try:
        return cls.Params.model_validate(item)
    except ValidationError as exc:
        raise SpecError(first_error(exc, source, prefix=f"stages[{index}]", model=cls.Params)) from None


def first_error(exc: ValidationError, source: str, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line for the first validation error: `file: key.path: message` (all of them if few), in
    our words, not pydantic's; an unknown key gets the nearest known one of `model` at that place."""
    lines = []
    for error in exc.errors()[:3]:
        loc = prefix
        for part in error["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(str(error["loc"][-1]), _keys_at(model, error["loc"]))
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "too_short":
            message = "must not be empty"
        message = message.replace("Input should be", "must be").replace("Value error, ", "")
        for words, symbol in (("greater than or equal to", ">="), ("greater than", ">"),
                              ("less than or equal to", "<="), ("less than", "<")):
            message = message.replace(words, symbol)
        lines.append(f"{loc or '(top level)'}: {message}")
    return f"{source}: " + "; ".join(lines)


def _suggestion(word: str, known: list[str]) -> str:
    import difflib

    if not known:
        return ""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _keys_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys a user may write where `loc` (a pydantic error location) ends."""
    current = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [name for name, field in current.model_fields.items() if not field.exclude]


def _model_in(annotation) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def apply_override(raw: dict, item: str, source: str = "--set") -> None:
    """Apply one `a.b.0.c=value` override in place; the value is parsed as YAML (1 → int, x → str)."""
    if "=" not in item:
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. output.path=/tmp/out")
    key, _, text = item.partition("=")
    try:
        value = load_yaml(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    except SpecError as exc:
        raise SpecError(f"--set {key.strip()}: {exc}") from None
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(f"--set {key}: {where}: no list item {part} (the list has {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise SpecError(f"--set {key}: {where}: cannot set a key inside a {type(node).__name__}")

"""Fine-tuning export, in two steps that keep the job's exactly-once commit intact:

1. The `finetune_export` stage adds the columns fine-tuning libraries read — `prompt` and
   `completion` (strings; TRL's prompt-completion format) and `messages` (a list of
   {role, content}; the chat format) — so the committed Parquet already loads as a fine-tuning set.
   Input: `column`, optional `label_column` and any column the templates name. Output: `prompt`,
   `completion`, `messages` (those asked for in `formats`).
2. `raybatch export OUTPUT|SPEC` reads a committed output (only the files its manifest
   lists, only once `_SUCCESS` exists) and writes one Parquet and one JSONL file per split,
   holding the fine-tuning columns, label, split, row_id and lineage, into a sibling folder,
   atomically. A stage cannot do this step: output files are the commit's to write.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from string import Formatter
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator

from jobs.errors import RaybatchError
from jobs.stages.base import Stage, StageParams, corpus_columns, set_column

FORMATS = ("prompt_completion", "messages")
MESSAGE_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
LINEAGE = ("parent_id", "aug_op", "aug_seed", "is_augmented", "edit_rate")


class FinetuneExportParams(StageParams):
    column: str = Field(description="the text the model sees")
    label_column: str | None = None
    split_column: str | None = Field(None, description="kept, and the export command writes one file per split")
    labels: dict[str, str] | None = Field(None, description="label value -> completion text, e.g. {0: negative}")
    prompt: str = Field("{text}", description="template: {text}, {label}, {label_name} or any column name")
    completion: str = Field("{label_name}", description="template, as prompt")
    system: str | None = Field(None, description="system message opening each chat")
    # Trainers of the prompt-completion format (TRL's) concatenate the two as they are: without a
    # separator "…positive or negative?" and "negative" train as "…negative?negative".
    separator: str = Field(" ", description="put before a completion the prompt does not already end in "
                                            "whitespace for (prompt_completion only; '' for none)")
    formats: list[Literal["prompt_completion", "messages"]] = Field(default_factory=lambda: list(FORMATS),
                                                                    min_length=1)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys(cls, value):
        # YAML reads `{0: negative}` with int keys; labels are matched by their text.
        if isinstance(value, list):
            return {str(i): str(v) for i, v in enumerate(value)}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _templates(self):
        for name in ("prompt", "completion"):
            fields = template_fields(getattr(self, name))
            if ("label" in fields or "label_name" in fields) and not self.label_column:
                raise ValueError(f"{name} uses the label; set label_column")
        return self


def template_fields(template: str) -> set[str]:
    try:
        return {field for _, field, _, _ in Formatter().parse(template) if field}
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None


class FinetuneExportStage(Stage):
    """Adds prompt/completion and chat messages; see the module docstring for columns."""

    name = "finetune_export"
    Params = FinetuneExportParams

    @classmethod
    def input_columns(cls, params: FinetuneExportParams) -> dict[str, str]:
        needed = corpus_columns(params.column, params.label_column, params.split_column)
        for field in template_fields(params.prompt) | template_fields(params.completion):
            if field not in ("text", "label", "label_name"):
                needed.setdefault(field, "any")
        return needed

    @classmethod
    def output_columns(cls, params: FinetuneExportParams) -> list[str]:
        out = ["prompt", "completion"] if "prompt_completion" in params.formats else []
        return out + (["messages"] if "messages" in params.formats else [])

    def __call__(self, batch: pa.Table) -> pa.Table:
        p = self.params
        prompts, completions = format_pairs(batch, p)
        if "prompt_completion" in p.formats:
            joined = [separated(prompt, completion, p.separator) for prompt, completion in zip(prompts, completions)]
            batch = set_column(batch, "prompt", pa.array(prompts, pa.string()))
            batch = set_column(batch, "completion", pa.array(joined, pa.string()))
        if "messages" in p.formats:
            batch = set_column(batch, "messages", pa.array(
                [chat(prompt, completion, p.system) for prompt, completion in zip(prompts, completions)],
                MESSAGE_TYPE))
        self.count("examples", batch.num_rows)
        return batch


def format_pairs(batch: pa.Table, params: FinetuneExportParams) -> tuple[list[str], list[str]]:
    """(prompt, completion) per row from the templates; a label missing from `labels` is used as is."""
    wanted = template_fields(params.prompt) | template_fields(params.completion)
    columns = {name: batch[name].to_pylist() for name in wanted if name in batch.column_names}
    texts = batch[params.column].to_pylist()
    labels = batch[params.label_column].to_pylist() if params.label_column else [None] * batch.num_rows
    names = params.labels or {}
    prompts, completions = [], []
    for i, (text, label) in enumerate(zip(texts, labels)):
        values = {name: column[i] for name, column in columns.items()}
        values.update(text=text if text is not None else "", label="" if label is None else label,
                      label_name=names.get(str(label), "" if label is None else str(label)))
        prompts.append(params.prompt.format_map(values))
        completions.append(params.completion.format_map(values))
    return prompts, completions


def separated(prompt: str, completion: str, separator: str) -> str:
    """The completion as a trainer appends it to the prompt: after `separator` unless either side
    already has whitespace at the join (or there is nothing to join)."""
    if not prompt or not completion or prompt[-1].isspace() or completion[0].isspace():
        return completion
    return separator + completion


def chat(prompt: str, completion: str, system: str | None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


# ---- the export command --------------------------------------------------------------------------


class ExportError(RaybatchError):
    exit_code = 2


def committed_table(output: Path) -> tuple[pa.Table, dict]:
    """The committed rows of `output`, from the files its manifest lists, in manifest order."""
    if not (output / "_SUCCESS").exists():
        raise ExportError(f"{output}: no committed output here (_SUCCESS missing); run the job first")
    manifest = json.loads((output / "_manifest.json").read_text(encoding="utf-8"))
    tables = [pq.read_table(output / f["path"]) for f in manifest["files"]]
    if not tables:
        raise ExportError(f"{output}: the output holds no rows to export")
    return pa.concat_tables(tables, promote_options="permissive"), manifest


def export_params(manifest: dict) -> FinetuneExportParams:
    """The finetune_export stage's params from the manifest's spec (the last one, if several)."""
    found = [s for s in manifest.get("spec", {}).get("stages", []) if s.get("use") == FinetuneExportStage.name]
    if not found:
        raise ExportError("the job has no finetune_export stage; add one after augment "
                          "(see jobs/specs/augment_corpus.yaml)")
    return FinetuneExportParams.model_validate(found[-1])


def write_export(output: str | Path, to: str | Path | None = None, files: tuple[str, ...] = ("parquet", "jsonl"),
                 overwrite: bool = False) -> dict:
    """Write `<split>.parquet` / `<split>.jsonl` (or `data.*` without a split column) and
    `_export.json` into `to` (default: `<output>-finetune`), replacing it atomically."""
    output = Path(output)
    target = Path(to) if to else output.with_name(output.name + "-finetune")
    if target.exists() and not overwrite:
        raise ExportError(f"{target}: already exists; pass --overwrite to replace it")
    table, manifest = committed_table(output)
    params = export_params(manifest)
    keep = [c for c in ("row_id", "prompt", "completion", "messages", params.label_column, params.split_column,
                        *LINEAGE) if c and c in table.column_names]
    table = table.select(list(dict.fromkeys(keep)))
    if params.split_column:
        splits = table[params.split_column].to_pylist()
        groups = {name: [i for i, s in enumerate(splits) if s == name] for name in dict.fromkeys(splits)}
        parts = {_file_stem(name): table.take(pa.array(rows, pa.int64())) for name, rows in groups.items()}
    else:
        parts = {"data": table}
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        for stem, part in parts.items():
            if "parquet" in files:
                pq.write_table(part, tmp / f"{stem}.parquet")
            if "jsonl" in files:
                _write_jsonl(part, tmp / f"{stem}.jsonl")
        summary = {"source": str(output), "source_rows_out": manifest.get("rows_out"),
                   "splits": {stem: part.num_rows for stem, part in parts.items()},
                   "columns": table.column_names, "files": sorted(os.listdir(tmp))}
        (tmp / "_export.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**summary, "path": str(target)}


def _file_stem(split) -> str:
    name = "none" if split is None else str(split)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "none"


def _write_jsonl(table: pa.Table, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for batch in table.to_batches(max_chunksize=10_000):
            for row in batch.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False))
                handle.write("\n")

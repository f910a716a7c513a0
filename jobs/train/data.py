"""The rows a fine-tuning job reads: an export folder (`raybatch export`: one Parquet file per
split and `_export.json`) or any committed raybatch output (the files its manifest lists, split by a
column). Checked before Ray starts: the folder is committed, the splits exist, the columns fit the task."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.errors import InputDataError
from jobs.train.spec import TrainSection

EXPORT_RECORD = "_export.json"


@dataclass
class TrainData:
    path: str
    record: str  # the file that vouches for the rows: the output's _manifest.json or the export's record
    record_sha256: str
    files: dict[str, list[str]]  # split -> Parquet files (a committed output: every file, split by column)
    split_column: str | None = None
    rows: dict[str, int] = field(default_factory=dict)

    def table(self, split: str, columns: list[str]) -> pa.Table:
        """One split's rows, only `columns`."""
        read = columns + ([self.split_column] if self.split_column and self.split_column not in columns else [])
        table = pa.concat_tables([pq.read_table(path, columns=read) for path in self.files[split]],
                                 promote_options="permissive")
        if self.split_column:
            table = table.filter(pc.equal(table[self.split_column], split)).select(columns)
        return table


def needed_columns(section: TrainSection) -> list[str]:
    if section.task == "classify":
        return [section.text_column, section.label_column]
    return ["prompt", "completion"] if section.format == "prompt_completion" else ["messages"]


def locate(section: TrainSection) -> TrainData:
    """Find the data, its splits and their row counts; one-line errors that name the key."""
    folder = Path(section.data)
    if not folder.is_dir():
        raise InputDataError(f"train.data: {folder}: no such folder (run the job, or `raybatch export`, first)")
    if (folder / EXPORT_RECORD).is_file():
        record = folder / EXPORT_RECORD
        summary = json.loads(record.read_text(encoding="utf-8"))
        files = {Path(name).stem: [str(folder / name)] for name in summary.get("files", []) if name.endswith(".parquet")}
        data = TrainData(str(folder), str(record), _sha256(record), files)
        data.rows = {split: sum(pq.read_metadata(p).num_rows for p in paths) for split, paths in files.items()}
    elif (folder / "_SUCCESS").is_file() and (folder / "_manifest.json").is_file():
        record = folder / "_manifest.json"
        manifest = json.loads(record.read_text(encoding="utf-8"))
        paths = [str(folder / f["path"]) for f in manifest.get("files", [])]
        if not paths:
            raise InputDataError(f"train.data: {folder}: the output holds no rows")
        if section.split_column not in pq.read_schema(paths[0]).names:
            raise InputDataError(f"train.split_column: {folder} has no column {section.split_column!r}; "
                                 f"columns: {', '.join(_columns(paths[0]))}")
        counts = pa.concat_tables([pq.read_table(p, columns=[section.split_column]) for p in paths])
        values = counts[section.split_column].value_counts().to_pylist()
        data = TrainData(str(folder), str(record), _sha256(record), {}, section.split_column)
        data.rows = {str(v["values"]): v["counts"] for v in values if v["values"] is not None}
        data.files = {split: paths for split in data.rows}
    else:
        raise InputDataError(f"train.data: {folder}: neither a committed raybatch output (_SUCCESS) nor an "
                             f"export ({EXPORT_RECORD}); run the job, or `raybatch export`, first")
    _check(data, section)
    return data


def _check(data: TrainData, section: TrainSection) -> None:
    splits = ", ".join(sorted(data.rows)) or "none"
    for key, split in (("train_split", section.train_split), ("eval_split", section.eval_split)):
        if split is not None and not data.rows.get(split):
            raise InputDataError(f"train.{key}: no rows of split {split!r} in {data.path}; splits: {splits}")
    names = _columns(data.files[section.train_split][0])
    for column in needed_columns(section):
        if column not in names:
            what = (f"task {section.task}, format {section.format}" if section.task == "sft" else "task classify")
            raise InputDataError(f"train.data: {data.path} has no column {column!r}, which {what} needs; "
                                 f"columns: {', '.join(names)}")
    if section.task == "sft" and section.format == "messages":
        type_ = pq.read_schema(data.files[section.train_split][0]).field("messages").type
        if not (pa.types.is_list(type_) and pa.types.is_struct(type_.value_type)
                and {"role", "content"} <= {f.name for f in type_.value_type}):
            raise InputDataError(f"train.format: messages: column 'messages' of {data.path} is {type_}, not a "
                                 f"list of {{role, content}}")


def _columns(path: str) -> list[str]:
    return [n for n in pq.read_schema(path).names if not n.startswith("__")]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

"""Redo one augmented copy from a committed output, from its lineage alone: the parent's text,
the op(s) named in `aug_op`, and `aug_seed`. `raybatch replay OUTPUT ROW_ID` prints it; the
function is `replay_row`.

The parent's text is the augment stage's input column as that stage saw it: the parent row in
the output when the job kept originals, else the input row run through the rule stages before
augment (clean, langid, redact; dedup only filters). A parent that went through a model stage
first must be given (`parent_text=`), since redoing a model's output is not replay.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.errors import InputDataError

_COPY_ID = re.compile(r"~aug(?:(\d+)\.)?(\d+)$")  # <parent>~aug<copy>, or ~aug<stage>.<copy>


@dataclass
class Replayed:
    row_id: str
    parent_id: str
    stage: int  # the augment stage's index in the spec
    op: str
    seed: int
    parent_text: str
    parent_from: str  # "output", "input" or "given"
    written: str | None  # the copy's text in the output
    replayed: str | None  # the copy redone now

    @property
    def matches(self) -> bool:
        return self.written == self.replayed

    def to_dict(self) -> dict:
        return {**asdict(self), "matches": self.matches}


def replay_row(output: str | Path, row_id: str, parent_text: str | None = None) -> Replayed:
    """Redo the copy `row_id` of the committed output and say whether it is what the run wrote."""
    from augment.augmenter import Augmenter
    from augment.params import AugmentParams

    output = Path(output)
    manifest = _manifest(output)
    copy = _find(output, manifest, row_id)
    if copy is None:
        raise InputDataError(f"{output}: no row {row_id!r} in its data files")
    if not copy.get("is_augmented") or copy.get("aug_seed") is None:
        raise InputDataError(f"{output}: row {row_id!r} is not a copy an augment stage made (is_augmented is false)")
    stages = manifest["spec"]["stages"]
    index, copy_number = _stage_and_copy(row_id, stages)
    params = AugmentParams.model_validate(stages[index])
    _check_column_kept(stages, index, params.column)
    augmenter = Augmenter(params, seed=manifest["seed"])
    parent_id = str(copy["parent_id"])
    label, op_specs = augmenter.copy_ops(parent_id, copy_number)  # the op(s) exactly as the stage chose them
    if label != copy["aug_op"]:
        raise InputDataError(f"row {row_id!r}: aug_op {copy['aug_op']!r} is not the op this spec gives its copy "
                             f"{copy_number} ({label!r}); was the output made with this spec?")
    source = "given"
    if parent_text is None:
        parent_text, source = _parent_text(output, manifest, parent_id, index, params.column)
    seed = int(copy["aug_seed"])  # a float from some readers: exact, the seed has 53 bits
    replayed = augmenter.replay(parent_text, seed, op_specs)
    return Replayed(row_id, parent_id, index, copy["aug_op"], seed, parent_text, source, copy[params.column], replayed)


def _manifest(output: Path) -> dict:
    if not (output / "_SUCCESS").exists():
        raise InputDataError(f"{output}: not a committed raybatch output (no _SUCCESS)")
    return json.loads((output / "_manifest.json").read_text(encoding="utf-8"))


def _find(output: Path, manifest: dict, row_id: str) -> dict | None:
    """The output row with this id: each file's ids first, the whole row only where it is."""
    for entry in manifest["files"]:
        path = output / entry["path"]
        ids = pq.read_table(path, columns=["row_id"])["row_id"]
        hits = pc.indices_nonzero(pc.equal(ids, row_id))
        if len(hits):
            return pq.read_table(path).slice(hits[0].as_py(), 1).to_pylist()[0]
    return None


def _stage_and_copy(row_id: str, stages: list[dict]) -> tuple[int, int]:
    """Which augment stage made the copy, and its copy number, from `<parent>~aug[<stage>.]<copy>`."""
    found = _COPY_ID.search(row_id)
    if not found:
        raise InputDataError(f"row {row_id!r}: not an augmented copy's id (<parent>~aug<copy>)")
    if found.group(1) is not None:
        index = int(found.group(1))
    else:
        augments = [i for i, stage in enumerate(stages) if stage.get("use") == "augment"]
        if not augments:
            raise InputDataError(f"row {row_id!r}: the job has no augment stage")
        index = augments[0]
    if index >= len(stages) or stages[index].get("use") != "augment":
        raise InputDataError(f"row {row_id!r}: stage {index} of the job is not an augment stage")
    return index, int(found.group(2))


def _check_column_kept(stages: list[dict], index: int, column: str) -> None:
    """A later stage that rewrote the augmented column changed the copy after augment made it."""
    from jobs.stages.registry import stage_class

    for later, params in enumerate(stages[index + 1:], start=index + 1):
        cls = stage_class(params["use"])
        if column in cls.output_columns(cls.Params.model_validate(params)):
            raise InputDataError(f"stage {later} ({params['use']}) rewrote column {column!r} after augment: "
                                 f"the output no longer holds the copy as augment made it")


def _parent_text(output: Path, manifest: dict, parent_id: str, index: int, column: str) -> tuple[str, str]:
    """The augment stage's input text of the parent: from the output, else redone from the input."""
    parent = _find(output, manifest, parent_id)
    if parent is not None and not parent.get("is_augmented") and parent.get(column) is not None:
        return parent[column], "output"
    row = _input_row(manifest, parent_id)
    table = pa.Table.from_pylist([{**row, "row_id": parent_id}])
    table = _through_earlier_stages(table, manifest, index)
    table = table.filter(pc.equal(table["row_id"], parent_id))  # an earlier augment adds copies
    value = table[column][0].as_py() if column in table.column_names and table.num_rows else None
    if value is None:
        raise InputDataError(f"row {parent_id!r}: its column {column!r} is null before the augment stage")
    return value, "input"


def _input_row(manifest: dict, parent_id: str) -> dict:
    """The parent's input row: by its id column, or by `<file name>:<row index>` (jobs/row_ids.py)."""
    from jobs.inputs import resolve_filesystem

    from jobs.reader import effective_id_column

    spec = manifest["spec"]["input"]
    fs, _ = resolve_filesystem(spec["path"])
    name, _, position = parent_id.rpartition(":")
    for path in manifest.get("input_files", []):
        table = pq.read_table(path, filesystem=fs)
        id_column = effective_id_column(spec.get("id_column"), table.schema)
        if id_column:  # ids as the reader makes them: str() of the value
            for i, value in enumerate(table[id_column].to_pylist()):
                if value is not None and str(value) == parent_id:
                    return table.slice(i, 1).to_pylist()[0]
        elif position.isdigit() and (path == name or path.endswith("/" + name)):
            return table.slice(int(position), 1).to_pylist()[0]
    raise InputDataError(f"row {parent_id!r}: not found in the job's input files; the parent is not in the "
                         f"output either (keep_original: false); give its text with --parent-text")


def _through_earlier_stages(table: pa.Table, manifest: dict, index: int) -> pa.Table:
    from jobs.stages.base import StageContext
    from jobs.stages.registry import stage_class

    for i, params_dict in enumerate(manifest["spec"]["stages"][:index]):
        cls = stage_class(params_dict["use"])
        params = cls.Params.model_validate(params_dict)
        if cls.whole_input:  # dedup keeps or drops rows; it does not change them
            continue
        if cls.runs_in_actors(params):
            raise InputDataError(f"stage {i} ({params.use}) ran a model before augment: give the parent's "
                                 f"text with --parent-text")
        table = cls(params, StageContext(manifest["name"], manifest["seed"], i, params.use))(table)
    return table

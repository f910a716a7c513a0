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

_COPY_ID = re.compile(r"~aug(?:(\d+)\.)?\d+$")  # <parent>~aug<copy>, or ~aug<stage>.<copy>


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
    index = _stage_index(row_id, stages)
    params = AugmentParams.model_validate(stages[index])
    names = str(copy["aug_op"]).split("+")
    ops = [next(op for op in params.ops if op.op == name) for name in names]
    parent_id = str(copy["parent_id"])
    source = "given"
    if parent_text is None:
        parent_text, source = _parent_text(output, manifest, parent_id, index, params.column)
    seed = int(copy["aug_seed"])  # a float from some readers: exact, the seed has 53 bits
    replayed = Augmenter(params, seed=manifest["seed"]).replay(parent_text, seed, ops)
    return Replayed(row_id, parent_id, index, copy["aug_op"], seed, parent_text, source, copy[params.column], replayed)


def _manifest(output: Path) -> dict:
    if not (output / "_SUCCESS").exists():
        raise InputDataError(f"{output}: not a committed raybatch output (no _SUCCESS)")
    return json.loads((output / "_manifest.json").read_text(encoding="utf-8"))


def _find(output: Path, manifest: dict, row_id: str) -> dict | None:
    for entry in manifest["files"]:
        table = pq.read_table(output / entry["path"])
        hits = table.filter(pc.equal(table["row_id"], row_id))
        if hits.num_rows:
            return hits.to_pylist()[0]
    return None


def _stage_index(row_id: str, stages: list[dict]) -> int:
    found = _COPY_ID.search(row_id)
    if found and found.group(1) is not None:
        return int(found.group(1))
    augments = [i for i, stage in enumerate(stages) if stage.get("use") == "augment"]
    if not augments:
        raise InputDataError(f"row {row_id!r}: the job has no augment stage")
    return augments[0]


def _parent_text(output: Path, manifest: dict, parent_id: str, index: int, column: str) -> tuple[str, str]:
    """The augment stage's input text of the parent: from the output, else redone from the input."""
    parent = _find(output, manifest, parent_id)
    if parent is not None and not parent.get("is_augmented") and parent.get(column) is not None:
        return parent[column], "output"
    row = _input_row(manifest, parent_id)
    table = pa.Table.from_pylist([{**row, "row_id": parent_id}])
    table = _through_earlier_stages(table, manifest, index)
    value = table[column][0].as_py() if column in table.column_names else None
    if value is None:
        raise InputDataError(f"row {parent_id!r}: its column {column!r} is null before the augment stage")
    return value, "input"


def _input_row(manifest: dict, parent_id: str) -> dict:
    """The parent's input row: by its id column, or by `<file name>:<row index>` (jobs/row_ids.py)."""
    from jobs.inputs import resolve_filesystem

    spec = manifest["spec"]["input"]
    fs, _ = resolve_filesystem(spec["path"])
    id_column = spec.get("id_column")
    name, _, position = parent_id.rpartition(":")
    for path in manifest.get("input_files", []):
        if id_column:
            table = pq.read_table(path, filesystem=fs)
            hits = table.filter(pc.equal(pc.cast(table[id_column], pa.string()), parent_id))
            if hits.num_rows:
                return hits.to_pylist()[0]
        elif position.isdigit() and (path == name or path.endswith("/" + name)):
            return pq.read_table(path, filesystem=fs).slice(int(position), 1).to_pylist()[0]
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

"""The redact stage: finds personal data and secrets with validated patterns (checksums where the
kind has one) and masks, pseudonymizes or drops them (jobs/hygiene/pii.py).

Input: `column` (string). Output: `output_column` (default `<column>_redacted`) and
`entities_column` (default `pii_entities`, the kinds found, in order). `mode: drop_row` sends rows
with any finding to `_filtered/` (filter_reason `pii`) instead. Counts per kind go to the manifest,
never a value. The dead letter and `_filtered/` keep a row's input columns: those are masked too,
so no value this stage would find leaves the job outside its output column.
"""

from __future__ import annotations

import os
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator

from jobs.errors import SpecError
from jobs.hygiene import pii
from jobs.stages.base import ROW_ID, Stage, StageContext, StageParams, mark_filtered, set_column

SALT_ENV = "RAYBATCH_REDACT_SALT"
# Columns of the dead letter and _filtered/ that hold the runner's words, not the user's text.
_RUNNER_COLUMNS = {ROW_ID, "stage", "error_type", "filter_stage", "filter_reason", "duplicate_of"}


class RedactParams(StageParams):
    column: str
    output_column: str | None = Field(None, description="default: <column>_redacted")
    entities_column: str = "pii_entities"
    mode: Literal["mask", "pseudonymize", "drop_row"] = "mask"
    entities: list[str] = Field(list(pii.KINDS), min_length=1, description="the kinds to find")
    allow: list[str] = Field([], description="values that pass as they are (a support address, a test card)")
    salt_env: str = Field(SALT_ENV, description="pseudonymize: the environment variable holding the salt")

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in pii.KINDS]
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}; known: {', '.join(pii.KINDS)}")
        return value

    @property
    def target(self) -> str:
        return self.output_column or f"{self.column}_redacted"


class RedactStage(Stage):
    """Redact a text column; see the module docstring for columns."""

    name = "redact"
    Params = RedactParams

    def __init__(self, params: RedactParams, context: StageContext):
        super().__init__(params, context)
        self.detector = pii.Detector(params.entities, params.allow)
        self.salt = _salt(params) if params.mode == "pseudonymize" else b""

    @classmethod
    def input_columns(cls, params: RedactParams) -> dict[str, str]:
        return {params.column: "string"}

    @classmethod
    def output_columns(cls, params: RedactParams) -> list[str]:
        return [params.target, params.entities_column]

    @classmethod
    def preflight(cls, params: RedactParams) -> None:
        if params.mode == "pseudonymize":
            _salt(params)

    @classmethod
    def scrubber(cls, params: RedactParams):
        return Scrubber(params.entities, params.allow)

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch[self.params.column].to_pylist()
        redacted, kinds, dropped = [], [], {}
        mode = "mask" if self.params.mode == "drop_row" else self.params.mode
        for index, text in enumerate(texts):
            found = self.detector.find(text) if text else []
            kinds.append([f.kind for f in found])
            for f in found:
                self.count(f"pii_{f.kind}")
            if found:
                self.count("rows_with_pii")
                if self.params.mode == "drop_row":
                    dropped[index] = ("pii", None)
            redacted.append(pii.redact(text, found, mode, self.salt) if found else text)
        batch = set_column(batch, self.params.target, pa.array(redacted, pa.string()))
        batch = set_column(batch, self.params.entities_column, pa.array(kinds, pa.list_(pa.string())))
        return mark_filtered(batch, dropped)


class Scrubber:
    """Masks every text column of a table of dead-letter or filtered rows (picklable: it travels to
    Ray's write tasks)."""

    def __init__(self, entities: list[str], allow: list[str]):
        self.entities, self.allow = list(entities), list(allow)
        self._detector = None

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._detector is None:
            self._detector = pii.Detector(self.entities, self.allow)
        for name in table.column_names:
            type_ = table.schema.field(name).type
            if name in _RUNNER_COLUMNS or not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
                continue
            values = [pii.redact(v, self._detector.find(v), "mask") if v else v for v in table[name].to_pylist()]
            table = set_column(table, name, pa.array(values, type_))
        return table

    def __getstate__(self):
        return {"entities": self.entities, "allow": self.allow, "_detector": None}


def _salt(params: RedactParams) -> bytes:
    value = os.environ.get(params.salt_env, "")
    if len(value) < 16:
        raise SpecError(f"mode: pseudonymize needs a secret salt of at least 16 characters in the environment "
                        f"variable {params.salt_env} (it is never written to the output or the manifest)")
    return value.encode()

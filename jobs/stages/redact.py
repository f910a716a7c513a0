"""The redact stage: finds personal data and secrets with validated patterns (checksums where the
kind has one) and masks, pseudonymizes or drops them (jobs/hygiene/pii.py).

Input: `column` (string). Output: `output_column` (default `<column>_redacted`) and
`entities_column` (default `pii_entities`, the kinds found, in order). `mode: drop_row` sends rows
with any finding to `_filtered/` (filter_reason `pii`) instead. Counts per kind go to the manifest,
never a value. The dead letter and `_filtered/` keep a row's input columns: those are masked too,
so no value this stage would find leaves the job outside its output column.

Names and addresses follow no pattern: with `model:` a token-classification (NER) model finds them
too (jobs/hygiene/ner.py), in actors like the model stages, and its kinds (`model_labels`) are
masked, pseudonymized or dropped the same way. Where the two overlap, a pattern finding keeps its
span and the entity keeps the rest.
"""

from __future__ import annotations

import os
import re
import time
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator

from jobs.errors import SpecError
from jobs.hygiene import ner, pii
from jobs.stages.base import ROW_ID, Stage, StageContext, StageParams, mark_filtered, set_column

SALT_ENV = "RAYBATCH_REDACT_SALT"
_MODELS: dict[str, ner.EntityModel] = {}  # loaded entity models of this process, by their settings
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
    model: str | None = Field(None, description="a token-classification (NER) model: a local folder or a "
                              "cached hub id; finds names and addresses")
    model_labels: dict[str, str] = Field(default_factory=lambda: dict(ner.DEFAULT_LABELS),
                                         description="the model's entity names -> the kinds reported")
    model_min_score: float = Field(0.5, ge=0, le=1, description="entities the model is less sure of are ignored")
    batch_size: int = Field(32, ge=1, description="model windows per forward pass")
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    @field_validator("model_labels")
    @classmethod
    def _kind_names(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one label, e.g. {PER: person}")
        bad = [kind for kind in value.values() if not re.fullmatch(r"[a-z][a-z0-9_]*", kind)]
        if bad:
            raise ValueError(f"kind {bad[0]!r}: use lower-case letters, digits and _ (it names the placeholder)")
        taken = [kind for kind in value.values() if kind in pii.KINDS]
        if taken:
            raise ValueError(f"kind {taken[0]!r} is a kind the patterns find; name the model's kinds apart "
                             f"(person, location, address, ...)")
        if any(label.upper() == "O" for label in value):
            raise ValueError("label 'O' means outside any entity: it cannot be a kind")
        return value

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
        started = time.perf_counter()
        try:
            self.entity_model = _entity_model(params) if params.model else None
        except SpecError as exc:  # a model without the labels asked for, or without a fast tokenizer
            raise SpecError(f"stages[{context.stage_index}] (redact): {exc}") from None
        # Counted with this actor's first block: the summary's "model load".
        self._load_seconds = time.perf_counter() - started if params.model else None

    @classmethod
    def runs_in_actors(cls, params: RedactParams) -> bool:
        return params.model is not None  # the model loads once per actor

    def info(self) -> dict[str, str]:
        if not self.params.model:
            return {}
        config = self.entity_model.model.config
        return {"model": self.params.model,
                "revision": str(getattr(config, "_commit_hash", None) or self.params.revision or "local")}

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
        if params.model:
            from jobs.engine import check_model_files

            config = check_model_files(params.model, params.revision, params.trust_remote_code, params.allow_pickle)
            names = {label.partition("-")[2] or label for label in (config or {}).get("id2label", {}).values()}
            if config is not None and not {name.upper() for name in names} & {k.upper() for k in params.model_labels}:
                raise SpecError(f"model: {params.model}: none of its labels ({', '.join(sorted(names))}) is one of "
                                f"model_labels ({', '.join(params.model_labels)})")

    @classmethod
    def scrubber(cls, params: RedactParams):
        return Scrubber(params.entities, params.allow, params.model_dump(mode="json") if params.model else None)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._load_seconds is not None:
            self.add_metrics({"model_load_seconds": self._load_seconds, "model_loads": 1})
            self._load_seconds = None
        texts = batch[self.params.column].to_pylist()
        redacted, kinds, dropped = [], [], {}
        mode = "mask" if self.params.mode == "drop_row" else self.params.mode
        entities = self.entity_model.find(texts) if self.entity_model else None
        for index, text in enumerate(texts):
            found = self.detector.find(text) if text else []
            if entities:
                found = ner.combine(text, found, entities[index])
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

    def __init__(self, entities: list[str], allow: list[str], model_params: dict | None = None):
        self.entities, self.allow, self.model_params = list(entities), list(allow), model_params
        self._detector = None

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._detector is None:
            self._detector = pii.Detector(self.entities, self.allow)
        for name in table.column_names:
            type_ = table.schema.field(name).type
            if name in _RUNNER_COLUMNS or not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
                continue
            texts = table[name].to_pylist()
            entities = self._entities(texts)
            values = [pii.redact(v, ner.combine(v, self._detector.find(v), entities[i]) if entities else
                                 self._detector.find(v), "mask") if v else v for i, v in enumerate(texts)]
            table = set_column(table, name, pa.array(values, type_))
        return table

    def _entities(self, texts: list) -> list[list[pii.Found]] | None:
        """The model's findings, when the stage has a model: a name in a dead-lettered or filtered row
        must not leave the job either (the model loads once per process, on first use)."""
        if self.model_params is None or not any(texts):
            return None
        return _entity_model(RedactParams.model_validate(self.model_params)).find([t if isinstance(t, str) else "" for t in texts])

    def __getstate__(self):
        return {"entities": self.entities, "allow": self.allow, "model_params": self.model_params, "_detector": None}


def _entity_model(params: RedactParams) -> ner.EntityModel:
    """The process's model for these settings (the stage, the write tasks' scrubbers and the report
    share one load)."""
    key = params.model_dump_json(include={"model", "model_labels", "model_min_score", "batch_size", "revision",
                                          "trust_remote_code", "allow_pickle", "resources"})
    if key not in _MODELS:
        _MODELS[key] = _load_entity_model(params)
    return _MODELS[key]


def _load_entity_model(params: RedactParams) -> ner.EntityModel:
    device = "cpu"
    if params.resources.num_gpus > 0:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return ner.EntityModel(params.model, labels=params.model_labels, min_score=params.model_min_score,
                           batch_size=params.batch_size, revision=params.revision,
                           trust_remote_code=params.trust_remote_code, allow_pickle=params.allow_pickle, device=device)


def _salt(params: RedactParams) -> bytes:
    value = os.environ.get(params.salt_env, "")
    if len(value) < 16:
        raise SpecError(f"mode: pseudonymize needs a secret salt of at least 16 characters in the environment "
                        f"variable {params.salt_env} (it is never written to the output or the manifest)")
    return value.encode()

"""The clean stage: Unicode normalization, control characters removed, whitespace collapsed,
length bounds. Rows that are null, not valid UTF-8, empty or out of bounds go to the dead letter.

Input: `column` (string or binary holding UTF-8), passed through unchanged. Output: `output_column`
(default `<column>_clean`; naming `column` itself cleans it in place).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

from jobs.stages.base import Stage, StageParams, mark_failed, set_column

# Control characters (Cc) and invisible format characters that break tokenizers; whitespace
# controls become spaces so words stay apart. Zero-width joiners are kept: scripts and emoji need them.
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]")
_REMOVED = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\ufeff\ufffe]")


class CleanParams(StageParams):
    column: str
    output_column: str | None = Field(None, description="default: <column>_clean")
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(20_000, gt=0)
    normalize: Literal["NFC", "NFKC", "none"] = "NFC"
    collapse_whitespace: bool = True
    lowercase: bool = False

    @property
    def target(self) -> str:
        return self.output_column or f"{self.column}_clean"

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be <= max_chars ({self.max_chars})")
        return self


class CleanError(ValueError):
    """Why one value could not be cleaned; `kind` becomes the dead letter's error_type."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def clean_text(value: str | bytes | None, params: CleanParams) -> str:
    """Clean one value or raise CleanError saying why it is unusable."""
    if value is None:
        raise CleanError("null", "value is null")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CleanError("invalid_utf8", f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    if not isinstance(value, str):
        raise CleanError("not_a_string", f"expected text, got {type(value).__name__}")
    text = value
    if params.normalize != "none":
        text = unicodedata.normalize(params.normalize, text)
    text = _REMOVED.sub("", _WHITESPACE_CONTROLS.sub(" ", text))
    if params.collapse_whitespace:
        text = " ".join(text.split())
    if params.lowercase:
        text = text.lower()
    if not text.strip():
        raise CleanError("empty", "empty after cleaning")
    if len(text) < params.min_chars:
        raise CleanError("too_short", f"{len(text)} characters, min_chars is {params.min_chars}")
    if len(text) > params.max_chars:
        raise CleanError("too_long", f"{len(text)} characters, max_chars is {params.max_chars}")
    return text


class CleanStage(Stage):
    """Normalize and validate a text column; see the module docstring for columns."""

    name = "clean"
    Params = CleanParams

    @classmethod
    def input_columns(cls, params: CleanParams) -> dict[str, str]:
        return {params.column: "string"}

    @classmethod
    def output_columns(cls, params: CleanParams) -> list[str]:
        return [params.target]

    def __call__(self, batch: pa.Table) -> pa.Table:
        column = batch[self.params.column]
        # Read as bytes: Parquet does not validate UTF-8, and a bad row must fail alone.
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())
        cleaned: list[str | None] = []
        failures: dict[int, tuple[str, str]] = {}
        for index, value in enumerate(column.to_pylist()):
            try:
                cleaned.append(clean_text(value, self.params))
            except CleanError as exc:
                # A failed row keeps its value (bad bytes escaped) so the dead letter can be replayed.
                cleaned.append(value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value)
                failures[index] = (exc.kind, str(exc))
                self.count(f"dead_{exc.kind}")
        out = set_column(batch, self.params.target, pa.array(cleaned, pa.string()))
        bad_bytes = [i for i, (kind, _) in failures.items() if kind == "invalid_utf8"]
        input_type = batch.schema.field(self.params.column).type
        if bad_bytes and self.params.target != self.params.column and not pa.types.is_binary(input_type):
            # A string column holding bytes that are not UTF-8 would make the dead letter unreadable:
            # those rows (and only those) carry the escaped text in the input column too.
            original = column.to_pylist()
            for i in bad_bytes:
                original[i] = cleaned[i].encode()
            out = set_column(out, self.params.column, pa.array(original, column.type).cast(input_type))
        return mark_failed(out, failures)

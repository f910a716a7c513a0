"""Structured output (`guided`): the spec's constraint, the check every output must pass, and the
choice constraint the transformers backend applies while decoding (vLLM applies all three itself).

A row whose output fails the check (cut off at max_new_tokens, say) goes to the dead letter with the
reason; it never reaches the output column half-formed."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Guided(BaseModel):
    """Exactly one of: `choice` (the output is one of these strings), `json_schema` (the output is
    JSON text valid under it), `regex` (the output matches it in full)."""

    model_config = ConfigDict(extra="forbid")

    choice: list[str] | None = Field(None, min_length=1)
    json_schema: dict[str, Any] | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in ("choice", "json_schema", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, json_schema, regex")
        if self.choice is not None and (len(set(self.choice)) != len(self.choice) or not all(c.strip() for c in self.choice)):
            raise ValueError("choice: the options must be distinct, non-empty strings")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        if self.json_schema is not None:
            from jsonschema import validators
            from jsonschema.exceptions import SchemaError

            try:
                validators.validator_for(self.json_schema).check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("choice", "json_schema", "regex") if getattr(self, k) is not None)

    def problem(self, text: str) -> str | None:
        """Why `text` does not satisfy the constraint, or None when it does."""
        if self.choice is not None:
            return None if text in self.choice else f"output {text[:40]!r} is not one of the choices"
        if self.regex is not None:
            return None if re.fullmatch(self.regex, text) else "output does not match the regex"
        try:
            value = json.loads(text)
        except ValueError as exc:
            return f"output is not complete JSON ({exc.msg} at character {exc.pos}; cut off at max_new_tokens?)"
        from jsonschema import validators

        error = next(iter(validators.validator_for(self.json_schema)(self.json_schema).iter_errors(value)), None)
        return None if error is None else f"output JSON breaks the schema: {error.message[:120]}"

    def vllm_params(self):
        from vllm.sampling_params import StructuredOutputsParams

        if self.choice is not None:
            return StructuredOutputsParams(choice=self.choice)
        if self.regex is not None:
            return StructuredOutputsParams(regex=self.regex)
        return StructuredOutputsParams(json=self.json_schema)  # compact: see vllm_backend


class ChoiceConstraint:
    """`prefix_allowed_tokens_fn` for transformers' `generate`: each step allows only tokens that
    continue some choice, and end-of-sequence once a choice is complete."""

    def __init__(self, choices: list[str], tokenizer, eos_ids: set[int], prompt_width: int):
        self.sequences = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        self.eos_ids = sorted(eos_ids)
        self.prompt_width = prompt_width

    def __call__(self, batch_id: int, input_ids) -> list[int]:
        done = input_ids[self.prompt_width:].tolist()
        allowed = {seq[len(done)] for seq in self.sequences if len(seq) > len(done) and seq[:len(done)] == done}
        if any(seq == done for seq in self.sequences) or not allowed:
            allowed.update(self.eos_ids)
        return sorted(allowed)

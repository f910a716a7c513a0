"""The generate stage: a causal LM (or any seq2seq model) over a prompt template of row columns;
the tokenizer's chat template wraps the prompt when it has one. Sampling is seeded per row.

Input: the columns the prompt names (`column`, if set, is the one long inputs shorten). Output:
`output_column` (default `generated`): a string, or a list of n strings when n > 1; with `guided`
output, each string satisfies the constraint (JSON text for `json_schema`) or the row is dead-lettered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from jobs.engine import Guided
from jobs.stages.model import ModelParams, ModelStage


class GenerateParams(ModelParams):
    output_column: str = "generated"
    n: int = Field(1, ge=1, le=64, description="samples per row (needs temperature > 0)")
    system_prompt: str | None = None
    chat_template: bool | None = Field(None, description="default: use the tokenizer's chat template if it has one")
    # Chunking a prompt has no single right merge for free generation; cut it or dead-letter the row.
    long_input: Literal["truncate", "fail"] = "truncate"
    guided: Guided | None = Field(None, description="structured output: {choice: [...]}, {json_schema: {...}} or {regex: ...}")

    @model_validator(mode="after")
    def _samples(self):
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 needs temperature > 0 (greedy decoding gives n identical texts)")
        return self


class GenerateStage(ModelStage):
    """Generate text from a prompt per row; see the module docstring for columns."""

    name = "generate"
    Params = GenerateParams

    @classmethod
    def extra_engine_settings(cls, params: GenerateParams) -> dict:
        return {"n": params.n, "system_prompt": params.system_prompt, "chat_template": params.chat_template,
                "guided": params.guided.model_dump(exclude_none=True) if params.guided else None}

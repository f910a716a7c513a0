"""The summarize stage: a seq2seq model (BART, T5, Pegasus) or a causal LM with a prompt.

Input: `column` (string; plus any columns the prompt names). Output: `output_column` (default
`summary`). Long inputs are truncated, or chunked: each part is summarized, then the parts' summaries.
"""

from __future__ import annotations

from jobs.stages.model import ModelParams, ModelStage


class SummarizeParams(ModelParams):
    output_column: str = "summary"


class SummarizeStage(ModelStage):
    """Summarize a text column; see the module docstring for columns."""

    name = "summarize"
    Params = SummarizeParams
    chunk_merge = "summarize"
    example_prompt = "Summarize in one sentence:\\n{text}"

    @classmethod
    def extra_engine_settings(cls, params: SummarizeParams) -> dict:
        return {"task": "summarization"}  # T5 declares its "summarize: " prefix under this key

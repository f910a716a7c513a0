"""The langid stage: each row's language as an ISO 639-1 code, from script rules where they are
sure and an offline model that ships in its package (jobs/hygiene/langid.py).

Input: `column` (string). Output: `lang_column` (default `lang`; `und` when unsure) and
`score_column` (default `lang_score`, 0–1; short and mixed rows score lower). With `keep:`, rows
of other languages go to `_filtered/` (filter_reason `language`).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from jobs.hygiene.langid import UNDETERMINED, LanguageId
from jobs.stages.base import Stage, StageContext, StageParams, mark_filtered, set_column


class LangIdParams(StageParams):
    column: str
    lang_column: str = "lang"
    score_column: str = "lang_score"
    min_score: float = Field(0.0, ge=0, le=1, description="below it a row gets 'und'")
    keep: list[str] = Field([], description="languages to keep (e.g. [en, zh]); others are filtered; empty: all")


class LangIdStage(Stage):
    """Tag each row with its language; see the module docstring for columns."""

    name = "langid"
    Params = LangIdParams

    def __init__(self, params: LangIdParams, context: StageContext):
        super().__init__(params, context)
        self.model = LanguageId()

    @classmethod
    def input_columns(cls, params: LangIdParams) -> dict[str, str]:
        return {params.column: "string"}

    @classmethod
    def output_columns(cls, params: LangIdParams) -> list[str]:
        return [params.lang_column, params.score_column]

    def __call__(self, batch: pa.Table) -> pa.Table:
        found = self.model.detect_many([t or "" for t in batch[self.params.column].to_pylist()])
        langs = [lang if score >= self.params.min_score else UNDETERMINED for lang, score in found]
        for lang in langs:
            self.count(f"lang_{lang}")
        batch = set_column(batch, self.params.lang_column, pa.array(langs, pa.string()))
        batch = set_column(batch, self.params.score_column, pa.array([round(s, 4) for _, s in found], pa.float32()))
        if not self.params.keep:
            return batch
        keep = set(self.params.keep)
        return mark_filtered(batch, {i: ("language", None) for i, lang in enumerate(langs) if lang not in keep})

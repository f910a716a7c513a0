"""The translate stage: Marian, T5, NLLB/M2M (language codes become the forced first token), or a
causal LM with a prompt.

Input: `column` (string; plus any columns the prompt names). Output: `output_column` (default
`translation`). Long inputs are truncated, or chunked: parts are translated and joined.
"""

from __future__ import annotations

from pydantic import model_validator

from jobs.engine import CODED_LANGUAGE_MODELS
from jobs.errors import SpecError
from jobs.stages.model import ModelParams, ModelStage


class TranslateParams(ModelParams):
    output_column: str = "translation"
    source_lang: str | None = None
    target_lang: str | None = None

    @model_validator(mode="after")
    def _langs(self):
        if self.source_lang and not self.target_lang:
            raise ValueError("source_lang needs target_lang too")
        return self


class TranslateStage(ModelStage):
    """Translate a text column; see the module docstring for columns."""

    name = "translate"
    Params = TranslateParams
    example_prompt = "Translate into German:\\n{text}"

    @classmethod
    def check_model(cls, params: TranslateParams, config: dict) -> None:
        super().check_model(params, config)
        if config.get("model_type") in CODED_LANGUAGE_MODELS and not (params.source_lang and params.target_lang):
            raise SpecError(f"model: {params.model} translates between many languages; set source_lang and "
                            f"target_lang to its codes (e.g. en/de for M2M100, eng_Latn/deu_Latn for NLLB)")

    @classmethod
    def extra_engine_settings(cls, params: TranslateParams) -> dict:
        # T5 declares prefixes per pair ("translation_en_to_de": "translate English to German: ").
        task = f"translation_{params.source_lang}_to_{params.target_lang}" if params.source_lang else None
        return {"task": task, "source_lang": params.source_lang, "target_lang": params.target_lang}

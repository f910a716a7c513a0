"""The model engine behind the generate, translate and summarize stages; no Ray here.

The stages see one small interface: `load_engine(config)` returns an engine with
`run(rows, row_ids, run_seed, stage_index) -> list[RowResult]`, `take_stats()` and `info()`.
Behind it: prompting and templates (prompting), long inputs (long_inputs), seeds (sampling),
batching (batching), structured output (guided), the shared row pipeline (rows), and two backends,
transformers (hf_backend) and vLLM (vllm_backend), chosen by `selection`.
"""

from __future__ import annotations

from jobs.engine.config import EngineConfig, RowResult
from jobs.engine.guided import Guided
from jobs.engine.loading import check_model_files
from jobs.engine.prompting import CODED_LANGUAGE_MODELS, template_fields
from jobs.engine.rows import RowEngine
from jobs.engine.selection import ENGINES, check_engine_settings, choose_engine

__all__ = ["CODED_LANGUAGE_MODELS", "ENGINES", "EngineConfig", "Guided", "RowEngine", "RowResult",
           "check_engine_settings", "check_model_files", "choose_engine", "load_engine", "template_fields"]


def load_engine(config: EngineConfig) -> RowEngine:
    """Load the model on the backend `config.engine` resolves to for it."""
    engine = config.engine
    if engine != "transformers":
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(config.model, revision=config.revision,
                                                  trust_remote_code=config.trust_remote_code)
        engine = choose_engine(engine, config.model, model_config.to_dict())
    check_engine_settings(engine, config)
    if engine == "vllm":
        from jobs.engine.vllm_backend import VllmEngine

        return VllmEngine(config)
    from jobs.engine.hf_backend import TransformersEngine

    return TransformersEngine(config)

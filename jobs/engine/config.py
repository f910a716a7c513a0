"""What an engine is asked to do and what it gives back, shared by both backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# Keys the stage sets itself for vLLM; engine_kwargs may not repeat them.
VLLM_RESERVED_KWARGS = ("model", "tokenizer", "revision", "tokenizer_revision", "dtype", "seed", "trust_remote_code")


@dataclass
class EngineConfig:
    """What the engine loads and how it generates; field names match the stages' spec keys."""

    model: str
    engine: str = "transformers"  # transformers | vllm | auto (see jobs.engine.selection)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_invariant: bool = False  # vLLM's batch-invariant kernels (greedy output independent of the batch)
    engine_timeout_s: float = 600.0  # vLLM: fail when no request finishes for this long (a hung engine)
    actor_id: str | None = None  # the Ray actor the engine runs in: a lost engine exits it for a restart
    revision: str | None = None
    dtype: str = "auto"  # auto: bf16 (fp16 without bf16 support) on GPU, fp32 on CPU
    device: str = "auto"  # auto: cuda when torch sees one, else cpu
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Prompting: `template` fills row fields; `cut_field` is the field truncation and chunking shorten.
    template: str = "{text}"
    cut_field: str = "text"
    prefix: str | None = None  # None: the model's declared task prefix, if any
    task: str | None = None  # key in config.task_specific_params ("summarization", "translation_en_to_de")
    chat_template: bool | None = None  # None: use the tokenizer's chat template when it has one
    system_prompt: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    # Generation.
    max_new_tokens: int = 64
    min_new_tokens: int = 0
    num_beams: int | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    length_penalty: float | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    guided: dict[str, Any] | None = None  # {"choice": [...]} | {"json_schema": {...}} | {"regex": "..."}
    # Batching and long inputs.
    batch_size: int = 128
    max_batch_tokens: int | None = None
    max_input_tokens: int | None = None
    long_input: str = "truncate"  # truncate | chunk | fail
    chunk_merge: str = "join"  # join (translate) | summarize (summarize the parts' summaries)


@dataclass
class RowResult:
    """One row's outcome: `texts` holds n outputs, or `error` is (error_type, message). Token
    counts cover every model call the row took (copies, chunks, merge rounds)."""

    texts: list[str] = field(default_factory=list)
    error: tuple[str, str] | None = None
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass
class Unit:
    """One model input: a row's prompt (or one chunk of it), one sample copy."""

    row: int
    ids: list[int]
    seed: int = 0


@dataclass
class Generated:
    """A unit's output text and how many tokens the model produced for it."""

    text: str
    tokens: int

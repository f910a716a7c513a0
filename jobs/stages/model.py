"""What the model stages (generate, translate, summarize) share: spec keys, checks, and the call
that turns a batch into engine rows and back. The model work itself is in `jobs/engine/`.
"""

from __future__ import annotations

import time

from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from jobs import engine
from jobs.errors import SpecError
from jobs.stages.base import ROW_ID, Resources, Stage, StageParams, mark_failed, set_column

# Keys passed to the engine unchanged (same names in spec and EngineConfig).
_ENGINE_KEYS = ("model", "engine", "engine_kwargs", "batch_invariant", "engine_timeout_s", "revision", "dtype",
                "trust_remote_code", "allow_pickle", "prefix", "max_new_tokens", "min_new_tokens", "num_beams",
                "repetition_penalty", "no_repeat_ngram_size", "length_penalty", "temperature", "top_p", "top_k",
                "batch_size", "max_batch_tokens", "max_input_tokens", "long_input")


class ModelParams(StageParams):
    """Spec keys every model stage takes."""

    model: str = Field(description="hub name (org/name), local folder, or a committed `raybatch train` output")
    engine: Literal["auto", "vllm", "transformers"] = Field(
        "auto", description="auto: vLLM when installed and it supports the model, else transformers")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vLLM engine arguments, e.g. max_model_len")
    batch_invariant: bool = Field(False, description="vLLM's batch-invariant mode (greedy output independent of batching)")
    engine_timeout_s: float = Field(600.0, gt=0, description="vLLM: fail when no request finishes for this long")
    revision: str | None = None
    column: str | None = None
    output_column: str
    prompt: str | None = Field(None, description="template over row columns, e.g. 'Summarize: {text}'")
    prefix: str | None = Field(None, description="text before each input; default: the model's declared task prefix")
    max_new_tokens: int = Field(64, gt=0)
    min_new_tokens: int = Field(0, ge=0)
    batch_size: int = Field(128, gt=0, description="rows per forward, upper bound")
    max_batch_tokens: int | None = Field(None, gt=0, description="rows × (longest input + max_new_tokens) per forward")
    max_input_tokens: int | None = Field(None, gt=0, description="default: the model's own limit")
    long_input: Literal["truncate", "chunk", "fail"] = "truncate"
    num_beams: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, gt=0)
    no_repeat_ngram_size: int | None = Field(None, ge=0)
    length_penalty: float | None = None
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Model stages want a GPU per replica; with none in the cluster the pipeline runs them on CPU.
    resources: Resources = Resources(num_gpus=1)

    @field_validator("resources", mode="before")
    @classmethod
    def _gpu_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "num_gpus" not in value:
            return {**value, "num_gpus": 1}
        return value

    @field_validator("model")
    @classmethod
    def _trained_model(cls, value: str) -> str:
        from jobs.train.output import trained_model_folder

        return trained_model_folder(value)

    @field_validator("prompt")
    @classmethod
    def _prompt_fields(cls, value: str | None) -> str | None:
        if value is not None and not engine.template_fields(value):
            raise ValueError("must name at least one column, like {text}")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.column is None and self.prompt is None:
            raise ValueError("give column (the text to process) or a prompt template")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) must be <= max_new_tokens ({self.max_new_tokens})")
        if self.temperature > 0 and (self.num_beams or 1) > 1:
            raise ValueError("sampling (temperature > 0) and beam search (num_beams > 1) do not mix; pick one")
        if self.column and self.prompt and self.column not in engine.template_fields(self.prompt):
            raise ValueError(f"prompt does not use column {{{self.column}}}")
        return self

    def text_column(self) -> str:
        """The column truncation and chunking shorten: `column`, else the prompt's first field."""
        return self.column or engine.template_fields(self.prompt)[0]


class ModelStage(Stage):
    """Base of the model stages: one engine per actor; rows with a null or empty input go to the
    dead letter; n > 1 samples give a list column. Subclasses set the task and how chunks merge."""

    uses_actors = True
    chunk_merge: ClassVar[str] = "join"  # how the outputs of a chunked input's parts combine
    # A decoder-only model needs a prompt saying what to do with the text (None: the text is the prompt).
    example_prompt: ClassVar[str | None] = None

    @classmethod
    def input_columns(cls, params: ModelParams) -> dict[str, str]:
        text = params.text_column()
        fields = engine.template_fields(params.prompt) if params.prompt else [text]
        return {name: ("string" if name == text else "any") for name in fields}

    @classmethod
    def output_columns(cls, params: ModelParams) -> list[str]:
        return [params.output_column, *token_columns(params)]

    @classmethod
    def extra_inputs(cls, params: ModelParams) -> list[str]:
        """A model trained by `raybatch train`: its manifest, so a retrain redoes this job's shards."""
        manifest = Path(params.model).parent / "_manifest.json"
        return [str(manifest)] if Path(params.model).name == "model" and manifest.is_file() else []

    @classmethod
    def preflight(cls, params: ModelParams) -> None:
        config = engine.check_model_files(params.model, params.revision, params.trust_remote_code,
                                          params.allow_pickle)
        if config is not None:
            cls.check_model(params, config)

    @classmethod
    def check_engine(cls, params: ModelParams) -> None:
        config = engine.check_model_files(params.model, params.revision, params.trust_remote_code,
                                          params.allow_pickle)
        engine.check_engine_settings(engine.choose_engine(params.engine, params.model, config), params)

    @classmethod
    def check_model(cls, params: ModelParams, config: dict) -> None:
        """Stage-specific checks against the model's config.json (when it is on this machine)."""
        if cls.example_prompt and not config.get("is_encoder_decoder") and params.prompt is None:
            raise SpecError(f"model: {params.model} is a decoder-only model; give a prompt, "
                            f"e.g. prompt: \"{cls.example_prompt}\"")

    @classmethod
    def engine_config(cls, params: ModelParams) -> engine.EngineConfig:
        text = params.text_column()
        return engine.EngineConfig(
            **{key: getattr(params, key) for key in _ENGINE_KEYS},
            device="auto" if params.resources.num_gpus > 0 else "cpu",
            template=params.prompt or f"{{{text}}}", cut_field=text, chunk_merge=cls.chunk_merge,
            **cls.extra_engine_settings(params))

    @classmethod
    def extra_engine_settings(cls, params: ModelParams) -> dict:
        return {}

    def __init__(self, params: ModelParams, context):
        super().__init__(params, context)
        started = time.perf_counter()
        try:
            config = self.engine_config(params)
            config.actor_id = context.actor_id
            self.engine = engine.load_engine(config)
        except SpecError as exc:  # the engine installed where the stage runs refuses a setting
            raise SpecError(f"stages[{context.stage_index}] ({params.use}): {exc}") from None
        # Counted with this actor's first block (counters start per block): the summary's "model load".
        self._load_seconds: float | None = time.perf_counter() - started

    def info(self) -> dict[str, str]:
        """The model as loaded: its name or path, the revision the files came from, the engine that
        ran it with its version and settings, and how it decodes."""
        model_config = getattr(getattr(self.engine, "model", None), "config", None)
        revision = getattr(model_config, "_commit_hash", None) or self.params.revision or "local"
        return {"model": self.params.model, "revision": str(revision), **self.engine.info()}

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._load_seconds is not None:
            self.add_metrics({"model_load_seconds": self._load_seconds, "model_loads": 1})
            self._load_seconds = None
        params: ModelParams = self.params
        fields = list(self.input_columns(params))
        text = params.text_column()
        values = {name: batch[name].to_pylist() for name in fields}
        row_ids = [str(r) for r in batch[ROW_ID].to_pylist()]
        failures: dict[int, tuple[str, str]] = {}
        live = []
        for i in range(batch.num_rows):
            missing = [name for name in fields if values[name][i] is None]
            if missing:
                failures[i] = ("null_input", f"column {missing[0]!r} is null")
                continue
            value = values[text][i]
            if isinstance(value, bytes):  # a binary column: text only if it is valid UTF-8
                try:
                    values[text][i] = value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    failures[i] = ("invalid_utf8", f"column {text!r}: not valid UTF-8 at byte {exc.start}")
                    continue
            if not str(value).strip():
                failures[i] = ("empty_input", f"column {text!r} is empty")
            else:
                live.append(i)
        results = self.engine.run([{name: values[name][i] for name in fields} for i in live],
                                  row_ids=[row_ids[i] for i in live], run_seed=self.context.seed,
                                  stage_index=self.context.stage_index)
        outputs: list[Any] = [None] * batch.num_rows
        tokens_in: list[int | None] = [None] * batch.num_rows
        tokens_out: list[int | None] = [None] * batch.num_rows
        for i, result in zip(live, results):
            if result.error:
                failures[i] = result.error
            else:
                outputs[i] = result.texts if self.samples > 1 else result.texts[0]
                tokens_in[i], tokens_out[i] = result.tokens_in, result.tokens_out
        for key, value in self.engine.take_stats().items():
            self.count(key, value)
        type_ = pa.list_(pa.string()) if self.samples > 1 else pa.string()
        batch = set_column(batch, params.output_column, pa.array(outputs, type_))
        in_column, out_column = token_columns(params)
        batch = set_column(batch, in_column, pa.array(tokens_in, pa.int32()))
        batch = set_column(batch, out_column, pa.array(tokens_out, pa.int32()))
        return mark_failed(batch, failures)

    @property
    def samples(self) -> int:
        return getattr(self.params, "n", 1)


def token_columns(params: ModelParams) -> tuple[str, str]:
    """Per-row token counts: prompt tokens in, generated tokens out, over every call the row took."""
    return f"{params.output_column}_tokens_in", f"{params.output_column}_tokens_out"

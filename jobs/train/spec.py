"""Fine-tuning specs: a `train:` section instead of stages, validated like job specs, errors that
name the key path (`spec.yaml: train.learning_rate: must be > 0`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobs.errors import SpecError
from jobs.spec import (NAME_PATTERN, OutputSpec, check_date, fill_placeholders, first_error, read_spec_mapping,
                       spec_source, today_utc)


class LoraSpec(BaseModel):
    """Low-rank adapters (peft); merged into the weights when the model is saved."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field("all-linear", description="module names, or all-linear")


class TrainResources(BaseModel):
    """Ray Train's data-parallel workers."""

    model_config = ConfigDict(extra="forbid")
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1, gt=0)


class TrainSection(BaseModel):
    """What to train on, from which model, and how."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    data: str = Field(description="an export folder (raybatch export) or any committed raybatch output")
    model: str = Field(description="hub name (in the local cache) or local folder")
    revision: str | None = None
    task: Literal["sft", "classify"] = "sft"
    format: Literal["prompt_completion", "messages"] = Field(
        "prompt_completion", description="sft: columns prompt and completion, or messages (role/content)")
    text_column: str = Field("text", description="classify: the text")
    label_column: str = Field("label", description="classify: the class")
    split_column: str = Field("split", description="a committed output's split column")
    train_split: str = "train"
    eval_split: str | None = Field("validation", description="metrics on it after each logging period; null: none")
    epochs: float | None = Field(None, gt=0, description="default 1 when max_steps is not set")
    max_steps: int | None = Field(None, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(8, ge=1, description="rows per worker per step")
    max_length: int = Field(512, ge=8, description="tokens per row; longer prompts lose their start")
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1, description="a checkpoint every N steps: a killed run resumes from it")
    lora: LoraSpec | None = None
    resources: TrainResources = TrainResources()

    @model_validator(mode="after")
    def _length(self):
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("set epochs or max_steps, not both")
        if self.task == "classify" and self.format != "prompt_completion":
            raise ValueError("format applies to task sft only")
        return self

    def hyperparameters(self) -> dict:
        keep = ("task", "format", "epochs", "max_steps", "learning_rate", "batch_size", "max_length", "weight_decay",
                "warmup_ratio", "logging_steps", "save_steps", "lora", "train_split", "eval_split")
        return self.model_dump(mode="json", include=set(keep))


class TrainSpec(BaseModel):
    """A fine-tuning job: one `train` section and an output folder for the model."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    seed: int = 0
    train: TrainSection
    output: OutputSpec
    source: str = Field("<spec>", exclude=True)
    date: str = Field("", exclude=True)

    def resolved(self) -> dict:
        data = self.model_dump(mode="json")
        data["date"] = self.date
        return data


def load_train_spec(path: str | Path, overrides: list[str] | None = None, date: str | None = None) -> TrainSpec:
    """Read and validate a train spec; fill {name} and {date} in train.data and output.path."""
    raw = read_spec_mapping(path, overrides)
    return parse_train_spec(raw, source=spec_source(path), date=date)


def parse_train_spec(raw: dict, source: str = "<spec>", date: str | None = None) -> TrainSpec:
    date = date or today_utc()
    check_date(date)
    try:
        spec = TrainSpec.model_validate({**raw, "source": source, "date": date})
    except ValidationError as exc:
        raise SpecError(first_error(exc, source, model=TrainSpec)) from None
    spec.train.data = fill_placeholders(spec.train.data, spec.name, date)
    spec.output.path = fill_placeholders(spec.output.path, spec.name, date)
    return spec

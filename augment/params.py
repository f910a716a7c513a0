"""What a spec says about the augment stage and each of its ops: rates, bounds, guards, and the
settings of model-backed ops."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobs.stages.base import StageParams


class _OpBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(0.1, gt=0, le=1, description="fraction of words edited (at least min_edits)")
    min_edits: int = Field(1, ge=1)
    max_edits: int | None = Field(None, ge=1)
    max_edit_rate: float | None = Field(None, gt=0, le=1, description="token edit rate above which a copy is "
                                        "retried then dropped; default 0.5 (reorder: 1.0)")

    @model_validator(mode="after")
    def _edits(self):
        if self.max_edits is not None and self.max_edits < self.min_edits:
            raise ValueError(f"max_edits ({self.max_edits}) must be >= min_edits ({self.min_edits})")
        return self

    @property
    def edit_bound(self) -> float:
        return self.max_edit_rate if self.max_edit_rate is not None else 0.5

    @property
    def needs_lexicon(self) -> bool:
        return False

    @property
    def uses_model(self) -> bool:
        """Backed by a model (loaded once per actor, run batched over a block) rather than rules."""
        return False

    @property
    def seed_sensitive(self) -> bool:
        """Whether another seed can give another output (if not, a duplicate is not retried)."""
        return True


class _ModelOpBase(_OpBase):
    """Settings every model-backed op shares; the model loads as the model stages load theirs."""

    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    batch_size: int = Field(32, gt=0, description="texts per forward pass")

    @property
    def uses_model(self) -> bool:
        return self.model is not None


class SubstituteOp(_OpBase):
    """Replace words with WordNet synonyms of the part of speech the lexicon picks."""

    op: Literal["substitute"]
    senses: int = Field(3, ge=0, description="synonyms come from the word's first N senses (0: all)")

    @property
    def needs_lexicon(self) -> bool:
        return True


class InsertOp(_ModelOpBase):
    """Insert a synonym of a random content word at a random position (EDA's random insertion); with
    `model` (a masked LM), insert a word the model predicts for a mask at a random position instead."""

    op: Literal["insert"]
    senses: int = Field(3, ge=0)
    model: str | None = Field(None, description="masked-LM name or path: contextual insertion")
    top_k: int = Field(5, ge=1, le=100, description="with model: a word is drawn from the model's top_k "
                       "whole-word predictions")

    @property
    def needs_lexicon(self) -> bool:
        return self.model is None


class BackTranslateOp(_ModelOpBase):
    """Translate to a pivot language and back with two translation models (the translate stage's engine)."""

    op: Literal["back_translate"]
    model: str = Field(description="translation model from the text's language to the pivot")
    back_model: str = Field(description="translation model from the pivot back")
    back_revision: str | None = None
    source_lang: str | None = Field(None, description="the text's language code (multilingual models)")
    pivot_lang: str | None = Field(None, description="the pivot's language code (multilingual models)")
    temperature: float = Field(0.0, ge=0, description="0: greedy (one paraphrase per row); > 0: sampled, "
                               "seeded per copy")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, gt=0)
    # float32 keeps a copy independent of its batch; half precision on a GPU is faster, but padding
    # then moves sums at rounding level and a copy may change with the block it ran in.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"

    @property
    def edit_bound(self) -> float:
        # A paraphrase may rewrite every token (and be longer): unbounded unless max_edit_rate says.
        return self.max_edit_rate if self.max_edit_rate is not None else float("inf")

    @property
    def seed_sensitive(self) -> bool:
        return self.temperature > 0


class ReorderOp(_OpBase):
    """Swap words within a window; a text of several sentences has its sentences shuffled instead."""

    op: Literal["reorder"]
    window: int = Field(3, ge=1, description="a word swaps with one at most this many words away")
    sentences: bool = Field(True, description="shuffle sentences when the text has several")

    @property
    def edit_bound(self) -> float:
        # A swap of two words is two token edits and a sentence shuffle moves whole sentences.
        return self.max_edit_rate if self.max_edit_rate is not None else 1.0


class DeleteOp(_OpBase):
    """Drop each word with probability `rate`; at least min_edits, never every word."""

    op: Literal["delete"]


OpSpec = Annotated[Union[SubstituteOp, InsertOp, ReorderOp, DeleteOp, BackTranslateOp], Field(discriminator="op")]


class AugmentParams(StageParams):
    column: str
    copies: int = Field(1, ge=1, le=100, description="augmented rows made per input row")
    keep_original: bool = True
    ops: list[OpSpec] = Field(min_length=1, description="each copy applies one op, taken in turn from an "
                              "offset per row (fewer copies than ops still spread the ops over the rows)")
    chain: bool = Field(False, description="each copy applies every op in order (nlpaug's Sequential)")
    label_column: str | None = None
    split_column: str | None = None
    splits: list[str] | None = Field(None, min_length=1, description="with split_column: splits augmented "
                                     "(default [train])")
    stopwords: Literal["english", "none"] | list[str] = "english"
    protect: list[str] = Field(default_factory=list, description="words no op edits, moves or deletes")
    min_words: int = Field(3, ge=1, description="rows with fewer words are kept unaugmented")
    min_english: float = Field(0.5, ge=0, le=1, description="rows whose Latin-script words are less English than "
                               "this are kept unaugmented (0 turns the guard off)")
    languages: list[str] | None = Field(None, min_length=1, description="augment only rows in these languages "
                                        "(ISO 639-1), read from lang_column when the input has it, else detected")
    lang_column: str = Field("lang", description="the column a language-id stage wrote")
    retries: int = Field(3, ge=0, le=20, description="new seeds tried when a copy is a duplicate or edits too much")

    @model_validator(mode="after")
    def _guards(self):
        if self.splits is not None and self.split_column is None:
            raise ValueError("splits needs split_column (the column holding each row's split)")
        if self.languages is not None:
            self.languages = [code.lower() for code in self.languages]
        return self

    @property
    def needs_lexicon(self) -> bool:
        return self.min_english > 0 or any(op.needs_lexicon for op in self.ops)

    @property
    def uses_models(self) -> bool:
        return any(op.uses_model for op in self.ops)

    @property
    def augmented_splits(self) -> frozenset[str] | None:
        if self.split_column is None:
            return None
        return frozenset(self.splits or ["train"])

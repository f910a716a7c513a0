"""Augmentation ops backed by a model: contextual insertion with a masked LM, and back-translation
through two translation models (the translate stage's engine).

A model op takes a block's pending copies at once (`apply_batch(texts, rngs)`), so the model runs
batched, and returns each copy's text or None when it had nothing to make. Everything random comes
from the copy's own generator, never from the batch: the same (seed, row, copy, op) gives the same
text whatever else is in the block. Models load once per process; the augment stage runs in
actors when an op names a model, as the model stages do.
"""

from __future__ import annotations

import random
from typing import Any

from augment import ops
from augment.params import BackTranslateOp, InsertOp, _OpBase
from augment.sentences import SENTENCE_END
from augment.tokens import Tokens, parse, word_count
from jobs.errors import SpecError

_MODELS: dict[str, Any] = {}
# Markers byte-level BPE and SentencePiece vocabularies put on a piece that starts a word.
_WORD_START_MARKERS = ("Ġ", "▁")
_PLACEHOLDER = "\x00MASK\x00"


def model_op(spec: _OpBase, device: str):
    """The loaded implementation of a model-backed op, shared by every copy in this process."""
    key = f"{spec.model_dump_json()}@{device}"
    if key not in _MODELS:
        _MODELS[key] = (ContextualInsert if spec.op == "insert" else BackTranslate)(spec, device)
    return _MODELS[key]


def check_files(spec: _OpBase) -> None:
    """Preflight: each model the op names is on this machine (or may be fetched) and loads safely."""
    from jobs.engine import check_model_files

    models = [(spec.model, spec.revision)]
    if spec.op == "back_translate":
        models.append((spec.back_model, spec.back_revision))
    for name, revision in models:
        check_model_files(name, revision, spec.trust_remote_code, spec.allow_pickle)


class ContextualInsert:
    """Insert words a masked LM predicts: masks go in at random positions (as EDA's insertion picks
    them), one forward pass fills every mask of a batch, and each mask takes a word drawn from the
    model's `top_k` whole-word predictions with the copy's generator."""

    def __init__(self, spec: InsertOp, device: str):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.spec, self.device = spec, device
        common = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model, **common)
        if self.tokenizer.mask_token_id is None:
            raise SpecError(f"model: {spec.model}: its tokenizer has no mask token; contextual insertion needs a "
                            f"masked language model (BERT, RoBERTa, XLM-R, ...)")
        self.model = AutoModelForMaskedLM.from_pretrained(
            spec.model, **common, use_safetensors=None if spec.allow_pickle else True).to(device).eval()
        from jobs.engine.loading import encoder_limit

        self.max_tokens = encoder_limit(self.tokenizer, self.model.config)
        self.vocab_size = len(self.tokenizer)  # output columns past the tokenizer's entries are never words
        vocab = self.tokenizer.get_vocab()
        self.marker = next((m for m in _WORD_START_MARKERS if sum(t.startswith(m) for t in vocab) > 10), None)
        self.special = set(self.tokenizer.all_special_ids)
        self._words: dict[int, str | None] = {}
        self._torch = torch

    def word(self, token_id: int) -> str | None:
        """The whole word a vocabulary entry stands for, or None (a word piece, punctuation, a number,
        a special token): only whole words are inserted."""
        if token_id not in self._words:
            self._words[token_id] = self._whole_word(token_id)
        return self._words[token_id]

    def _whole_word(self, token_id: int) -> str | None:
        if token_id in self.special:
            return None
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None or piece.startswith("##") or (self.marker and not piece.startswith(self.marker)):
            return None
        text = self.tokenizer.decode([token_id]).strip()
        return text if text and all(ch.isalpha() for ch in text) else None

    def _plan(self, text: str, rng: random.Random) -> tuple[Tokens, int]:
        """Place the masks: `edits_for` of them, never first nor after closing punctuation."""
        tokens = Tokens(text)
        count = ops.edits_for(word_count(text), self.spec)
        for _ in range(count):
            n = len(tokens.words)
            last = n - 1 if tokens.words[-1].endswith(SENTENCE_END) and n > 1 else n
            at = rng.randint(1, max(last, 1))
            # Between words written without spaces (Chinese), the new word takes none either.
            gap = "" if at < n and tokens.gaps[at - 1] == "" else " "
            tokens.words.insert(at, _PLACEHOLDER)
            tokens.gaps.insert(min(at, n - 1), gap)
        return tokens, count

    def apply_batch(self, texts: list[str], rngs: list[random.Random]) -> list[str | None]:
        mask = self.tokenizer.mask_token
        # A text that already holds the mask token cannot tell its masks from ours: nothing to insert.
        plans = [self._plan(text, rng) if parse(text).words and mask not in text else None
                 for text, rng in zip(texts, rngs)]
        masked = [p[0].text().replace(_PLACEHOLDER, self.tokenizer.mask_token) if p else "" for p in plans]
        predictions = self._predict(masked, [i for i, p in enumerate(plans) if p])
        out: list[str | None] = []
        for plan, rng, candidates in zip(plans, rngs, predictions):
            if plan is None:
                out.append(None)
                continue
            choices = [rng.choice(c) if c else None for c in candidates]
            text, inserted = _fill(plan[0], choices)
            out.append(text if inserted else None)
        return out

    def _predict(self, masked: list[str], live: list[int]) -> list[list[list[str]]]:
        """For each text, per mask in order: its candidate words (top_k whole words, best first)."""
        result: list[list[list[str]]] = [[] for _ in masked]
        order = sorted(live, key=lambda i: (len(masked[i]), i))
        with self._torch.inference_mode():
            for start in range(0, len(order), self.spec.batch_size):
                self._predict_batch(masked, order[start:start + self.spec.batch_size], result)
        return result

    def _predict_batch(self, masked: list[str], batch: list[int], result: list[list[list[str]]]) -> None:
        """One forward pass; on out-of-memory, halve the batch. A text that fails alone gets no
        candidates (its copy is not made, and says so) rather than failing the block."""
        torch = self._torch
        try:
            encoded = self.tokenizer([masked[i] for i in batch], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_tokens).to(self.device)
            logits = self.model(**encoded).logits[..., :self.vocab_size].float()
        except torch.OutOfMemoryError:
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if len(batch) > 1:
                half = len(batch) // 2
                self._predict_batch(masked, batch[:half], result)
                self._predict_batch(masked, batch[half:], result)
            return
        rows, cols = (encoded["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
        ranked = logits[rows, cols].topk(min(logits.shape[-1], self.spec.top_k * 8), dim=-1).indices
        for row, ids in zip(rows.tolist(), ranked.tolist()):
            words = [w for w in (self.word(t) for t in ids) if w]
            result[batch[row]].append(list(dict.fromkeys(words))[:self.spec.top_k])


def _fill(tokens: Tokens, choices: list[str | None]) -> tuple[str, int]:
    """The text with each mask replaced by its chosen word, in order; a mask without a word (none of
    its predictions was a whole word, or truncation cut it off) vanishes with the gap before it."""
    pending = iter(choices)
    parts: list[str] = []
    inserted = 0
    for gap, word in zip(["", *tokens.gaps], tokens.words):  # the gap before each word
        if word == _PLACEHOLDER:
            word = next(pending, None)
            if word is None:
                continue
            inserted += 1
        parts.append((gap if parts else "") + word)
    return "".join(parts), inserted


class BackTranslate:
    """Translate each text to the pivot language and back with two translate-stage engines. Greedy by
    default (one paraphrase per row); with `temperature` each copy samples with its own seed."""

    def __init__(self, spec: BackTranslateOp, device: str):
        from jobs.engine import RowEngine, load_engine
        from jobs.stages.translate import TranslateParams, TranslateStage

        def engine(model: str, revision: str | None, source: str | None, target: str | None) -> RowEngine:
            params = TranslateParams(
                use="translate", model=model, revision=revision, column="text", source_lang=source,
                target_lang=target, temperature=spec.temperature, top_p=spec.top_p,
                max_new_tokens=spec.max_new_tokens, batch_size=spec.batch_size, dtype=spec.dtype,
                trust_remote_code=spec.trust_remote_code, allow_pickle=spec.allow_pickle, long_input="chunk")
            config = TranslateStage.engine_config(params)
            config.device = device
            return load_engine(config)

        self.there = engine(spec.model, spec.revision, spec.source_lang, spec.pivot_lang)
        self.back = engine(spec.back_model, spec.back_revision, spec.pivot_lang, spec.source_lang)

    def apply_batch(self, texts: list[str], rngs: list[random.Random]) -> list[str | None]:
        seeds = [str(rng.getrandbits(63)) for rng in rngs]
        pivots = self.there.run([{"text": t} for t in texts], row_ids=seeds)
        live = [i for i, r in enumerate(pivots) if r.error is None and r.texts and r.texts[0]]
        backs = self.back.run([{"text": pivots[i].texts[0]} for i in live], row_ids=[seeds[i] for i in live])
        out: list[str | None] = [None] * len(texts)
        for i, result in zip(live, backs):
            if result.error is None and result.texts and result.texts[0]:
                out[i] = result.texts[0]
        return out

"""Names and addresses, which no pattern can find: a token-classification (NER) model over each row,
its tokens' labels joined into spans of the row's text.

The model loads once per actor and runs batched. A row longer than the model's input limit is read
in overlapping windows, so a name past the limit is still found. A span is widened to whole words
(a name is never half masked) except inside CJK text, which has no spaces to widen to. Labels
follow the usual BIO scheme (`B-PER`, `I-PER`) or plain labels (`PER`); `labels` maps the model's
entity names to the kinds this project reports (`PER` -> `person`), and entities it does not map
are ignored.
"""

from __future__ import annotations

import regex

from jobs.engine.loading import encoder_limit
from jobs.errors import SpecError
from jobs.hygiene.pii import Found

# Labels that most public NER models use, and the kinds they become.
DEFAULT_LABELS = {"PER": "person", "PERSON": "person", "LOC": "location", "GPE": "location",
                  "ADDRESS": "address", "ADDR": "address", "STREET": "address"}
_STRIDE = 32  # tokens each window shares with the one before it


# A letter, digit or combining mark (a vowel sign or accent belongs to the word it sits in).
_WORD_CHAR = regex.compile(r"[\p{L}\p{N}\p{M}]")
# Scripts written without spaces between words: there is no whole word to widen to.
_NO_SPACES = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")


def widen(text: str, start: int, end: int) -> tuple[int, int]:
    """The span grown to the whole words it touches, and stripped of surrounding spaces and
    punctuation the model took along."""
    def inside_word(i: int) -> bool:
        return 0 <= i < len(text) and _WORD_CHAR.match(text[i]) is not None and not _NO_SPACES.match(text[i])

    while start > 0 and inside_word(start - 1) and inside_word(start):
        start -= 1
    while end < len(text) and inside_word(end) and inside_word(end - 1):
        end += 1
    return trim(text, start, end)


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without the spaces and punctuation at its ends (a mark stays with its letter)."""
    while start < end and (_WORD_CHAR.match(text[start]) is None or regex.match(r"\p{M}", text[start])):
        start += 1
    while end > start and _WORD_CHAR.match(text[end - 1]) is None:
        end -= 1
    return start, end


class EntityModel:
    """A token-classification model that finds `labels`' entities in texts (`find(texts)`)."""

    def __init__(self, model: str, *, labels: dict[str, str], min_score: float = 0.5, batch_size: int = 32,
                 revision: str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False,
                 device: str = "cpu"):
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        common = {"revision": revision, "trust_remote_code": trust_remote_code}
        self.tokenizer = AutoTokenizer.from_pretrained(model, **common)
        self.tokenizer.padding_side = "right"  # a window's labels line up with its offsets from the start
        if not self.tokenizer.is_fast:
            raise SpecError(f"model: {model}: its tokenizer has no fast (Rust) version, which entity spans "
                            f"need for their character offsets")
        self.model = AutoModelForTokenClassification.from_pretrained(
            model, **common, use_safetensors=None if allow_pickle else True).to(device).eval()
        self.device, self.batch_size, self.min_score, self._torch = device, batch_size, min_score, torch
        # label id -> (starts an entity, kind) for the labels `labels` maps; everything else is outside.
        wanted = {name.upper(): kind for name, kind in labels.items()}
        self.tags: dict[int, tuple[bool, str]] = {}
        for index, label in self.model.config.id2label.items():
            prefix, _, name = label.partition("-") if label[:2] in ("B-", "I-", "S-", "E-") else ("I", "", label)
            if name.upper() in wanted:
                self.tags[int(index)] = (prefix in ("B", "S"), wanted[name.upper()])
        if not self.tags:
            raise SpecError(f"model: {model}: none of its labels ({', '.join(self.model.config.id2label.values())}) "
                            f"is one of model_labels ({', '.join(labels)})")
        self.max_tokens = encoder_limit(self.tokenizer, self.model.config)

    def find(self, texts: list[str]) -> list[list[Found]]:
        """Each text's entities: non-overlapping spans sorted by start."""
        spans: list[list[Found]] = [[] for _ in texts]
        live = [i for i, text in enumerate(texts) if text and text.strip()]
        if not live:
            return spans
        encoded = self.tokenizer([texts[i] for i in live], truncation=True, max_length=self.max_tokens,
                                 stride=min(_STRIDE, self.max_tokens // 4), return_overflowing_tokens=True,
                                 return_offsets_mapping=True)
        owners, offsets = encoded.pop("overflow_to_sample_mapping"), encoded.pop("offset_mapping")
        # Windows by length, so a batch pads to its own longest window, not the block's.
        order = sorted(range(len(owners)), key=lambda n: len(offsets[n]))
        for first in range(0, len(order), self.batch_size):
            batch = order[first:first + self.batch_size]
            window = self.tokenizer.pad({k: [v[n] for n in batch] for k, v in encoded.items()}, return_tensors="pt")
            with self._torch.inference_mode():
                logits = self.model(**{k: v.to(self.device) for k, v in window.items()}).logits
            scores, labels = self._torch.softmax(logits.float(), dim=-1).max(dim=-1)
            for n, label_row, score_row in zip(batch, labels.tolist(), scores.tolist()):
                owner = live[owners[n]]
                # Padding comes after a window's tokens: its first len(offsets[n]) positions are the window.
                spans[owner].extend(self._spans(texts[owner], offsets[n], label_row, score_row))
        return [_merged(texts[i], found) for i, found in enumerate(spans)]

    def _spans(self, text: str, offsets, labels, scores) -> list[Found]:
        """Consecutive tokens of one kind (a B- label starts a new one) as character spans."""
        found, current = [], None  # current: [kind, start, end, scores]
        for (start, end), label, score in zip(offsets, labels, scores):
            if start == end or text[start:end].isspace():
                continue  # padding and special tokens carry no text; a space token does not end a name
            tag = self.tags.get(label)
            if tag is None or (current is not None and (tag[0] or tag[1] != current[0])):
                if current is not None:
                    found.append(current)
                current = None
            if tag is not None:
                if current is None:
                    current = [tag[1], start, end, [score]]
                else:
                    current[2] = end
                    current[3].append(score)
        if current is not None:
            found.append(current)
        spans = []
        for kind, start, end, token_scores in found:
            if sum(token_scores) / len(token_scores) < self.min_score:
                continue
            start, end = widen(text, start, end)
            if start < end:
                spans.append(Found(kind, start, end))
        return spans


def _merged(text: str, found: list[Found]) -> list[Found]:
    """Spans from overlapping windows (or one word hit twice) joined: overlapping or touching spans
    of a kind become one; a span of another kind keeps only what the earlier span left of it."""
    out: list[Found] = []
    for hit in sorted(found, key=lambda h: (h.start, h.end)):
        if out and hit.start <= out[-1].end and (hit.kind == out[-1].kind or hit.end <= out[-1].end):
            if hit.end > out[-1].end:
                out[-1] = Found(out[-1].kind, out[-1].start, hit.end)
            continue
        start, end = trim(text, max(hit.start, out[-1].end) if out else hit.start, hit.end)
        if start < end:
            out.append(Found(hit.kind, start, end))
    return out


def combine(text: str, patterns: list[Found], entities: list[Found]) -> list[Found]:
    """Pattern findings (validated, checksums) keep their spans; a model's entity keeps what lies
    outside them, so a name the model ran into an email still goes."""
    if not entities:
        return patterns
    kept = []
    for entity in entities:
        pieces = [(entity.start, entity.end)]
        for p in patterns:
            pieces = [part for lo, hi in pieces
                      for part in ([(lo, hi)] if hi <= p.start or lo >= p.end else [(lo, p.start), (p.end, hi)])]
        for lo, hi in pieces:
            lo, hi = trim(text, lo, hi)
            if lo < hi:
                kept.append(Found(entity.kind, lo, hi))
    return sorted(patterns + kept, key=lambda h: h.start)

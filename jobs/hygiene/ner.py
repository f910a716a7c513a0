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

import unicodedata

from jobs.errors import SpecError
from jobs.hygiene.pii import Found

# Labels that most public NER models use, and the kinds they become.
DEFAULT_LABELS = {"PER": "person", "PERSON": "person", "LOC": "location", "GPE": "location",
                  "ADDRESS": "address", "ADDR": "address", "STREET": "address"}
_STRIDE = 32  # tokens each window shares with the one before it


def is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def widen(text: str, start: int, end: int) -> tuple[int, int]:
    """The span grown to the whole words it touches, and stripped of surrounding spaces and
    punctuation the model took along."""
    def inside_word(i: int) -> bool:
        return 0 <= i < len(text) and text[i].isalnum() and not is_cjk(text[i])

    while start > 0 and inside_word(start - 1) and inside_word(start):
        start -= 1
    while end < len(text) and inside_word(end) and inside_word(end - 1):
        end += 1
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
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
        if not self.tokenizer.is_fast:
            raise SpecError(f"model: {model}: its tokenizer has no fast (Rust) version, which entity spans "
                            f"need for their character offsets")
        self.model = AutoModelForTokenClassification.from_pretrained(
            model, **common, use_safetensors=None if allow_pickle else True).to(device).eval()
        self.device, self.batch_size, self.min_score, self._torch = device, batch_size, min_score, torch
        # label id -> (starts an entity, kind) for the labels `labels` maps; everything else is outside.
        self.tags: dict[int, tuple[bool, str]] = {}
        for index, label in self.model.config.id2label.items():
            prefix, _, name = label.partition("-") if label[:2] in ("B-", "I-", "S-", "E-") else ("I", "", label)
            if name.upper() in {k.upper() for k in labels}:
                kind = next(v for k, v in labels.items() if k.upper() == name.upper())
                self.tags[int(index)] = (prefix in ("B", "S"), kind)
        if not self.tags:
            raise SpecError(f"model: {model}: none of its labels ({', '.join(self.model.config.id2label.values())}) "
                            f"is one of model_labels ({', '.join(labels)})")
        limit = self.tokenizer.model_max_length
        if not limit or limit >= 1_000_000:
            limit = (getattr(self.model.config, "max_position_embeddings", None) or 514) - 2
        self.max_tokens = limit

    def find(self, texts: list[str]) -> list[list[Found]]:
        """Each text's entities: non-overlapping spans sorted by start."""
        spans: list[list[Found]] = [[] for _ in texts]
        live = [i for i, text in enumerate(texts) if text and text.strip()]
        if not live:
            return spans
        encoded = self.tokenizer([texts[i] for i in live], truncation=True, max_length=self.max_tokens,
                                 stride=min(_STRIDE, self.max_tokens // 4), return_overflowing_tokens=True,
                                 return_offsets_mapping=True, padding=True, return_tensors="pt")
        owners = encoded.pop("overflow_to_sample_mapping").tolist()
        offsets = encoded.pop("offset_mapping").tolist()
        torch = self._torch
        for first in range(0, len(owners), self.batch_size):
            window = {k: v[first:first + self.batch_size].to(self.device) for k, v in encoded.items()}
            with torch.inference_mode():
                probs = torch.softmax(self.model(**window).logits.float(), dim=-1)
            scores, labels = probs.max(dim=-1)
            for row, (label_row, score_row) in enumerate(zip(labels.tolist(), scores.tolist())):
                n = first + row
                owner = live[owners[n]]
                mask = window["attention_mask"][row].tolist()
                spans[owner].extend(self._spans(texts[owner], offsets[n], label_row, score_row, mask))
        return [_merged(found) for found in spans]

    def _spans(self, text: str, offsets, labels, scores, mask) -> list[Found]:
        """Consecutive tokens of one kind (a B- label starts a new one) as character spans."""
        found, current = [], None  # current: [kind, start, end, scores]
        for (start, end), label, score, attended in zip(offsets, labels, scores, mask):
            if not attended or start == end or text[start:end].isspace():
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


def _merged(found: list[Found]) -> list[Found]:
    """Spans from overlapping windows (or one word hit twice) joined: overlapping or touching spans
    of a kind become one."""
    out: list[Found] = []
    for hit in sorted(found, key=lambda h: (h.start, h.end)):
        if out and hit.start <= out[-1].end and (hit.kind == out[-1].kind or hit.end <= out[-1].end):
            if hit.end > out[-1].end:
                out[-1] = Found(out[-1].kind, out[-1].start, hit.end)
            continue
        if out and hit.start < out[-1].end:  # another kind overlapping: the earlier span keeps its text
            hit = Found(hit.kind, out[-1].end, hit.end)
        out.append(hit)
    return out


def combine(patterns: list[Found], entities: list[Found]) -> list[Found]:
    """Pattern findings (validated, checksums) win over a model's entity that overlaps them."""
    if not entities:
        return patterns
    kept = [e for e in entities if all(e.end <= p.start or e.start >= p.end for p in patterns)]
    return sorted(patterns + kept, key=lambda h: h.start)

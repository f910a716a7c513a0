"""Sentence splitting, for the reorder op's sentence shuffle: full stops that end sentences, and the
ones after abbreviations and initials that do not; CJK full stops end a sentence with or without a gap."""

from __future__ import annotations

import random
import re

# A sentence ends at . ! ? (closing quotes or brackets may follow) before a gap and a capital or
# digit; or at a CJK full stop, question or exclamation mark, with or without a gap.
_SENTENCE_GAP = re.compile(r"(?<=[.!?…])([\"'”’)\]]*)(\s+)(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])"
                           r"|(?<=[。！？])([”’」』）]*)(\s*)(?=\S)")
# Words whose full stop does not end a sentence (lower case, without the stop).
_ABBREVIATIONS = frozenset("""
    mr mrs ms dr prof sr jr st mt vs etc cf al fig figs no nos vol vols ch sec pp p ed eds approx dept
    est gen gov lt col capt sgt rev inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec
    mon tue wed thu fri sat sun
""".split())
_INITIALS = re.compile(r"(?:\b[A-Za-z]\.)+\Z")  # J. or U.S. or e.g.
SENTENCE_END = (".", "!", "?")
_STOPS = ".!?…。！？"


def split_sentences(text: str) -> tuple[list[str], list[str]]:
    """Sentences and the whitespace between them. A full stop after an abbreviation (Mr., etc.,
    Fig.) or an initial (J. K., U.S., e.g.) does not end a sentence."""
    body = text[:-1]  # a stop ends a sentence only with something after it
    if not any(stop in body for stop in _STOPS):
        return [text], []  # most rows: decided without the regex, which tries every position
    sentences, gaps, start = [], [], 0
    for match in _SENTENCE_GAP.finditer(text):
        closing = match.group(1) if match.group(1) is not None else match.group(3)
        gap_start = match.start() + len(closing)
        before = text[start:match.start()]
        if before.endswith(".") and _is_abbreviation(before[:-1]):
            continue
        sentences.append(text[start:gap_start])
        gaps.append(text[gap_start:match.end()])
        start = match.end()
    sentences.append(text[start:])
    return sentences, gaps


def _is_abbreviation(before_stop: str) -> bool:
    word = before_stop.rsplit(None, 1)[-1] if before_stop.strip() else ""
    word = word.lstrip("\"'“‘([")
    return word.lower() in _ABBREVIATIONS or bool(_INITIALS.search(word + "."))


def shuffle_sentences(text: str, rng: random.Random) -> str | None:
    sentences, gaps = split_sentences(text.strip())
    if len(sentences) < 2:
        return None
    order = list(range(len(sentences)))
    rng.shuffle(order)
    if order == sorted(order):
        order = order[1:] + order[:1]
    out = [sentences[order[0]]]
    for gap, index in zip(gaps, order[1:]):
        out.append(gap)
        out.append(sentences[index])
    return "".join(out)


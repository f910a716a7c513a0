"""Measuring a copy against its parent: the token edit rate the quality guard bounds, and the
normalized form duplicates are found by."""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

from augment.tokens import parse


def token_edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between token lists (rapidfuzz compares any sequences of hashables)."""
    return Levenshtein.distance(a, b)


def edit_rate(parent: str, child: str) -> float:
    """Token-level edit distance over the parent's token count."""
    parsed = parse(parent)
    # Whitespace tokens are the ones parse() makes (without caching the copy's parse); a text with
    # CJK words is segmented the same way as its parent.
    a, b = parsed.words, (parse(child).words if any(parsed.cjk) else child.split())
    return token_edit_distance(a, b) / max(len(a), 1)


def normalize(text: str) -> str:
    """What dedup compares: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def normalize_parsed(text: str) -> str:
    """normalize(text), from the text's cached parse where its tokens are the whitespace-separated
    ones (casefolding never makes or removes whitespace, so it may come after the split)."""
    parsed = parse(text)
    return normalize(text) if True in parsed.cjk else " ".join(parsed.words).casefold()


"""Measuring a copy against its parent: the token edit rate the quality guard bounds, and the
normalized form duplicates are found by."""

from __future__ import annotations

from augment.tokens import parse


def token_edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between token lists: common ends trimmed, then Hyyrö's bit-parallel
    algorithm (one pass over `b`, a few integer operations per token instead of a DP row)."""
    start, end_a, end_b = 0, len(a), len(b)
    while start < end_a and start < end_b and a[start] == b[start]:
        start += 1
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if not a or not b:
        return len(a) + len(b)
    peq: dict[str, int] = {}
    for i, token in enumerate(a):
        peq[token] = peq.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    top = 1 << (len(a) - 1)
    pv, mv, score = full, 0, len(a)
    for token in b:
        eq = peq.get(token, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


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

"""A labelled multilingual set of real sentences for measuring language identification offline: the
translated gettext messages frozen in tests/data/lang_sentences.json.gz (see gettext_catalogs.py for
where they come from). Reading a frozen file, not the machine's catalogs, keeps every sample the
same wherever the tests run; `seed` picks which of the frozen sentences a sample takes.
"""

from __future__ import annotations

import functools
import gzip
import json
import random

import regex

from tests.helpers.gettext_catalogs import FOURTEEN, FROZEN

__all__ = ["FOURTEEN", "labelled_sentences", "code_mixed_chinese", "short_messages", "mixed_sentences"]
_LATIN = regex.compile(r"\p{Latin}")


@functools.lru_cache(maxsize=1)
def _frozen() -> dict:
    return json.loads(gzip.decompress(FROZEN.read_bytes()).decode("utf-8"))


def _sample(texts: list[str], count: int, rng: random.Random) -> list[str]:
    """Up to `count` of `texts` in a random order fixed by `rng`."""
    order = list(texts)
    rng.shuffle(order)
    return order[:count]


def _pick(langs, kind: str, per_lang: int, seed: int, salt: str = "") -> list[tuple[str, str]]:
    frozen = _frozen()["langs"]
    unknown = set(langs) - set(frozen)
    if unknown:
        raise ValueError(f"{FROZEN.name} has no sentences for: {', '.join(sorted(unknown))}")
    return [(text, lang) for lang in langs
            for text in _sample(frozen[lang][kind], per_lang, random.Random(f"{seed}:{lang}{salt}"))]


def labelled_sentences(langs=FOURTEEN, per_lang: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """(text, ISO 639-1 code): up to `per_lang` sentences of each language, shuffled; fixed by `seed`."""
    rows = _pick(langs, "sentences", per_lang, seed)
    random.Random(seed).shuffle(rows)
    return rows


def code_mixed_chinese(count: int = 100, seed: int = 0) -> list[tuple[str, str]]:
    """Chinese sentences with a short English phrase inserted at a random point, labelled zh: the
    way Chinese technical text quotes English terms."""
    frozen = _frozen()
    rng = random.Random(f"{seed}:mixed")
    chinese = _sample([t for t in frozen["langs"]["zh"]["sentences"] if not _LATIN.search(t)], count, rng)
    phrases = _sample(frozen["phrases"], count, rng)
    rows = []
    for text, phrase in zip(chinese, phrases):
        at = rng.randrange(1, len(text))
        rows.append((f"{text[:at]} {phrase} {text[at:]}", "zh"))
    return rows


def short_messages(langs=FOURTEEN, per_lang: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """2-3 word messages (menu items, labels) of each language: too short to be sure of."""
    return _pick(langs, "short", per_lang, seed, salt=":short")


def mixed_sentences(langs=FOURTEEN, count: int = 100, per_lang_short: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """The harder slice: code-mixed Chinese rows (label zh) plus short messages of each language."""
    return code_mixed_chinese(count, seed) + short_messages(langs, per_lang_short, seed)

"""Which rows the ops can handle, by language: the English share of a row's Latin-script words (the
guard in front of the WordNet ops), whether a row has English words at all, and a row's language
for the stage's `languages:` guard when no language-id stage ran before it.

Only Latin-script words count towards the English share: a Chinese or Russian part of a row is
another script for the ops to handle by its own rules, not evidence that the row is not English.
"""

from __future__ import annotations

import functools

import regex

from augment.ops import LEXICAL, STOPWORDS, Vocab
from augment.tokens import MEMO_LIMIT, PARSE_CACHE, parse

_LATIN = regex.compile(r"\p{Latin}")


# A word's memo value, chosen so that summing a row's values counts both at once.
_LATIN_WORD = 1 << 32  # a word written in Latin script
_ENGLISH_WORD = _LATIN_WORD + 1  # ... that is English


def _english(core: str, vocab: Vocab) -> int:
    """_ENGLISH_WORD, _LATIN_WORD (a Latin-script word that is not English) or 0 (not Latin script)."""
    found = vocab.english.get(core)
    if found is None:
        if len(vocab.english) >= MEMO_LIMIT:
            vocab.english.clear()
        if not core or not _LATIN.search(core):
            found = 0
        else:
            lower = core.lower()
            english = lower in STOPWORDS or (LEXICAL.match(lower) is not None and vocab.lexicon.known(lower))
            found = _ENGLISH_WORD if english else _LATIN_WORD
        vocab.english[core] = found
    return found


def english_ratio(text: str, vocab: Vocab) -> float:
    """Share of the Latin-script words that are English stopwords or WordNet words (1.0 without a
    lexicon or without such words): the cheap language guard in front of the lexical ops."""
    if vocab.lexicon is None:
        return 1.0
    known, total = _english_counts(text, vocab)
    return known / total if total else 1.0


def has_english_words(text: str, vocab: Vocab) -> bool:
    """Whether a lexical op (WordNet) has anything to work on: some word is written in Latin script."""
    if vocab.lexicon is None:
        return any(core and _LATIN.search(core) for _, core, _ in parse(text).cores)
    return _english_counts(text, vocab)[1] > 0


@functools.lru_cache(maxsize=PARSE_CACHE)
def _english_counts(text: str, vocab: Vocab) -> tuple[int, int]:
    """(English words, Latin-script words) of a text."""
    words = parse(text).core_words
    try:
        total = sum(map(vocab.english.__getitem__, words))  # a miss raises: no scan for one
    except KeyError:
        total = sum(_english(w, vocab) for w in words)
    return total % _LATIN_WORD, total // _LATIN_WORD


def detect(text: str) -> str:
    """A row's dominant language as an ISO 639-1 code ("und" when nothing can be said): the corpus
    language identifier's script rules and offline model (jobs.hygiene.langid)."""
    from jobs.hygiene import langid  # loads py3langid's bundled model once, on the first row that needs it

    return langid.detect(text)[0]

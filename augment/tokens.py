"""Tokens and segmentation: a text split once into words, the whitespace between them, and each
word's leading and trailing punctuation, for every op, guard and measure that reads it.

Whitespace separates words in most scripts. Chinese and Japanese do not use it, so a run holding
Han or kana characters is segmented into words by jieba (its dictionary ships in the package) and
its words are joined back with nothing between them. No boundary ever falls inside a grapheme
cluster: an emoji sequence with its joiners, a flag, or a letter with its combining marks stays
whole, whatever the segmenter says.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from typing import NamedTuple

import regex

from augment.cache import cache_dir

_GAP = re.compile(r"(\s+)")
# Lead: what comes before the first letter or digit. Trail: what follows the last letter, digit or
# combining mark (a mark belongs to the letter before it, so it never becomes punctuation).
_CORE = regex.compile(r"([^\p{L}\p{N}]*)(.*?)([^\p{L}\p{N}\p{M}]*)\Z", regex.S)
_WORD = regex.compile(r"[\p{L}\p{N}]")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
_GRAPHEME = regex.compile(r"\X", regex.S)
MEMO_LIMIT = 500_000  # entries any per-process memo of the ops holds before it starts over
PARSE_CACHE = 1024  # recent texts whose parse is kept: every row of a chunk the augmenter works on at once


class Parsed(NamedTuple):
    """A text split once for every op, guard and measure that looks at it (cached: a row's copies
    and checks all read the same parse)."""

    words: tuple[str, ...]  # tokens: whitespace-separated, and CJK runs segmented into words
    gaps: tuple[str, ...]  # what lies between them: whitespace, or "" inside a CJK run
    cores: tuple[tuple[str, str, str], ...]  # (leading punctuation, word, trailing punctuation)
    word_flags: tuple[bool, ...]  # the core holds a letter or digit
    n_words: int
    plain: bool  # every gap is one space: joining is one str.join
    cjk: tuple[bool, ...]  # the token holds Han or kana (its words join without spaces)
    core_words: tuple[str, ...]  # the middle of each core: what lexicons and guards look up


# token -> (core split, holds a letter or digit, holds CJK, the core's word)
_cores: dict[str, tuple[tuple[str, str, str], bool, bool, str]] = {}


def _describe(token: str) -> tuple[tuple[str, str, str], bool, bool, str]:
    """What parse keeps of one token, memoized across rows."""
    if len(_cores) >= MEMO_LIMIT:
        _cores.clear()
    core = split_core(token)
    found = _cores[token] = (core, is_word(core[1]), _CJK.search(token) is not None, core[1])
    return found


def _described(words: list[str]) -> list[tuple]:
    try:
        return list(map(_cores.__getitem__, words))  # the hot path: every token of a corpus repeats
    except KeyError:
        return [_cores[w] if w in _cores else _describe(w) for w in words]


_tuple_new = tuple.__new__  # builds a Parsed without the Python-level __new__ a namedtuple calls


@functools.lru_cache(maxsize=PARSE_CACHE)
def parse(text: str) -> Parsed:
    stripped = text.strip()
    words = stripped.split()
    if not words:
        return Parsed((), (), (), (), 0, True, (), ())
    if len(words) == 1 or " ".join(words) == stripped:
        gaps, plain = (" ",) * (len(words) - 1), True
    else:
        parts = _GAP.split(stripped)
        words, gaps, plain = parts[0::2], tuple(parts[1::2]), False
    cores, flags, cjk, core_words = zip(*_described(words))
    if True in cjk:
        words, gaps = segment(words, gaps, cjk)
        gaps = tuple(gaps)
        cores, flags, cjk, core_words = zip(*_described(words))
        plain = False
    return _tuple_new(Parsed, (tuple(words), gaps, cores, flags, flags.count(True), plain, cjk, core_words))


def segment(words: list[str], gaps: list[str], cjk: list[bool]) -> tuple[list[str], list[str]]:
    """Split each whitespace token that holds CJK into its words, with "" between them."""
    out_words, out_gaps = [], []
    for index, (word, is_cjk) in enumerate(zip(words, cjk)):
        if index:
            out_gaps.append(gaps[index - 1])
        pieces = cjk_words(word) if is_cjk else [word]
        out_words.extend(pieces)
        out_gaps.extend([""] * (len(pieces) - 1))
    return out_words, out_gaps


_pieces: dict[str, tuple[str, ...]] = {}


def cjk_words(token: str) -> tuple[str, ...]:
    """A whitespace-free run cut into words: jieba's cuts, kept only where they fall between
    grapheme clusters, with punctuation and symbols joined to the word before them (or, at the
    start, after them), so every piece holds a word as the rest of the ops expect."""
    found = _pieces.get(token)
    if found is not None:
        return found
    boundaries = {m.start() for m in _GRAPHEME.finditer(token)}
    pieces: list[str] = []
    position = 0
    for piece in _jieba().lcut(token):
        if pieces and (position not in boundaries or _WORD.search(piece) is None
                       or _WORD.search(pieces[-1]) is None):
            pieces[-1] += piece  # no cut inside a grapheme, and no piece without a word
        else:
            pieces.append(piece)
        position += len(piece)
    if len(_pieces) >= MEMO_LIMIT:
        _pieces.clear()
    found = _pieces[token] = tuple(pieces)
    return found


@functools.lru_cache(maxsize=1)
def _jieba():
    """jieba, quiet, with its dictionary cache in a folder this user can write (it builds the cache
    on first use; every later process loads it in a fraction of a second)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its pkg_resources import
        import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = str(cache_dir())
    return tokenizer


class Tokens:
    """A mutable copy of a parse: ops edit `words` and `gaps`, then join them back."""

    __slots__ = ("words", "gaps", "plain")

    def __init__(self, text: str = ""):
        parsed = parse(text)
        self.words: list[str] = list(parsed.words)
        self.gaps: list[str] = list(parsed.gaps)
        self.plain = parsed.plain  # ops only ever add single spaces or keep existing gaps

    def text(self) -> str:
        if self.plain:
            return " ".join(self.words)
        out = [self.words[0]] if self.words else []
        for gap, word in zip(self.gaps, self.words[1:]):
            out.append(gap)
            out.append(word)
        return "".join(out)


def split_core(token: str) -> tuple[str, str, str]:
    """(leading punctuation, word, trailing punctuation) of one token."""
    if token.isalpha():
        return "", token, ""
    lead, core, trail = _CORE.match(token).groups()
    return lead, core, trail


def is_word(core: str) -> bool:
    return core.isalnum() or (bool(core) and _WORD.search(core) is not None)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def word_count(text: str) -> int:
    """Tokens holding a letter or digit (what rates and bounds count)."""
    return parse(text).n_words

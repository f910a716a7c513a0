"""The augmentation ops: pure functions `(text, rng, params, vocab) -> text | None`.

Each op edits words and leaves everything else as it was: punctuation stays where it was (a
deleted word's comma moves to its neighbour), the whitespace between kept words is kept, numbers
and stopwords are never replaced, and case follows the word it replaces. In a text that mixes
scripts each part is handled by its own: words move only among words of their script, and an
English synonym is inserted next to English words. An op returns None when the text offers it
nothing to do (no word with a synonym, fewer than two movable words); the caller decides whether
that is worth a note. All randomness comes from the `rng` passed in, so a copy is a function of
its seed alone.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Callable

from augment.params import DeleteOp, InsertOp, ReorderOp, SubstituteOp, _OpBase
from augment.rng import uniforms
from augment.sentences import SENTENCE_END, shuffle_sentences
from augment.tokens import MEMO_LIMIT, PARSE_CACHE, Tokens, is_word, parse, split_core, word_count

# NLTK's English stopword list (the one EDA uses), plus the fragments that apostrophe-stripped text
# leaves ("you re", "i d"): these words carry grammar, not content, so they are never replaced.
STOPWORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is
are was were be been being have has had having do does did doing a an the and but if or because as until
while of at by for with about against between into through during before after above below to from up
down in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don should now
d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn
weren won wouldn n't 's 're 've 'll 'd 'm
""".split())

# Number words are numbers: 'two' -> 'deuce' would change what the text says.
NUMBER_WORDS = frozenset("""
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
billion trillion first second third fourth fifth sixth seventh eighth ninth tenth half dozen
""".split())

LEXICAL = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*\Z")  # what WordNet can know


@dataclass(frozen=True, eq=False)
class Vocab:
    """What the ops consult besides the text: the lexicon (None: lexical ops unavailable), the words
    lexical ops never replace, and the words no op touches at all. Compared by identity: it keys the
    ops' per-text caches, where hashing its word sets on every call would cost more than the work."""

    lexicon: object | None = None
    stopwords: frozenset[str] = STOPWORDS
    protect: frozenset[str] = field(default_factory=frozenset)
    # Memos across rows (results depend on the words alone, never on the memo's state):
    # word -> whether it is English and written in Latin script (the language guard's), and
    # senses -> word -> synonyms, or {class of the word before: synonyms} (the lexical ops').
    english: dict[str, int] = field(default_factory=dict, repr=False)
    slots: dict[int, dict[str, tuple | dict]] = field(default_factory=dict, repr=False)


def edits_for(n_words: int, params: _OpBase) -> int:
    """How many edits an op makes on `n_words` words: rate × words, within [min_edits, max_edits]."""
    count = max(params.min_edits, int(params.rate * n_words))
    return min(count, params.max_edits) if params.max_edits else count


def match_case(source: str, word: str) -> str:
    """Give `word` the case pattern of `source`: UPPER, Title or as is (synonyms are lower case)."""
    if len(source) > 1 and source.isupper():
        return word.upper()
    if source[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


@functools.lru_cache(maxsize=PARSE_CACHE)
def _synonym_slots(text: str, senses: int, vocab: Vocab) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(token index, synonyms) for each token a lexical op may use: a plain word that is neither a
    stopword, a protected word nor a number (digits or words), and has synonyms for the part of
    speech chosen in context (the word before it, tokens of punctuation alone skipped)."""
    lexicon = vocab.lexicon
    if lexicon is None:
        raise ValueError("substitute and insert need the WordNet lexicon")
    memo = vocab.slots.get(senses)
    if memo is None or len(memo) >= MEMO_LIMIT:
        memo = vocab.slots[senses] = {}
    words = parse(text).core_words
    try:
        entries = list(map(memo.__getitem__, words))  # no scan for misses: they raise
    except KeyError:
        entries = [memo[w] if w in memo else _entry(w, senses, memo, vocab) for w in words]
    slots, previous = [], ""
    for index, entry in enumerate(entries):
        if entry:
            if entry.__class__ is dict:  # the part of speech, so the synonyms, depend on the word before
                entry = entry[lexicon.context(previous.lower())]
            if entry:
                slots.append((index, entry))
        if words[index]:
            previous = words[index]
    return tuple(slots)


def _entry(core: str, senses: int, memo: dict, vocab: Vocab) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
    """What a word offers the lexical ops, whatever its neighbours (see `_synonym_slots`)."""
    lower = core.lower()
    found = memo[core] = vocab.lexicon.synonyms_by_context(lower, senses) \
        if core and LEXICAL.match(core) and lower not in vocab.stopwords and lower not in vocab.protect \
        and lower not in NUMBER_WORDS else ()
    return found


def _movable(text: str, vocab: Vocab) -> list[int]:
    """Indices of word tokens that delete and reorder may touch."""
    parsed = parse(text)
    movable = list(itertools.compress(range(len(parsed.word_flags)), parsed.word_flags))
    if vocab.protect:
        movable = [i for i in movable if parsed.core_words[i].lower() not in vocab.protect]
    return movable


# ---- the ops -----------------------------------------------------------------------------------


def substitute(text: str, rng: random.Random, params: SubstituteOp, vocab: Vocab) -> str | None:
    """Replace `edits_for(words)` distinct words with a synonym each, keeping case and punctuation."""
    tokens = Tokens(text)
    slots = _synonym_slots(text, params.senses, vocab)
    if not slots:
        return None
    count = min(edits_for(word_count(text), params), len(slots))
    for index, synonyms in rng.sample(slots, count):
        lead, core, trail = split_core(tokens.words[index])
        tokens.words[index] = lead + match_case(core, rng.choice(synonyms)) + trail
    return tokens.text()


def insert(text: str, rng: random.Random, params: InsertOp, vocab: Vocab) -> str | None:
    """Insert a synonym of a random content word at a random position, `edits_for(words)` times.
    Never before the first word (its capital stays first) nor after closing punctuation."""
    tokens = Tokens(text)
    slots = _synonym_slots(text, params.senses, vocab)
    if not slots:
        return None
    cjk = list(parse(text).cjk) if any(parse(text).cjk) else None
    for _ in range(edits_for(word_count(text), params)):
        index, synonyms = rng.choice(slots)
        source = split_core(tokens.words[index])[1]
        word = rng.choice(synonyms)
        if len(source) > 1 and source.isupper():
            word = word.upper()
        n = len(tokens.words)
        last = n - 1 if tokens.words[-1].endswith(SENTENCE_END) and n > 1 else n
        if cjk is None:
            at = rng.randint(1, max(last, 1))
        else:  # an English word goes after an English word, not into the Chinese
            at = rng.choice([k for k in range(1, max(last, 1) + 1) if not cjk[k - 1]] or [index + 1])
            cjk.insert(at, False)
        tokens.words.insert(at, word)
        tokens.gaps.insert(min(at, n - 1), " ")  # the old gap stays before the new word
        # Inserted words are not themselves sources: slots index the original tokens.
        slots = [(i + (i >= at), s) for i, s in slots]
    return tokens.text()


def reorder(text: str, rng: random.Random, params: ReorderOp, vocab: Vocab) -> str | None:
    """Shuffle the sentences of a multi-sentence text; otherwise swap `edits_for(words)` pairs of
    words at most `window` apart. Punctuation stays in place and sentence-initial capitals follow
    the position, not the word."""
    if params.sentences:
        shuffled = shuffle_sentences(text, rng)
        if shuffled is not None:
            return shuffled
    tokens = Tokens(text)
    movable = _movable(text, vocab)
    if len(movable) < 2:
        return None
    parsed = parse(text)
    cores = [parsed.cores[i] for i in movable]
    if len({c[1] for c in cores}) < 2:
        return None  # every movable word is the same word
    initial = _sentence_initial(tokens, movable)
    order = list(range(len(movable)))
    script = [parsed.cjk[i] for i in movable]
    mixed = len(set(script)) > 1
    for _ in range(edits_for(word_count(text), params)):
        a = rng.randrange(len(order))
        lo, hi = max(0, a - params.window), min(len(order) - 1, a + params.window)
        if mixed:  # a word swaps only with a word of its own script
            partners = [b for b in range(lo, hi + 1) if b != a and script[b] == script[a]]
            if not partners:
                continue
            b = rng.choice(partners)
        else:
            b = rng.randint(lo, hi - 1)
            b += b >= a
        order[a], order[b] = order[b], order[a]
    for slot, source in enumerate(order):
        if slot == source:
            continue
        lead, replaced, trail = cores[slot]
        word = _recase(cores[source][1], initial[source], initial[slot] and replaced[:1].isupper(), vocab)
        tokens.words[movable[slot]] = lead + word + trail
    return tokens.text()


def delete(text: str, rng: random.Random, params: DeleteOp, vocab: Vocab) -> str | None:
    """Drop each word with probability `rate` (at least min_edits, at most max_edits, never all).
    A dropped word's punctuation joins its neighbour; whitespace with a line break is kept."""
    tokens = Tokens(text)
    movable = _movable(text, vocab)
    if len(movable) < 2:
        return None
    cjk = parse(text).cjk
    dropped = [i for i, u in zip(movable, uniforms(rng, len(movable))) if u < params.rate]
    cap = len(movable) - 1
    if params.max_edits:
        cap = min(cap, params.max_edits)
    want = min(params.min_edits, cap)
    if len(dropped) < want:
        chosen = set(dropped)
        rest = [i for i in movable if i not in chosen]
        dropped += rng.sample(rest, want - len(dropped))
    if len(dropped) > cap:
        dropped = rng.sample(dropped, cap)
    gone = set(dropped)
    first_word = movable[0]
    if tokens.plain and all(_bare(tokens.words[i]) for i in gone):
        # Single spaces and no punctuation to move: the common case is a filter.
        words = [token for index, token in enumerate(tokens.words) if index not in gone]
        gaps = tokens.gaps[:len(words) - 1]
    else:
        words, gaps = _without(tokens, gone, cjk)
    if first_word in gone:
        # The sentence's first word went: its capital passes to the new first word.
        source = split_core(tokens.words[first_word])[1]
        for position, token in enumerate(words):
            lead, core, trail = split_core(token)
            if is_word(core):
                if source[:1].isupper() and core[:1].islower():
                    words[position] = lead + core[:1].upper() + core[1:] + trail
                break
    tokens.words, tokens.gaps = words, gaps
    return tokens.text()


def _bare(token: str) -> bool:
    """A token without leading or trailing punctuation (it starts and ends with a letter or digit)."""
    return token[:1].isalnum() and token[-1:].isalnum()


def _without(tokens: Tokens, gone: set[int], cjk: tuple[bool, ...]) -> tuple[list[str], list[str]]:
    """The words and gaps left once the tokens `gone` are dropped, their punctuation passed on."""
    words, gaps, lead_pending = [], [], ""
    last_kept = -1
    for index, token in enumerate(tokens.words):
        if index in gone:
            lead, _, trail = split_core(token)
            lead_pending += lead
            if trail and words:
                words[-1] += trail
            continue
        if words:
            between = tokens.gaps[last_kept:index]
            gap = " " if tokens.plain else max(between, key=lambda g: g.count("\n"))
            if not gap and index > last_kept + 1 and not cjk[last_kept] and not cjk[index]:
                gap = " "  # two English words that a dropped Chinese word stood between
            gaps.append(gap)
        if lead_pending:
            token, lead_pending = lead_pending + token, ""
        words.append(token)
        last_kept = index
    return words, gaps


OPS: dict[str, Callable[..., str | None]] = {
    "substitute": substitute, "insert": insert, "reorder": reorder, "delete": delete,
}


def apply(text: str, rng: random.Random, params: _OpBase, vocab: Vocab) -> str | None:
    return OPS[params.op](text, rng, params, vocab)


def _sentence_initial(tokens: Tokens, movable: list[int]) -> list[bool]:
    starts = []
    for index in movable:
        starts.append(index == 0 or tokens.words[index - 1].endswith(SENTENCE_END))
    return starts


def _recase(word: str, was_initial: bool, takes_capital: bool, vocab: Vocab) -> str:
    """Move a sentence-initial capital with the position: 'The film' swapped reads 'Film the', and
    a capitalized common word leaving the start is lower-cased (names keep their capital)."""
    if takes_capital and not was_initial and word[:1].islower():
        return word[:1].upper() + word[1:]
    if was_initial and not takes_capital and word[:1].isupper() and word[1:].islower() and word != "I":
        lower = word.lower()
        common = lower in vocab.stopwords or (vocab.lexicon is not None and LEXICAL.match(lower)
                                               and vocab.lexicon.known(lower))
        if common:
            return lower
    return word


"""The augmentation ops: pure functions `(text, rng, params, vocab) -> text | None`.

Each op edits words and leaves everything else as it was: punctuation stays where it was (a
deleted word's comma moves to its neighbour), the whitespace between kept words is kept, numbers
and stopwords are never replaced, and case follows the word it replaces. An op returns None when
the text offers it nothing to do (no word with a synonym, fewer than two movable words); the
caller decides whether that is worth a note. All randomness comes from the `rng` passed in, so a
copy is a function of its seed alone.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from typing import Annotated, Callable, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

_GAP = re.compile(r"(\s+)")
_CORE = re.compile(r"(\W*)(.*?)(\W*)\Z", re.S)
_LEXICAL = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*\Z")  # what WordNet can know
_ALNUM = re.compile(r"[^\W_]")
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
_SENTENCE_END = (".", "!", "?")


# ---- params ------------------------------------------------------------------------------------


class _OpBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(0.1, gt=0, le=1, description="fraction of words edited (at least min_edits)")
    min_edits: int = Field(1, ge=1)
    max_edits: int | None = Field(None, ge=1)
    max_edit_rate: float | None = Field(None, gt=0, le=1, description="token edit rate above which a copy is "
                                        "retried then dropped; default 0.5 (reorder: 1.0)")

    @model_validator(mode="after")
    def _edits(self):
        if self.max_edits is not None and self.max_edits < self.min_edits:
            raise ValueError(f"max_edits ({self.max_edits}) must be >= min_edits ({self.min_edits})")
        return self

    @property
    def edit_bound(self) -> float:
        return self.max_edit_rate if self.max_edit_rate is not None else 0.5

    @property
    def needs_lexicon(self) -> bool:
        return False

    @property
    def uses_model(self) -> bool:
        """Backed by a model (loaded once per actor, run batched over a block) rather than rules."""
        return False

    @property
    def seed_sensitive(self) -> bool:
        """Whether another seed can give another output (if not, a duplicate is not retried)."""
        return True


class _ModelOpBase(_OpBase):
    """Settings every model-backed op shares; the model loads as the model stages load theirs."""

    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    batch_size: int = Field(32, gt=0, description="texts per forward pass")

    @property
    def uses_model(self) -> bool:
        return self.model is not None


class SubstituteOp(_OpBase):
    """Replace words with WordNet synonyms of the part of speech the lexicon picks."""

    op: Literal["substitute"]
    senses: int = Field(3, ge=0, description="synonyms come from the word's first N senses (0: all)")

    @property
    def needs_lexicon(self) -> bool:
        return True


class InsertOp(_ModelOpBase):
    """Insert a synonym of a random content word at a random position (EDA's random insertion); with
    `model` (a masked LM), insert a word the model predicts for a mask at a random position instead."""

    op: Literal["insert"]
    senses: int = Field(3, ge=0)
    model: str | None = Field(None, description="masked-LM name or path: contextual insertion")
    top_k: int = Field(5, ge=1, le=100, description="with model: a word is drawn from the model's top_k "
                       "whole-word predictions")

    @property
    def needs_lexicon(self) -> bool:
        return self.model is None


class BackTranslateOp(_ModelOpBase):
    """Translate to a pivot language and back with two translation models (the translate stage's engine)."""

    op: Literal["back_translate"]
    model: str = Field(description="translation model from the text's language to the pivot")
    back_model: str = Field(description="translation model from the pivot back")
    back_revision: str | None = None
    source_lang: str | None = Field(None, description="the text's language code (multilingual models)")
    pivot_lang: str | None = Field(None, description="the pivot's language code (multilingual models)")
    temperature: float = Field(0.0, ge=0, description="0: greedy (one paraphrase per row); > 0: sampled, "
                               "seeded per copy")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, gt=0)
    # float32 keeps a copy independent of its batch; half precision on a GPU is faster, but padding
    # then moves sums at rounding level and a copy may change with the block it ran in.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"

    @property
    def edit_bound(self) -> float:
        # A paraphrase may rewrite every token (and be longer): unbounded unless max_edit_rate says.
        return self.max_edit_rate if self.max_edit_rate is not None else float("inf")

    @property
    def seed_sensitive(self) -> bool:
        return self.temperature > 0


class ReorderOp(_OpBase):
    """Swap words within a window; a text of several sentences has its sentences shuffled instead."""

    op: Literal["reorder"]
    window: int = Field(3, ge=1, description="a word swaps with one at most this many words away")
    sentences: bool = Field(True, description="shuffle sentences when the text has several")

    @property
    def edit_bound(self) -> float:
        # A swap of two words is two token edits and a sentence shuffle moves whole sentences.
        return self.max_edit_rate if self.max_edit_rate is not None else 1.0


class DeleteOp(_OpBase):
    """Drop each word with probability `rate`; at least min_edits, never every word."""

    op: Literal["delete"]


OpSpec = Annotated[Union[SubstituteOp, InsertOp, ReorderOp, DeleteOp, BackTranslateOp], Field(discriminator="op")]


@dataclass(frozen=True)
class Vocab:
    """What the ops consult besides the text: the lexicon (None: lexical ops unavailable), the words
    lexical ops never replace, and the words no op touches at all."""

    lexicon: object | None = None
    stopwords: frozenset[str] = STOPWORDS
    protect: frozenset[str] = field(default_factory=frozenset)
    # word -> 1 English, 0 not, -1 no letters: english_ratio's memo (the lexicon decides, not order)
    english: dict[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)


# ---- tokens ------------------------------------------------------------------------------------


class Parsed(NamedTuple):
    """A text split once for every op, guard and measure that looks at it (cached: a row's copies
    and checks all read the same parse)."""

    words: tuple[str, ...]  # whitespace-separated tokens
    gaps: tuple[str, ...]  # the whitespace between them
    cores: tuple[tuple[str, str, str], ...]  # (leading punctuation, word, trailing punctuation)
    word_flags: tuple[bool, ...]  # the core holds a letter or digit
    n_words: int
    plain: bool  # every gap is one space: joining is one str.join


@functools.lru_cache(maxsize=64)
def parse(text: str) -> Parsed:
    parts = _GAP.split(text.strip())
    words = tuple(parts[0::2]) if parts != [""] else ()
    cores = tuple([split_core(w) for w in words])
    flags = tuple([is_word(c[1]) for c in cores])
    gaps = tuple(parts[1::2])
    return Parsed(words, gaps, cores, flags, sum(flags), all(g == " " for g in gaps))


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
    return core.isalnum() or (bool(core) and _ALNUM.search(core) is not None)


def word_count(text: str) -> int:
    """Tokens holding a letter or digit (what rates and bounds count)."""
    return parse(text).n_words


def english_ratio(text: str, vocab: Vocab) -> float:
    """Share of the words with letters that are English stopwords or WordNet words (1.0 without a
    lexicon or without such words): the cheap language guard in front of the lexical ops."""
    if vocab.lexicon is None:
        return 1.0
    total = known = 0
    for _, core, _ in parse(text).cores:
        if not (core.isalpha() or any(ch.isalpha() for ch in core)):
            continue
        total += 1
        lower = core.lower()
        if lower in STOPWORDS or (_LEXICAL.match(lower) and vocab.lexicon.known(lower)):
            known += 1
    return known / total if total else 1.0


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


@functools.lru_cache(maxsize=16)
def _synonym_slots(text: str, senses: int, vocab: Vocab) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(token index, synonyms) for each token a lexical op may use: a plain word that is neither a
    stopword, a protected word nor a number (digits or words), and has synonyms for the part of
    speech chosen in context."""
    lexicon = vocab.lexicon
    if lexicon is None:
        raise ValueError("substitute and insert need the WordNet lexicon")
    slots, previous = [], ""
    for index, (_, core, _) in enumerate(parse(text).cores):
        lower = core.lower()
        if core and _LEXICAL.match(core) and lower not in vocab.stopwords and lower not in vocab.protect \
                and lower not in NUMBER_WORDS:
            synonyms = lexicon.synonyms_in_context(lower, previous, senses)
            if synonyms:
                slots.append((index, synonyms))
        if core:
            previous = lower
    return tuple(slots)


def _movable(text: str, vocab: Vocab) -> list[int]:
    """Indices of word tokens that delete and reorder may touch."""
    parsed = parse(text)
    return [i for i, (flag, (_, core, _)) in enumerate(zip(parsed.word_flags, parsed.cores))
            if flag and (not vocab.protect or core.lower() not in vocab.protect)]


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
    for _ in range(edits_for(word_count(text), params)):
        index, synonyms = rng.choice(slots)
        source = split_core(tokens.words[index])[1]
        word = rng.choice(synonyms)
        if len(source) > 1 and source.isupper():
            word = word.upper()
        n = len(tokens.words)
        last = n - 1 if tokens.words[-1].endswith(_SENTENCE_END) and n > 1 else n
        at = rng.randint(1, max(last, 1))
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
        shuffled = _shuffle_sentences(text, rng)
        if shuffled is not None:
            return shuffled
    tokens = Tokens(text)
    movable = _movable(text, vocab)
    if len(movable) < 2:
        return None
    cores = [parse(text).cores[i] for i in movable]
    if len({c[1] for c in cores}) < 2:
        return None  # every movable word is the same word
    initial = _sentence_initial(tokens, movable)
    order = list(range(len(movable)))
    for _ in range(edits_for(word_count(text), params)):
        a = rng.randrange(len(order))
        lo, hi = max(0, a - params.window), min(len(order) - 1, a + params.window)
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
    dropped = [i for i in movable if rng.random() < params.rate]
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
            gaps.append(" " if tokens.plain else max(between, key=lambda g: g.count("\n")))
        if lead_pending:
            token, lead_pending = lead_pending + token, ""
        words.append(token)
        last_kept = index
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


OPS: dict[str, Callable[..., str | None]] = {
    "substitute": substitute, "insert": insert, "reorder": reorder, "delete": delete,
}


def apply(text: str, rng: random.Random, params: _OpBase, vocab: Vocab) -> str | None:
    return OPS[params.op](text, rng, params, vocab)


# ---- helpers for reorder -----------------------------------------------------------------------


def split_sentences(text: str) -> tuple[list[str], list[str]]:
    """Sentences and the whitespace between them. A full stop after an abbreviation (Mr., etc.,
    Fig.) or an initial (J. K., U.S., e.g.) does not end a sentence."""
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


def _shuffle_sentences(text: str, rng: random.Random) -> str | None:
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


def _sentence_initial(tokens: Tokens, movable: list[int]) -> list[bool]:
    starts = []
    for index in movable:
        starts.append(index == 0 or tokens.words[index - 1].endswith(_SENTENCE_END))
    return starts


def _recase(word: str, was_initial: bool, takes_capital: bool, vocab: Vocab) -> str:
    """Move a sentence-initial capital with the position: 'The film' swapped reads 'Film the', and
    a capitalized common word leaving the start is lower-cased (names keep their capital)."""
    if takes_capital and not was_initial and word[:1].islower():
        return word[:1].upper() + word[1:]
    if was_initial and not takes_capital and word[:1].isupper() and word[1:].islower() and word != "I":
        lower = word.lower()
        common = lower in vocab.stopwords or (vocab.lexicon is not None and _LEXICAL.match(lower)
                                               and vocab.lexicon.known(lower))
        if common:
            return lower
    return word


# ---- measuring a copy --------------------------------------------------------------------------


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
    a, b = parse(parent).words, child.split()  # the same tokens parse() makes, without caching copies
    return token_edit_distance(a, b) / max(len(a), 1)


def normalize(text: str) -> str:
    """What dedup compares: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())

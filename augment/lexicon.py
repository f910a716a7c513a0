"""The WordNet lookups the augmentation ops use: whether a word is English, the part of speech to
take it as from one word of context, and its synonyms, each memoized per process. They read the
compiled index (`augment.wordnet_index`); WordNet itself is installed by `augment.wordnet_install`."""

from __future__ import annotations

import functools

from augment.wordnet_index import WordNetIndex

# ---- lookups the ops use -----------------------------------------------------------------------

_POS_ORDER = ("n", "v", "a", "r")
# One word of left context is enough to break the commonest ties without a tagger model.
_BEFORE_NOUN = frozenset("the a an this that these those my your his her its our their every each some "
                         "any no another".split())
_BEFORE_VERB = frozenset("to will would can could should shall must might may did does do i we you they "
                         "he she it".split())
_BEFORE_ADJ = frozenset("very so too quite rather really extremely more most less least is are was were "
                        "be been seems seemed".split())
# Left neighbour -> the parts of speech it points to, in order of preference.
_HINTS = {**{w: "na" for w in _BEFORE_NOUN}, **{w: "v" for w in _BEFORE_VERB}, **{w: "ar" for w in _BEFORE_ADJ}}
_HINT_CLASSES = ("", *dict.fromkeys(_HINTS.values()))


class WordNetLexicon:
    """Synonyms and a part of speech per word, from the compiled WordNet index. Lookups are memoized
    per process (the vocabulary of a corpus is small next to its rows); results never depend on the
    memo's state, only on the word and its left neighbour."""

    def __init__(self, index: WordNetIndex):
        self._index = index
        self._pos_memo: dict[str, dict[str, tuple[str, int]]] = {}
        self._syn_memo: dict[tuple[str, str, int], tuple[str, ...]] = {}
        self._known_memo: dict[str, bool] = {}
        self._choice_memo: dict[tuple[str, str], str | None] = {}

    def _forms(self, word: str) -> dict[str, tuple[str, int]]:
        """pos -> (base form, number of senses) for each part of speech WordNet has `word` as."""
        found = self._pos_memo.get(word)
        if found is None:
            # What `len(synsets(word, pos))` and `morphy(word, pos)` give, read from the lemma index
            # alone: building Synset objects for every word a corpus holds is what made a cold worker slow.
            found, wordnet = {}, self._index
            for pos in _POS_ORDER:
                bases = wordnet.morphy(word, pos)
                lemmas = wordnet.lemmas[pos]
                senses = sum(len(lemmas[base]) for base in bases)
                if senses:
                    found[pos] = (bases[0], senses)
            self._pos_memo[word] = found
        return found

    def known(self, word: str) -> bool:
        """Whether WordNet knows `word` (any part of speech, inflections included)."""
        known = self._known_memo.get(word)
        if known is None:
            known = self._known_memo[word] = bool(self._forms(word))
        return known

    def pos(self, word: str, previous: str = "") -> str | None:
        """The part of speech to take `word` as: the left neighbour's hint when WordNet allows it,
        else the one with the most senses (ties in n, v, a, r order)."""
        return self._pos_after(word, self.context(previous))

    def _pos_after(self, word: str, hint: str) -> str | None:
        key = (word, hint)
        if key in self._choice_memo:
            return self._choice_memo[key]
        forms = self._forms(word)
        choice = None
        if forms:
            choice = next((p for p in hint if p in forms), None) if len(forms) > 1 else None
            if choice is None and len(forms) > 1 and word.endswith("ly") and "r" in forms:
                choice = "r"
            if choice is None:
                choice = max(forms, key=lambda p: (forms[p][1], -_POS_ORDER.index(p)))
        self._choice_memo[key] = choice
        return choice

    def _synonyms_after(self, word: str, hint: str, senses: int) -> tuple[str, ...]:
        pos = self._pos_after(word, hint)
        return self.synonyms(word, pos, senses) if pos else ()

    def synonyms_by_context(self, word: str, senses: int = 0) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
        """`synonyms(word, pos(word, previous), senses)` for every left neighbour at once (the ops'
        hot path): the synonyms when they do not depend on the neighbour, else {neighbour class:
        synonyms}, the class being `context(previous)`."""
        found = {hint: self._synonyms_after(word, hint, senses) for hint in _HINT_CLASSES}
        distinct = set(found.values())
        return distinct.pop() if len(distinct) == 1 else found

    @staticmethod
    def context(previous: str) -> str:
        """The class of a left neighbour (lower case) that `synonyms_by_context` keys on."""
        return _HINTS.get(previous, "")

    def synonyms(self, word: str, pos: str, senses: int = 0) -> tuple[str, ...]:
        """Synonyms of lower-case `word` as `pos` from its first `senses` senses (0: all), in sense
        order: multiword lemmas with spaces, proper nouns and the word itself left out, regular
        plurals / third persons re-inflected ('movies' -> 'films'); other inflections get none."""
        key = (word, pos, senses)
        found = self._syn_memo.get(key)
        if found is not None:
            return found
        base = self._forms(word).get(pos, (word, 0))[0]
        suffix = "" if base == word else _regular_suffix(word, base)
        result: dict[str, None] = {}  # ordered and unique; a set's order would vary between processes
        if suffix is not None:
            offsets = self._sense_offsets(base, pos)
            for offset in offsets[:senses] if senses else offsets:
                for lemma in self._lemma_names(pos, offset):
                    candidate = lemma.replace("_", " ")
                    if not _plain_lower(candidate) or candidate == base:
                        continue
                    candidate = _inflect(candidate, suffix, pos)
                    if candidate != word:
                        result[candidate] = None
        found = self._syn_memo[key] = tuple(result)
        return found


    def _sense_offsets(self, word: str, pos: str) -> list[int]:
        """The data-file offsets of `synsets(word, pos)`, in the same order."""
        lemmas = self._index.lemmas[pos]
        return [offset for base in self._index.morphy(word, pos) for offset in lemmas[base]]

    def _lemma_names(self, pos: str, offset: int) -> list[str]:
        """A synset's lemma names (what `synset.lemma_names()` gives, without building the Synset)."""
        return self._index.lemma_names(pos, offset)


def _plain_lower(lemma: str) -> bool:
    return lemma.islower() and all(ch.isalpha() or ch in " -'" for ch in lemma)


def _regular_suffix(word: str, base: str) -> str | None:
    """The regular suffix turning `base` into `word` ('s', 'es', 'ies'), or None when irregular."""
    if word == base + "s":
        return "s"
    if word == base + "es":
        return "es"
    if base.endswith("y") and word == base[:-1] + "ies":
        return "ies"
    return None


def _inflect(phrase: str, suffix: str, pos: str) -> str:
    """Apply a plural / third-person suffix the regular way: to a noun phrase's last word
    ('motion pictures'), to a verb phrase's first ('runs away')."""
    if not suffix:
        return phrase
    words = phrase.split(" ")
    index = 0 if pos == "v" else len(words) - 1
    word = words[index]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        word += "es"
    elif word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        word = word[:-1] + "ies"
    else:
        word += "s"
    words[index] = word
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def default_lexicon() -> WordNetLexicon:
    """The process-wide lexicon (loaded once per worker, from the compiled index)."""
    from augment import wordnet_index

    return WordNetLexicon(wordnet_index.load())

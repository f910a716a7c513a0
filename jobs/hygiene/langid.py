"""Offline language identification for corpus rows: Unicode script rules where a script names its
language, and py3langid's bundled model, restricted to the languages of the row's script, otherwise.

`detect(text)` returns (ISO 639-1 code or "und", score in [0, 1]); the score is the model's
probability times how much of the row is in its dominant script and how long that part is, so
short and mixed rows score lower. `LanguageId.detect_many` scores a whole batch with numpy, walking
the model's byte automaton over all rows at once, which is several times faster than row by row.
"""

from __future__ import annotations

import copy
import functools
import unicodedata
from typing import NamedTuple

import numpy as np
import regex

UNDETERMINED = "und"
MIN_LETTERS = 3  # fewer letters than this say nothing about a language
FULL_LENGTH = 24  # weighted letters (about five words, or eight CJK characters) for full confidence
MAX_CHARS = 2000  # the head of a long row decides its language: the model walks every byte it gets
CJK_WEIGHT = 3  # a Han, kana or Hangul character carries about as much as three alphabetic letters
BATCH_ROWS = 2048  # rows walked together: bounds the (bytes x rows) feature grid

# Scripts that name their language outright.
SCRIPT_LANGUAGE = {
    "Hangul": "ko", "Thai": "th", "Greek": "el", "Hebrew": "he", "Georgian": "ka", "Armenian": "hy",
    "Tamil": "ta", "Telugu": "te", "Kannada": "kn", "Malayalam": "ml", "Gujarati": "gu", "Gurmukhi": "pa",
    "Sinhala": "si", "Khmer": "km", "Lao": "lo", "Myanmar": "my", "Ethiopic": "am", "Oriya": "or",
}
# Scripts shared by several languages: the model chooses among these. Latin is limited to widely
# written languages so that regional neighbours (Galician, Aragonese, Afrikaans) do not take rows
# of their large relatives; pass `languages=` to LanguageId to widen or narrow a script's set.
SCRIPT_CANDIDATES = {
    "Latin": ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "sk", "hu", "ro",
              "hr", "bs", "sl", "lt", "lv", "et", "ca", "eu", "sq", "is", "ga", "cy", "mt", "tr", "az", "uz",
              "id", "ms", "vi", "tl", "sw", "ha", "yo", "ig", "zu", "xh", "so", "mg", "rw"),
    "Cyrillic": ("ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn", "tg", "tt", "ba"),
    "Arabic": ("ar", "fa", "ur", "ps", "ug"),
    "Devanagari": ("hi", "mr", "ne"),
    "Bengali": ("bn", "as"),
}
# Letters that a Cyrillic alphabet lacks: a row using one of them is not in that language.
_CYRILLIC_FOREIGN = {
    "ru": "ґєіїўђјљњћџѓќѕәғқңөұүһ",
    "uk": "ёыэъўђјљњћџѓќѕәғқңөұүһ",
    "be": "ищъґєїђјљњћџѓќѕәғқңөұүһ",
    "bg": "ёыэґєіїўђјљњћџѓќѕәғқңөұүһ",
    "sr": "йщъыьэюяёґєіїўѓќѕәғқңөұүһ",
    "mk": "йщъыьэюяёґєіїўђћәғқңөұүһ",
}

_URL_EMAIL = regex.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.-]+")
_DIGITS = regex.compile(r"\d+")
_NOT_ASCII_LETTERS = regex.compile(r"[^A-Za-z]+")
_NOT_LETTERS = regex.compile(r"\P{L}+")  # len(sub("", text)) counts letters faster than findall
_KANA = r"\p{Hiragana}\p{Katakana}ー"  # the long-vowel mark is Common script, but only Japanese uses it
_SCRIPTS = ("Latin", "Cyrillic", "Han", "Kana", "Arabic", "Devanagari", "Bengali", *SCRIPT_LANGUAGE)
_OTHER = len(_SCRIPTS)  # letters of any other script
_CLASSES = [f"[{_KANA}]" if script == "Kana" else rf"\p{{{script}}}" for script in _SCRIPTS]
# One pass over a mixed row: each run of one script's letters is a match; its group names the script.
_RUNS = regex.compile("|".join(f"({cls}+)" for cls in _CLASSES) + r"|(\p{L}+)")
# A letter of any script but this one: absent in a single-script row, the common case.
_FOREIGN = [regex.compile(rf"(?V1)[\p{{L}}--{cls}]") for cls in _CLASSES]
_WIDE = tuple(_SCRIPTS[g] in ("Han", "Kana", "Hangul") for g in range(_OTHER)) + (False,)
_LATIN, _HAN, _KANA_GROUP = (_SCRIPTS.index(script) for script in ("Latin", "Han", "Kana"))


class _Ask(NamedTuple):
    """A row for the model: its candidate languages, the text it sees, and the factor on its score."""

    codes: tuple[str, ...]
    text: str
    factor: float


@functools.lru_cache(maxsize=1)
def _base_identifier():
    """py3langid's bundled model with normalised probabilities, loaded once per process."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _usable(text) -> str:
    """`text` as a str that encodes to UTF-8 (lone surrogates replaced), cut to MAX_CHARS."""
    if not isinstance(text, str):
        return ""
    text = text[:MAX_CHARS]
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _model_bytes(text: str) -> bytes:
    """The bytes py3langid scores for a text: shouting lower-cased, NFC, UTF-8."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf-8")


def _factor(mix: float, letters: float) -> float:
    """How far to trust a row: the share in its dominant script times how long that part is."""
    return mix * min(1.0, letters / FULL_LENGTH)


class LanguageId:
    """The loaded model, with one py3langid identifier per candidate set (copies of one instance
    sharing its arrays, so that nothing leaks into py3langid's global identifier)."""

    def __init__(self, languages: dict[str, tuple[str, ...]] | None = None):
        base = _base_identifier()
        self.candidates = {script: tuple(codes) for script, codes in {**SCRIPT_CANDIDATES, **(languages or {})}.items()}
        self._identifiers: dict[tuple[str, ...], object] = {}
        for codes in self.candidates.values():
            self._identifier(codes)  # now, so that an unknown code fails here rather than on a row
        self._next_state = np.asarray(base.tk_nextmove)  # a view of the automaton, not a copy
        self._row_offset = np.asarray(base.tk_row).astype(np.intp) << 8
        self._feature_of = np.asarray(base.tk_output, dtype=np.int32)
        self._features = base.nb_ptc.shape[0]

    def _identifier(self, codes: tuple[str, ...]):
        """py3langid's identifier restricted to `codes`, made once per candidate set."""
        identifier = self._identifiers.get(codes)
        if identifier is None:
            identifier = copy.copy(_base_identifier())
            identifier.set_languages(list(codes))
            # Row-contiguous, as the full table is: scoring gathers one row per feature.
            identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc)
            self._identifiers[codes] = identifier
        return identifier

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code or "und", score in [0, 1]) of one row."""
        plan = self._plan(text)
        if not isinstance(plan, _Ask):
            return plan
        code, probability = self._identifier(plan.codes).classify(plan.text)
        return code, round(probability * plan.factor, 4)

    def detect_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """detect() over a batch (an Arrow batch's text column); None and non-strings are "und"."""
        results: list = [self._plan(text) for text in texts]
        asks: dict[tuple[str, ...], list[int]] = {}
        for row, plan in enumerate(results):
            if isinstance(plan, _Ask):
                asks.setdefault(plan.codes, []).append(row)
        for codes, rows in asks.items():
            identifier = self._identifier(codes)
            for start in range(0, len(rows), BATCH_ROWS):
                chunk = rows[start:start + BATCH_ROWS]
                found = self._classify_batch(identifier, [results[row].text for row in chunk])
                for row, (code, probability) in zip(chunk, found):
                    results[row] = (code, round(probability * results[row].factor, 4))
        return results

    def _plan(self, text) -> tuple[str, float] | _Ask:
        """A row's answer where its scripts settle it, or what to ask the model."""
        text = _usable(text)
        if "@" in text or "://" in text or "www." in text:
            text = _URL_EMAIL.sub(" ", text)
        text = _DIGITS.sub(" ", text)
        if text.isascii():
            letters = len(_NOT_ASCII_LETTERS.sub("", text))
            if letters < MIN_LETTERS:
                return UNDETERMINED, 0.0
            return _Ask(self.candidates["Latin"], text, _factor(1.0, letters))
        first = _RUNS.search(text)
        if first is None:
            return UNDETERMINED, 0.0
        group = first.lastindex - 1
        if group < _OTHER and _FOREIGN[group].search(text, first.end()) is None:  # one script only
            letters = len(_NOT_LETTERS.sub("", text[first.start():]))
            weight = letters * CJK_WEIGHT if _WIDE[group] else letters
            if weight < MIN_LETTERS:
                return UNDETERMINED, 0.0
            if group == _KANA_GROUP:
                return "ja", round(_factor(1.0, weight), 4)
            return self._by_script(text, group, weight, 1.0, 0)
        weights = [0] * (_OTHER + 1)
        runs = []
        for match in _RUNS.finditer(text):
            group = match.lastindex - 1
            size = match.end() - match.start()
            weights[group] += size * CJK_WEIGHT if _WIDE[group] else size
            runs.append((match.start(), match.end(), group))
        total = sum(weights)
        if total < MIN_LETTERS:
            return UNDETERMINED, 0.0
        kana = weights[_KANA_GROUP]
        # Han and kana count together: Japanese writes both, so neither alone is its dominant script.
        weights[_HAN] += kana
        weights[_KANA_GROUP] = 0
        # On a tie the other script wins: Latin words in such rows are mostly names and terms.
        group = max(range(len(weights)), key=lambda g: (weights[g], g != _LATIN))
        dominant = weights[group]
        mix = dominant / total
        if mix < 1.0 and group != _HAN:  # the model sees the dominant script's words only, punctuation kept
            parts, at = [], 0
            for start, end, run_group in runs:
                if run_group != group:
                    parts += (text[at:start], " ")
                    at = end
            parts.append(text[at:])
            text = "".join(parts)
        return self._by_script(text, group, dominant, mix, kana)

    def _by_script(self, text, group, dominant, mix, kana):
        """The answer for a row whose dominant script is `group`, or what to ask the model."""
        if group == _HAN:  # Han and kana together
            if kana * 20 >= dominant:  # kana is a twentieth or more of the CJK letters: Japanese
                return "ja", round(_factor(mix, dominant), 4)
            return "zh", round(0.98 * _factor(mix, dominant), 4)  # a short kanji-only row could be Japanese
        if group == _OTHER:  # a script the model was not trained on
            return UNDETERMINED, 0.0
        script = _SCRIPTS[group]
        if script in SCRIPT_LANGUAGE:
            return SCRIPT_LANGUAGE[script], round(_factor(mix, dominant), 4)
        codes = self._cyrillic(text) if script == "Cyrillic" else self.candidates[script]
        return _Ask(codes, text, _factor(mix, dominant))

    def _cyrillic(self, text: str) -> tuple[str, ...]:
        """The Cyrillic candidates whose alphabets hold every letter of the row (all if none do)."""
        letters = set(text.lower())
        codes = self.candidates["Cyrillic"]
        kept = tuple(code for code in codes if letters.isdisjoint(_CYRILLIC_FOREIGN.get(code, "")))
        return kept or codes

    def _feature_counts(self, encoded: list[bytes]):
        """(row, feature, count) of the model's byte n-gram features: py3langid's automaton walked
        over every row at once, one byte position per numpy step, longest rows first."""
        lengths = np.fromiter(map(len, encoded), dtype=np.intp, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        width = int(lengths[0]) if len(lengths) else 0
        grid = np.zeros((len(encoded), width), dtype=np.uint8)
        grid[np.arange(width) < lengths[:, None]] = np.frombuffer(b"".join(encoded[i] for i in order), np.uint8)
        grid = np.ascontiguousarray(grid.T)
        active = np.searchsorted(-lengths, -np.arange(width), side="left")  # rows longer than each position
        states = np.zeros(len(encoded), dtype=np.intp)
        features = np.full((width, len(encoded)), -1, dtype=np.int32)
        for at in range(width):
            live = active[at]
            moved = self._next_state[self._row_offset[states[:live]] + grid[at, :live]]
            states[:live] = moved
            features[at, :live] = self._feature_of[moved]
        positions, rows = np.nonzero(features >= 0)
        keys = order[rows].astype(np.int64) * self._features + features[positions, rows]
        keys, counts = np.unique(keys, return_counts=True)
        return keys // self._features, keys % self._features, counts

    def _classify_batch(self, identifier, texts: list[str]) -> list[tuple[str, float]]:
        """identifier.classify() for each text, the same arithmetic done for all of them at once."""
        encoded = [_model_bytes(text) for text in texts]
        rows, features, counts = self._feature_counts(encoded)
        scores = np.zeros((len(texts), len(identifier.nb_classes)), dtype=np.float32)
        if len(rows):
            weighted = identifier.nb_ptc[features].astype(np.float32) * np.log1p(counts.astype(np.float32))[:, None]
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            scores[rows[starts]] = np.add.reduceat(weighted, starts, axis=0) + identifier.nb_pc
        # A softmax at temperature sqrt(bytes), as py3langid calibrates its probabilities.
        scores /= np.sqrt(np.maximum(np.fromiter(map(len, encoded), np.float32, len(encoded)), 1))[:, None]
        np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        classes = identifier.nb_classes
        first = {}
        for column, code in enumerate(classes):  # a label with two columns (Serbian's two scripts) sums them
            if code in first:
                scores[:, first[code]] += scores[:, column]
                scores[:, column] = 0.0
            else:
                first[code] = column
        best = scores.argmax(axis=1)
        return [(classes[column], float(scores[row, column])) for row, column in enumerate(best.tolist())]


@functools.lru_cache(maxsize=1)
def default() -> LanguageId:
    """The process's shared LanguageId, built on first use."""
    return LanguageId()


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code or "und", score in [0, 1]) of a row's dominant language; never raises."""
    return default().detect(text)

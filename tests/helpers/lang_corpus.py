"""A labelled multilingual set of real sentences: the translated messages of the gettext catalogs that
Debian installs under /usr/share/locale, for measuring language identification offline.

FOURTEEN are languages with 50-90 catalogs on a Debian machine: English (the msgids), Chinese
(zh_CN and zh_TW), Japanese, Korean, Russian, Ukrainian, German, French, Spanish, Italian,
Portuguese (pt and pt_BR), Dutch, Swedish and Polish. Messages are software text (errors, options,
menus), so they carry technical English terms: a fair, hard domain for a language identifier.
This machine also has catalogs for cs, da, fi, hu, ro, tr, vi, id, el, bg, sr, be (35-70 each) and
he, ar, fa, th, hi, kk (15-30), which `langs=` takes as they are (one locale folder each).
"""

from __future__ import annotations

import functools
import gettext
import random
from pathlib import Path

import regex

LOCALE_DIR = Path("/usr/share/locale")
FOURTEEN = ("en", "zh", "ja", "ko", "ru", "uk", "de", "fr", "es", "it", "pt", "nl", "sv", "pl")
# Locale folders per language; English comes from the msgids of the catalogs of the others.
LOCALES = {"zh": ("zh_CN", "zh_TW"), "pt": ("pt", "pt_BR")}
CJK = frozenset({"zh", "ja", "ko"})
# Lists of country, language and currency names: names, not sentences in the catalog's language.
SKIP_CATALOGS = ("iso_",)
MAX_CHARS = 400  # longer messages are help pages, not sentences

_MARKUP = regex.compile(r"<[^<>]{1,80}>|&(?:[a-z]+|#\d+);")
_PLACEHOLDER = regex.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|ll|[hlLqjzt])?[diouxXeEfFgGaAcspnmS%]"  # printf
    r"|%[A-Z]|%\([a-z_]+\)[a-z]|%\{[^}]*\}|\$\{[^}]*\}|\{[^{}]*\}|@[A-Z_]+@|\$[A-Za-z_]+")
# URLs, emails, paths, command-line options, escapes and code identifiers (snake_case, dotted names).
_NOISE = regex.compile(r"https?://\S+|\S+@\S+\.\S+|(?<!\w)(?:/|~/|\./)[\w./-]*|(?<!\w)--?[\w-]+|\\\S*"
                       r"|\b\w*_\w*\b|\b\w+(?:\.\w+)+\(?\)?")
_ACCELERATOR = regex.compile(r"(?<![\w&])[_&](?=\w)|\(_?\p{L}\)|\(&\p{L}\)")
# Quote and bracket pairs left empty once their placeholder is gone.
_EMPTY_PAIR = regex.compile(r"[\"'`«»“‘„「『（(\[]\s*[\"'«»“”‘’」』）)\]]")
_SPACE = regex.compile(r"\s+")
_LETTER = regex.compile(r"\p{L}")
_LATIN = regex.compile(r"\p{Latin}")
NATIVE_SCRIPT = {"zh": regex.compile(r"\p{Han}"), "ja": regex.compile(r"[\p{Hiragana}\p{Katakana}\p{Han}]"),
                 "ko": regex.compile(r"\p{Hangul}"), "ru": regex.compile(r"\p{Cyrillic}"),
                 "uk": regex.compile(r"\p{Cyrillic}")}


def clean(message: str) -> str:
    """A catalog message as plain text: no markup, format placeholders, accelerators, options or paths."""
    text = _MARKUP.sub(" ", message)
    text = _PLACEHOLDER.sub(" ", text)
    text = _NOISE.sub(" ", text)
    text = _ACCELERATOR.sub("", text)
    text = _EMPTY_PAIR.sub(" ", text)
    return _SPACE.sub(" ", text).strip(" :;,.-*[]()\"'")


def in_script(text: str, lang: str) -> bool:
    """Whether a message is written in its language's script at all: an untranslated English
    message in a Korean catalog is not Korean text."""
    script = NATIVE_SCRIPT.get(lang)
    return script is None or len(script.findall(text)) >= 2


def long_enough(text: str, lang: str) -> bool:
    """A sentence rather than a label: 4 words, or 8 letters in Chinese, Japanese and Korean."""
    if lang in CJK:
        return len(_LETTER.findall(text)) >= 8 and in_script(text, lang)
    return len(text.split()) >= 4 and len(_LETTER.findall(text)) >= 12 and in_script(text, lang)


def short_enough(text: str, lang: str) -> bool:
    """A 2-3 word message (3-7 letters in Chinese, Japanese and Korean)."""
    if lang in CJK:
        return 3 <= len(_LETTER.findall(text)) <= 7 and in_script(text, lang)
    return 2 <= len(text.split()) <= 3 and len(_LETTER.findall(text)) >= 5 and in_script(text, lang)


@functools.lru_cache(maxsize=None)
def _catalog_pairs(locale: str) -> tuple[tuple[str, str], ...]:
    """(msgid, msgstr) of every translated message of a locale's catalogs, in a fixed order."""
    pairs = []
    for path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.mo")):
        if path.name.startswith(SKIP_CATALOGS):
            continue
        try:
            with path.open("rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, ValueError, LookupError):
            continue  # a catalog in another encoding or a broken file: the others suffice
        for key, translation in catalog.items():
            source = (key[0] if isinstance(key, tuple) else key).rpartition("\x04")[2]  # less its msgctxt
            if source and translation and translation != source and len(translation) <= MAX_CHARS:
                pairs.append((source, translation))
    return tuple(pairs)


@functools.lru_cache(maxsize=None)
def messages(lang: str) -> frozenset[str]:
    """Every distinct raw message of a language; English from the other languages' msgids."""
    if lang == "en":
        return frozenset(source for other in FOURTEEN if other != "en"
                         for locale in LOCALES.get(other, (other,)) for source, _ in _catalog_pairs(locale))
    return frozenset(text for locale in LOCALES.get(lang, (lang,)) for _, text in _catalog_pairs(locale))


@functools.lru_cache(maxsize=4)
def _labelled_pool(langs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Messages per language, sorted, less those that also occur under another language (such as
    a Japanese message written in kanji only that a Chinese catalog has too)."""
    counts: dict[str, int] = {}
    for lang in langs:
        for text in messages(lang):
            counts[text] = counts.get(text, 0) + 1
    return {lang: tuple(sorted(text for text in messages(lang) if counts[text] == 1)) for lang in langs}


def available(langs=FOURTEEN) -> tuple[str, ...]:
    """The languages of `langs` with catalogs on this machine."""
    return tuple(lang for lang in langs if lang == "en" or any(
        (LOCALE_DIR / locale / "LC_MESSAGES").is_dir() for locale in LOCALES.get(lang, (lang,))))


def _sample(pool: tuple[str, ...], keep, count: int, rng: random.Random) -> list[str]:
    """Up to `count` distinct cleaned messages that `keep` accepts, in a random order: only the
    messages looked at get cleaned, so a small sample of a large pool is quick."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    chosen: dict[str, None] = {}
    for index in order:
        if len(chosen) >= count:
            break
        text = clean(pool[index])
        if text and keep(text):
            chosen.setdefault(text)
    return list(chosen)


def labelled_sentences(langs=FOURTEEN, per_lang: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """(text, ISO 639-1 code): up to `per_lang` sentences of each language, shuffled; fixed by `seed`."""
    langs = available(tuple(langs))
    pools = _labelled_pool(langs)
    rows = []
    for lang in langs:
        rng = random.Random(f"{seed}:{lang}")
        keep = functools.partial(long_enough, lang=lang)
        rows += [(text, lang) for text in _sample(pools[lang], keep, per_lang, rng)]
    random.Random(seed).shuffle(rows)
    return rows


def code_mixed_chinese(count: int = 100, seed: int = 0) -> list[tuple[str, str]]:
    """Chinese sentences with a short English phrase inserted at a random point, labelled zh: the
    way Chinese technical text quotes English terms."""
    pools = _labelled_pool(available(FOURTEEN))
    rng = random.Random(f"{seed}:mixed")
    chinese = _sample(pools["zh"], lambda t: long_enough(t, "zh") and not _LATIN.search(t), count, rng)
    phrases = _sample(pools["en"], lambda t: 2 <= len(t.split()) <= 3 and regex.fullmatch(r"[A-Za-z ]+", t) is not None,
                      count, rng)
    rows = []
    for text, phrase in zip(chinese, phrases):
        at = rng.randrange(1, len(text))
        rows.append((f"{text[:at]} {phrase} {text[at:]}", "zh"))
    return rows


def short_messages(langs=FOURTEEN, per_lang: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """2-3 word messages (menu items, labels) of each language: too short to be sure of."""
    langs = available(tuple(langs))
    pools = _labelled_pool(langs)
    rows = []
    for lang in langs:
        rng = random.Random(f"{seed}:{lang}:short")
        keep = functools.partial(short_enough, lang=lang)
        rows += [(text, lang) for text in _sample(pools[lang], keep, per_lang, rng)]
    return rows


def mixed_sentences(langs=FOURTEEN, count: int = 100, per_lang_short: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """The harder slice: code-mixed Chinese rows (label zh) plus short messages of each language."""
    return code_mixed_chinese(count, seed) + short_messages(langs, per_lang_short, seed)

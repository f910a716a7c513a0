"""Real sentences in fourteen languages from the gettext catalogs Debian installs under
/usr/share/locale, frozen into tests/data/lang_sentences.json.gz so that the language id tests and
benchmark read the same text on every machine (the catalogs present change with the packages a
machine has). Run `python -m tests.helpers.gettext_catalogs` to freeze them again.

FOURTEEN are languages with 50-90 catalogs on a Debian machine: English (the msgids), Chinese
(zh_CN and zh_TW), Japanese, Korean, Russian, Ukrainian, German, French, Spanish, Italian,
Portuguese (pt and pt_BR), Dutch, Swedish and Polish. Messages are software text (errors, options,
menus), so they carry technical English terms: a fair, hard domain for a language identifier.
"""

from __future__ import annotations

import functools
import gettext
import gzip
import json
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
    text = _ACCELERATOR.sub("", text)  # before the identifiers go, or "_Save" would go with them
    text = _NOISE.sub(" ", text)
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




FROZEN = Path(__file__).resolve().parents[1] / "data" / "lang_sentences.json.gz"
SENTENCES, SHORT, PHRASES = 500, 80, 300  # per language, per language, English phrases


def _is_phrase(text: str) -> bool:
    """A 2-3 word English phrase of plain letters, to insert into a Chinese sentence."""
    return 2 <= len(text.split()) <= 3 and regex.fullmatch(r"[A-Za-z ]+", text) is not None


def freeze(path: Path = FROZEN, langs=FOURTEEN, sentences: int = SENTENCES, short: int = SHORT,
           phrases: int = PHRASES) -> dict:
    """Sample cleaned sentences, short messages and English phrases of each language from this
    machine's catalogs and write them, with where they came from, as gzipped JSON."""
    missing = set(langs) - set(available(tuple(langs)))
    if missing:
        raise SystemExit(f"no gettext catalogs under {LOCALE_DIR} for: {', '.join(sorted(missing))}")
    pools = _labelled_pool(tuple(langs))
    frozen = {"source": f"translated messages of the gettext catalogs (*.mo) under {LOCALE_DIR} of a "
                        "Debian 12 machine, cleaned of markup, placeholders, options and paths",
              "catalogs": {lang: sum(len(list((LOCALE_DIR / loc / "LC_MESSAGES").glob("*.mo")))
                                     for loc in LOCALES.get(lang, (lang,))) for lang in langs if lang != "en"},
              "langs": {}}
    for lang in langs:
        rng = random.Random(f"freeze:{lang}")
        frozen["langs"][lang] = {
            "sentences": _sample(pools[lang], functools.partial(long_enough, lang=lang), sentences, rng),
            "short": _sample(pools[lang], functools.partial(short_enough, lang=lang), short, rng)}
    if "en" in langs:
        frozen["phrases"] = _sample(pools["en"], _is_phrase, phrases, random.Random("freeze:phrases"))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(frozen, ensure_ascii=False, indent=0, sort_keys=True)
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))  # same bytes each time
    return frozen


if __name__ == "__main__":
    done = freeze()
    print(f"{FROZEN}: " + ", ".join(f"{lang} {len(v['sentences'])}+{len(v['short'])}"
                                     for lang, v in done["langs"].items()) + f", {len(done.get('phrases', []))} phrases")

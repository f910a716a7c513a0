"""Offline WordNet: Debian's `wordnet-base` + `wordnet-sense-index` files laid out where NLTK reads
them, a preflight that fails fast in one line, a guard that makes any NLTK download an error, and
the synonym / part-of-speech lookups the augmentation ops use.

Layout: `<data dir>/corpora/wordnet/` holds the 14 Debian files plus `lexnames`, which Debian does
not ship and NLTK's reader opens first. The data dir is `$RAYBATCH_NLTK_DATA`, else
`<sys.prefix>/nltk_data` (the venv): NLTK searches that folder by default and every Ray worker runs
the same interpreter, so nobody has to set NLTK_DATA. NLTK 3.10 refuses symlinks that leave the
corpus root, so the files are copied, not linked.

`python -m augment.lexicon install` (run by `make setup`) apt-installs the packages when missing
and lays the files out; `python -m augment.lexicon check` says whether it worked. Without Debian,
point `$RAYBATCH_WORDNET_DIR` at any WordNet 3.0 `dict/` folder instead of /usr/share/wordnet.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import sys
import threading
import uuid
import warnings
from pathlib import Path

from jobs.errors import SpecError

DEBIAN_DIR = Path("/usr/share/wordnet")
PACKAGES = ("wordnet-base", "wordnet-sense-index")
# What NLTK's WordNetCorpusReader opens, besides `lexnames` (written below).
DEBIAN_FILES = ("cntlist.rev", "index.sense", "index.adj", "index.adv", "index.noun", "index.verb",
                "data.adj", "data.adv", "data.noun", "data.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc")
INSTALL_HINT = ("install it with `python -m augment.lexicon install` (or `make setup`), which runs "
                "`apt-get install -y wordnet-base wordnet-sense-index` and lays the files out for NLTK")

# WordNet 3.0's lexicographer file names (lexnames(5WN)): number, name, syntactic category.
_LEXNAMES = """adj.all 3|adj.pert 3|adv.all 4|noun.Tops 1|noun.act 1|noun.animal 1|noun.artifact 1|
noun.attribute 1|noun.body 1|noun.cognition 1|noun.communication 1|noun.event 1|noun.feeling 1|noun.food 1|
noun.group 1|noun.location 1|noun.motive 1|noun.object 1|noun.person 1|noun.phenomenon 1|noun.plant 1|
noun.possession 1|noun.process 1|noun.quantity 1|noun.relation 1|noun.shape 1|noun.state 1|noun.substance 1|
noun.time 1|verb.body 2|verb.change 2|verb.cognition 2|verb.communication 2|verb.competition 2|
verb.consumption 2|verb.contact 2|verb.creation 2|verb.emotion 2|verb.motion 2|verb.perception 2|
verb.possession 2|verb.social 2|verb.stative 2|verb.weather 2|adj.ppl 3"""


class LexiconMissing(SpecError):
    """WordNet is not installed where the augmentation ops look for it (exit code 2, one line)."""


class DownloadBlocked(RuntimeError):
    """Something tried to download NLTK data at run time; raybatch never downloads."""


def lexnames_text() -> str:
    entries = [e.strip() for e in _LEXNAMES.replace("\n", "").split("|")]
    return "".join(f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in
                   enumerate(e.split() for e in entries))


def source_dir() -> Path:
    """Where WordNet's dict files are installed: $RAYBATCH_WORDNET_DIR, else Debian's folder."""
    return Path(os.environ.get("RAYBATCH_WORDNET_DIR") or DEBIAN_DIR)


def data_dir() -> Path:
    """The NLTK data folder raybatch reads: $RAYBATCH_NLTK_DATA, else the venv's `nltk_data`."""
    return Path(os.environ.get("RAYBATCH_NLTK_DATA") or Path(sys.prefix) / "nltk_data")


def wordnet_root(base: Path | None = None) -> Path:
    return (base or data_dir()) / "corpora" / "wordnet"


def missing_files(root: Path) -> list[str]:
    """Files NLTK needs that `root` lacks (or holds empty)."""
    wanted = (*DEBIAN_FILES, "lexnames")
    return [name for name in wanted if not (root / name).is_file() or (root / name).stat().st_size == 0]


def _debian_missing(source: Path) -> list[str]:
    return [name for name in DEBIAN_FILES if not (source / name).is_file()]


def apt_install() -> None:
    """apt-get install the Debian packages, as root or through passwordless sudo."""
    if shutil.which("apt-get") is None:
        raise LexiconMissing("WordNet is missing and this system has no apt-get; copy WordNet 3.0's dict "
                             "files into a folder and set RAYBATCH_WORDNET_DIR to it")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise LexiconMissing(f"WordNet is missing: run `sudo apt-get install -y {' '.join(PACKAGES)}` "
                                 f"then `python -m augment.lexicon install`")
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env).returncode != 0:
        # A fresh machine often has no package lists yet.
        subprocess.run([*prefix, "apt-get", "update"], env=env, check=False)
        if subprocess.run(install, env=env).returncode != 0:
            raise LexiconMissing(f"`{' '.join(install)}` failed; install {' and '.join(PACKAGES)} and rerun "
                                 f"`python -m augment.lexicon install`")


def install(source: Path | None = None, base: Path | None = None, apt: bool = True) -> Path:
    """Lay WordNet out under `base` (default: data_dir()) for NLTK; apt-install it first when `apt`
    and the Debian files are missing. Idempotent, and atomic: a half-copied folder is never used."""
    root = wordnet_root(base)
    if not missing_files(root):
        return root
    source = source or source_dir()
    if _debian_missing(source) and apt and source == DEBIAN_DIR:
        apt_install()
    absent = _debian_missing(source)
    if absent:
        raise LexiconMissing(f"WordNet files missing in {source} ({', '.join(absent[:3])}): {INSTALL_HINT}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".wordnet.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in DEBIAN_FILES:
            shutil.copyfile(source / name, tmp / name)
        (tmp / "lexnames").write_text(lexnames_text(), encoding="ascii")
        if root.exists():
            if not missing_files(root):  # another process laid it out meanwhile
                return root
            shutil.rmtree(root)  # an incomplete earlier layout
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first
            if missing_files(root):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def check() -> Path:
    """Return the WordNet folder, laying it out from Debian's files if only that step is missing;
    raise LexiconMissing (one line saying what to install) when WordNet is nowhere on this machine."""
    root = wordnet_root()
    if not missing_files(root):
        return root
    if not _debian_missing(source_dir()):
        try:
            return install(apt=False)
        except OSError as exc:
            raise LexiconMissing(f"cannot lay WordNet out in {root}: {exc}; set RAYBATCH_NLTK_DATA to a "
                                 f"writable folder") from None
    raise LexiconMissing(f"WordNet not found ({root} lacks {', '.join(missing_files(root)[:3])}): {INSTALL_HINT}")


# ---- no downloads, ever ------------------------------------------------------------------------

_GUARD_LOCK = threading.Lock()


def _refuse_download(*args, **kwargs):
    what = args[0] if args else kwargs.get("info_or_id", "data")
    raise DownloadBlocked(f"raybatch never downloads NLTK data (asked for {what!r}); WordNet comes from "
                          f"the Debian packages: {INSTALL_HINT}")


def wordnet_pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    """Penn-style tags from WordNet alone (no tagger model exists offline): the context-aware
    WordNet choice of `WordNetLexicon.pos`, mapped to NN/VB/JJ/RB; words WordNet lacks get 'DT'
    when they are stopwords (nlpaug skips DT) else 'NN'."""
    from augment.ops import STOPWORDS  # the ops own the stopword list

    lexicon = default_lexicon()
    tags, previous = [], ""
    for token in tokens:
        lower = token.lower()
        pos = None if lower in STOPWORDS else lexicon.pos(lower, previous)
        tags.append((token, {"n": "NN", "v": "VB", "a": "JJ", "r": "RB"}.get(pos or "", "DT" if lower in
                                                                            STOPWORDS else "NN")))
        previous = lower
    return tags


def offline() -> Path:
    """Make this process offline for NLTK: our data dir first on nltk.data.path, every NLTK download
    entry point raising DownloadBlocked, and nlpaug's WordNet tagger (nltk.pos_tag, which downloads
    on a miss) replaced by the WordNet-based tagger. Returns the WordNet folder."""
    root = check()
    import nltk
    import nltk.downloader

    with _GUARD_LOCK:
        path = str(root.parent.parent)
        if not nltk.data.path or nltk.data.path[0] != path:
            if path in nltk.data.path:
                nltk.data.path.remove(path)
            nltk.data.path.insert(0, path)
        nltk.download = _refuse_download
        nltk.downloader.download = _refuse_download
        nltk.downloader.Downloader.download = lambda self, *a, **k: _refuse_download(*a, **k)
        try:  # by module path: the package re-exports NLTK's `wordnet` reader under the same name
            nlpaug_wordnet = importlib.import_module("nlpaug.model.word_dict.wordnet")
        except ImportError:
            pass
        else:
            nlpaug_wordnet.WordNet.pos_tag = classmethod(lambda cls, tokens: wordnet_pos_tag(tokens))
            nlpaug_wordnet.nltk.download = _refuse_download
    return root


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


class WordNetLexicon:
    """Synonyms and a part of speech per word, from an NLTK WordNet reader. Lookups are memoized per
    process (the vocabulary of a corpus is small next to its rows); results never depend on the
    memo's state, only on the word and its left neighbour."""

    def __init__(self, reader):
        self._wn = reader
        self._pos_memo: dict[str, dict[str, tuple[str, int]]] = {}
        self._syn_memo: dict[tuple[str, str, int], tuple[str, ...]] = {}
        self._known_memo: dict[str, bool] = {}
        self._choice_memo: dict[tuple[str, str], str | None] = {}
        self._slot_memo: dict[tuple[str, str, int], tuple[str, ...]] = {}

    def _forms(self, word: str) -> dict[str, tuple[str, int]]:
        """pos -> (base form, number of senses) for each part of speech WordNet has `word` as."""
        found = self._pos_memo.get(word)
        if found is None:
            found = {}
            for pos in _POS_ORDER:
                synsets = self._wn.synsets(word, pos)
                if synsets:
                    found[pos] = (self._wn.morphy(word, pos) or word, len(synsets))
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
        key = (word, _HINTS.get(previous, ""))
        if key in self._choice_memo:
            return self._choice_memo[key]
        forms = self._forms(word)
        choice = None
        if forms:
            choice = next((p for p in key[1] if p in forms), None) if len(forms) > 1 else None
            if choice is None and len(forms) > 1 and word.endswith("ly") and "r" in forms:
                choice = "r"
            if choice is None:
                choice = max(forms, key=lambda p: (forms[p][1], -_POS_ORDER.index(p)))
        self._choice_memo[key] = choice
        return choice

    def synonyms_in_context(self, word: str, previous: str, senses: int = 0) -> tuple[str, ...]:
        """`synonyms(word, pos(word, previous), senses)` in one memoized lookup (the ops' hot path)."""
        key = (word, _HINTS.get(previous, ""), senses)
        found = self._slot_memo.get(key)
        if found is None:
            pos = self.pos(word, previous)
            found = self._slot_memo[key] = self.synonyms(word, pos, senses) if pos else ()
        return found

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
            synsets = self._wn.synsets(base, pos)
            for synset in synsets[:senses] if senses else synsets:
                for lemma in synset.lemma_names():
                    candidate = lemma.replace("_", " ")
                    if not _plain_lower(candidate) or candidate == base:
                        continue
                    candidate = _inflect(candidate, suffix, pos)
                    if candidate != word:
                        result[candidate] = None
        found = self._syn_memo[key] = tuple(result)
        return found


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
    """The process-wide lexicon (loaded once per worker; NLTK's index load takes a few seconds)."""
    root = offline()
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": English only
        reader = WordNetCorpusReader(str(root), None)
    return WordNetLexicon(reader)


def main(argv: list[str] | None = None) -> int:
    """`install` (apt + layout) or `check`; prints one line, exit 0 when WordNet is ready, 2 if not."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "check"
    if command not in ("install", "check"):
        print("usage: python -m augment.lexicon [install|check]", file=sys.stderr)
        return 2
    try:
        root = install() if command == "install" else check()
    except LexiconMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"WordNet ready for NLTK in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

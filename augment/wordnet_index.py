"""WordNet compiled for fast loading: what the lookups read (the lemma index, the exception lists,
the morphology rules and every synset's lemma names), taken once from NLTK's reader and the data
files and kept as one marshal file in raybatch's cache.

Why: each augment worker needs WordNet before its first row. Through NLTK that costs about three
seconds per worker (importing nltk pulls in scipy; its reader parses the four index files); the
compiled file loads in a tenth of that and never imports NLTK. The file is named after the WordNet
files it was built from (names, sizes, mtimes) and this Python, so new WordNet files or a new
interpreter get a new file; a damaged one is rebuilt, and builders on one machine take a lock.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from augment.cache import cache_dir
from augment.wordnet_install import DEBIAN_FILES, check, offline

FORMAT = 1  # bumped when what the file holds changes
POS = ("n", "v", "a", "r")
_DATA_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
# What reading an absent, cut-short or foreign file raises: it is then built again.
_UNREADABLE = (OSError, ValueError, EOFError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class WordNetIndex:
    """WordNet as plain dicts, per part of speech (`n`, `v`, `a`, `r`)."""

    lemmas: dict[str, dict[str, tuple[int, ...]]]  # pos -> lemma -> its synsets' data-file offsets
    exceptions: dict[str, dict[str, tuple[str, ...]]]  # pos -> irregular form -> base forms
    substitutions: dict[str, tuple[tuple[str, str], ...]]  # pos -> (suffix, replacement) rules
    names: dict[str, dict[int, str]]  # pos -> offset -> the synset's lemma names, space-separated

    def morphy(self, form: str, pos: str) -> list[str]:
        """The base forms of `form` as `pos` that WordNet holds: NLTK's `_morphy`, rule for rule
        (the exception list, else each suffix rule applied once; the form itself checked too)."""
        lemmas = self.lemmas[pos]
        irregular = self.exceptions[pos].get(form)
        if irregular is not None:
            candidates = [form, *irregular]
        else:
            candidates = [form, *(form[:-len(old)] + new for old, new in self.substitutions[pos] if form.endswith(old))]
        return [base for base in dict.fromkeys(candidates) if base in lemmas]

    def lemma_names(self, pos: str, offset: int) -> list[str]:
        """A synset's lemma names, in WordNet's order (what `synset.lemma_names()` gives)."""
        return self.names[pos][offset].split(" ")


def load() -> WordNetIndex:
    """The compiled index for the installed WordNet, built first when this machine has none."""
    path = cache_path(check())
    try:
        return _from_file(path)
    except _UNREADABLE:  # absent, or damaged: build it
        return _from_file(build(path))


def ensure() -> Path:
    """Build the compiled index unless it is there (preflight and install: workers then only load)."""
    path = cache_path(check())
    return path if path.is_file() else build(path)


def cache_path(root: Path) -> Path:
    stamp = [f"{FORMAT}", sys.version.split()[0]]
    for name in DEBIAN_FILES:
        info = (root / name).stat()
        stamp.append(f"{name}:{info.st_size}:{info.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    return cache_dir() / f"wordnet-index-{digest}.marshal"


def build(path: Path) -> Path:
    """Compile the index into `path` (atomically, one builder at a time on this machine)."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        try:
            _from_file(path)
            return path  # another process built it while this one waited
        except _UNREADABLE:
            pass
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        try:
            tmp.write_bytes(marshal.dumps(_compile(offline())))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def _from_file(path: Path) -> WordNetIndex:
    content = marshal.loads(path.read_bytes())
    if content.get("format") != FORMAT:
        raise ValueError(f"{path} holds format {content.get('format')}, not {FORMAT}")
    return WordNetIndex(content["lemmas"], content["exceptions"], content["substitutions"], content["names"])


def nltk_reader(root: Path):
    """NLTK's WordNet reader over `root` (the compile step's source, and the tests' reference)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            """None, as for a WordNet of the same version: the mapping only serves Open Multilingual
            Wordnet lookups, which the ops never make, and building it was half of every load."""
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": English only
        return EnglishWordNet(str(root), None)


def _compile(root: Path) -> dict:
    reader = nltk_reader(root)
    lemmas: dict[str, dict[str, tuple[int, ...]]] = {pos: {} for pos in POS}
    for lemma, by_pos in reader._lemma_pos_offset_map.items():
        for pos, offsets in by_pos.items():
            if pos in lemmas:
                lemmas[pos][lemma] = tuple(offsets)
    return {
        "format": FORMAT,
        "lemmas": lemmas,
        "exceptions": {pos: {form: tuple(bases) for form, bases in reader._exception_map[pos].items()} for pos in POS},
        "substitutions": {pos: tuple(map(tuple, reader.MORPHOLOGICAL_SUBSTITUTIONS[pos])) for pos in POS},
        "names": {pos: _synset_names(root / _DATA_FILES[pos]) for pos in POS},
    }


def _synset_names(data_file: Path) -> dict[int, str]:
    """offset -> lemma names of every synset line in a data file (syntactic markers such as an
    adjective's "(a)" removed, as NLTK removes them)."""
    names: dict[int, str] = {}
    offset = 0
    with open(data_file, "rb") as lines:
        for line in lines:
            if not line.startswith(b"  "):  # the licence header's lines start with two spaces
                fields = line.split(b" ", 4 + 2 * 256)
                count = int(fields[3], 16)
                names[offset] = " ".join(_unmarked(name.decode()) for name in fields[4:4 + 2 * count:2])
            offset += len(line)
    return names


def _unmarked(name: str) -> str:
    return _SYNTACTIC_MARKER.sub("", name)


# An adjective lemma's syntactic marker in a data file: "(a)", "(p)" or "(ip)".
_SYNTACTIC_MARKER = re.compile(r"\([^()]*\)$")

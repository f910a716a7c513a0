"""Offline WordNet: the layout NLTK reads, the one-line preflight, and no download ever attempted."""

from __future__ import annotations

import marshal
import os
import socket
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path

import pytest

from augment import wordnet_index
from augment import wordnet_install as lexicon
from tests.conftest import ROOT


def test_lexnames_is_the_45_line_file_nltk_parses():
    lines = lexicon.lexnames_text().splitlines()
    assert len(lines) == 45
    for i, line in enumerate(lines):
        index, name, category = line.split()  # what WordNetCorpusReader does
        assert int(index) == i and name.split(".")[0] in {"adj": "3", "adv": "4", "noun": "1", "verb": "2"} and \
            {"adj": "3", "adv": "4", "noun": "1", "verb": "2"}[name.split(".")[0]] == category
    assert lines[3].split()[1] == "noun.Tops" and lines[44].split()[1] == "adj.ppl"


def test_install_lays_out_debian_files_that_nltk_loads(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # NLTK 3.10 reads only under its data path
    root = lexicon.install(base=tmp_path, apt=False)
    assert root == tmp_path / "corpora" / "wordnet" and not lexicon.missing_files(root)
    assert not any(p.is_symlink() for p in root.iterdir())  # NLTK 3.10 refuses links leaving the root
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": English only
        reader = WordNetCorpusReader(str(root), None)
    assert reader.get_version() == "3.0"
    assert reader.synsets("movie")[0].name() == "movie.n.01"
    assert reader.synset("dog.n.01").lexname() == "noun.animal"  # lexnames read
    assert reader.lemma_from_key("dog%1:05:00::").name() == "dog"  # index.sense read
    assert lexicon.install(base=tmp_path, apt=False) == root  # idempotent


def test_missing_wordnet_fails_fast_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYBATCH_NLTK_DATA", str(tmp_path / "nltk"))
    monkeypatch.setenv("RAYBATCH_WORDNET_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(lexicon.LexiconMissing) as caught:
        lexicon.check()
    message = str(caught.value)
    assert "\n" not in message and "apt-get install -y wordnet-base wordnet-sense-index" in message
    with pytest.raises(lexicon.LexiconMissing, match="wordnet-base"):
        lexicon.install(apt=False)


def test_check_lays_out_debian_files_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYBATCH_NLTK_DATA", str(tmp_path))
    assert lexicon.check() == tmp_path / "corpora" / "wordnet"
    assert not lexicon.missing_files(tmp_path / "corpora" / "wordnet")


def test_validate_exits_2_naming_what_to_install(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: aug
input: {{path: {ROOT / 'sample_data/reviews/sst2.parquet'}, id_column: id}}
output: {{path: {tmp_path / 'out'}}}
stages:
  - use: augment
    column: text
    ops: [{{op: substitute}}]
""")
    env = {**os.environ, "RAYBATCH_NLTK_DATA": str(tmp_path / "nltk"), "RAYBATCH_WORDNET_DIR": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-m", "jobs", "validate", str(spec)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "stages[0] (augment)" in lines[0] and "wordnet-base" in lines[0]
    env.pop("RAYBATCH_WORDNET_DIR")  # Debian's files are there: validate lays them out and passes
    done = subprocess.run([sys.executable, "-m", "jobs", "validate", str(spec)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "nltk" / "corpora" / "wordnet" / "lexnames").exists()


@pytest.fixture(scope="module")
def nltk_wordnet():
    """NLTK's own reader: the reference the compiled index is checked against."""
    return wordnet_index.nltk_reader(lexicon.offline())


@pytest.fixture
def no_network(monkeypatch):
    """Every way out records the attempt and fails; the test then checks nothing tried."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def test_no_download_is_ever_attempted(no_network, sentences):
    import nltk

    lexicon.offline()
    with pytest.raises(lexicon.DownloadBlocked, match="never downloads"):
        nltk.download("averaged_perceptron_tagger")
    with pytest.raises(lexicon.DownloadBlocked):
        nltk.downloader.Downloader().download("wordnet")

    from augment.params import SubstituteOp
    from augment.augmenter import Augmenter
    from augment.params import AugmentParams

    params = AugmentParams(use="augment", column="text", copies=2,
                           ops=[SubstituteOp(op="substitute"), {"op": "insert"}])
    augmenter = Augmenter(params, seed=0)
    assert all(augmenter.augment(text, str(i)).copies for i, text in enumerate(sentences[:20]))
    assert no_network == []


def test_synonym_order_does_not_depend_on_the_hash_seed():
    code = ("from augment.lexicon import default_lexicon as d; l = d(); "
            "print([l.synonyms(w, l.pos(w)) for w in ('good', 'movie', 'runs', 'quickly', 'bad', 'film')])")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(outs) == 1 and "film" in outs.pop()


def test_lexicon_command_reports_ready():
    done = subprocess.run([sys.executable, "-m", "augment.wordnet_install", "check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "WordNet ready" in done.stdout
    assert Path(done.stdout.split(" in ")[-1].strip()).is_dir()


def test_lean_lookups_match_nltk_synsets(sentences, nltk_wordnet):
    """Sense counts and lemma names read from the compiled index are what NLTK's Synsets hold."""
    from augment.lexicon import default_lexicon

    lexicon = default_lexicon()
    words = sorted({w.strip(".,!?;:'\"()").lower() for text in sentences for w in text.split()} - {""})
    assert len(words) > 300
    for word in [*words, "geese", "ran", "better", "happier", "boxes", "went"]:  # irregular forms too
        for pos in "nvar":
            synsets = nltk_wordnet.synsets(word, pos)
            assert lexicon._forms(word).get(pos, (None, 0))[1] == len(synsets), (word, pos)
            names = [name for offset in lexicon._sense_offsets(word, pos) for name in lexicon._lemma_names(pos, offset)]
            assert names == [name for synset in synsets for name in synset.lemma_names()], (word, pos)


def test_compiled_morphy_is_nltks_on_every_exception_and_inflection(nltk_wordnet):
    index = wordnet_index.load()
    forms = set()
    for pos in "nvar":
        forms |= set(nltk_wordnet._exception_map[pos])
        lemmas = sorted(index.lemmas[pos])[::40]  # thousands of lemmas, each inflected every way
        forms |= {lemma + suffix for lemma in lemmas for suffix in ("", "s", "es", "ies", "ed", "ing", "er", "est")}
    assert len(forms) > 20_000
    for form in sorted(forms):
        for pos in "nvar":
            assert index.morphy(form, pos) == nltk_wordnet._morphy(form, pos), (form, pos)
    names = {(pos, offset) for pos in "nvar" for offset in list(index.names[pos])[::97]}
    for pos, offset in names:
        assert index.lemma_names(pos, offset) == nltk_wordnet.synset_from_pos_and_offset(pos, offset).lemma_names()


def test_workers_load_the_compiled_index_without_nltk():
    """A process with the index compiled loads it and never imports NLTK (or the scipy it pulls in)."""
    wordnet_index.ensure()
    code = ("import sys, time; t = time.perf_counter(); from augment.lexicon import default_lexicon as d; "
            "l = d(); print(round(time.perf_counter() - t, 3), 'nltk' in sys.modules, l.synonyms('film', 'n')[:2])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    _seconds, imported, synonyms = done.stdout.split(" ", 2)
    assert imported == "False" and "movie" in synonyms, done.stderr


def test_a_damaged_or_stale_index_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RAYBATCH_NLTK_DATA", str(tmp_path / "nltk"))
    root = lexicon.check()
    path = wordnet_index.ensure()
    assert path.parent == tmp_path / "cache" / "raybatch" and path.is_file()
    good = wordnet_index.load()
    path.write_bytes(path.read_bytes()[:1000])  # cut short, as by a full disk
    assert wordnet_index.load().lemmas == good.lemmas and path.stat().st_size > 1000
    path.write_bytes(marshal.dumps(7))  # something else entirely
    assert wordnet_index.load().names == good.names
    (root / "adj.exc").write_text("fooer foo\n")  # other WordNet files: another index, by name
    assert wordnet_index.cache_path(root) != path
    assert wordnet_index.load().exceptions["a"]["fooer"] == ("foo",)
    assert path.is_file()  # the old one is left as it was

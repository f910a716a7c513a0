"""The augmentation ops on real SST-2 sentences: edit bounds, stopwords and numbers untouched,
case and punctuation kept, Chinese and mixed text handled, results a function of the seed."""

from __future__ import annotations

import difflib
import random
import re
from collections import Counter

import pytest

from augment import ops
from augment import languages
from augment import measures
from augment import params as op_params
from augment import sentences as sent
from augment import tokens as tok
from augment.lexicon import default_lexicon

PUNCT = re.compile(r"[.,!?;:()\"]")  # marks a text has; synonyms may bring hyphens


@pytest.fixture(scope="module")
def vocab():
    return ops.Vocab(lexicon=default_lexicon())


@pytest.fixture(scope="module")
def real(sentences):
    return [s for s in sentences if len(s.split()) >= 4][:150]


@pytest.fixture(scope="module")
def punctuated(real):
    """Real sentences written the way raw text looks: a capital, commas, a full stop."""
    out = []
    for text in real[:80]:
        words = text.split()
        words[0] = words[0].capitalize()
        words[len(words) // 2] += ","
        out.append(" ".join(words) + ".")
    return out


def op(name, **kw):
    cls = {"substitute": op_params.SubstituteOp, "insert": op_params.InsertOp, "reorder": op_params.ReorderOp,
           "delete": op_params.DeleteOp}[name]
    return cls(op=name, **kw)


def changed_tokens(before: str, after: str) -> tuple[list[str], list[str]]:
    """Original tokens that were replaced or removed, and tokens that appeared."""
    a, b = before.split(), after.split()
    gone, came = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            gone += a[i1:i2]
            came += b[j1:j2]
    return gone, came


def test_substitute_edits_within_bounds_and_never_stopwords_or_numbers(real, vocab):
    params = op("substitute", rate=0.2, max_edits=3)
    changed_rows = 0
    for n, text in enumerate(real + ["the 2 leads are good and the two hours fly by"]):
        out = ops.substitute(text, random.Random(n), params, vocab)
        if out is None:
            continue
        gone, _ = changed_tokens(text, out)
        changed_rows += bool(gone)
        assert 1 <= len(gone) <= ops.edits_for(tok.word_count(text), params) <= 3, (text, out)
        for word in gone:
            assert word not in ops.STOPWORDS and word not in ops.NUMBER_WORDS and not word.isdigit(), (text, out)
    assert changed_rows >= len(real) * 0.9


def test_substitute_keeps_case_and_punctuation(punctuated, vocab):
    params = op("substitute", rate=0.3)
    for n, text in enumerate(punctuated):
        out = ops.substitute(text, random.Random(n), params, vocab)
        assert out is not None
        assert PUNCT.findall(out) == PUNCT.findall(text), (text, out)  # same marks, same order
        assert out[0].isupper()
    shouted = ops.substitute("The Movie Was GREAT", random.Random(1), op("substitute", rate=1.0), vocab)
    first, *rest = shouted.split()
    assert first == "The" and rest[-1].isupper() and rest[0][0].isupper(), shouted


def test_substitute_uses_multiword_synonyms_with_spaces_and_plural_forms(vocab):
    lexicon = vocab.lexicon
    assert "motion picture" in lexicon.synonyms("movie", "n")
    assert "motion pictures" in lexicon.synonyms("movies", "n")
    assert all("_" not in s and s.islower() for s in lexicon.synonyms("dog", "n"))  # no 'Canis_familiaris'
    assert lexicon.pos("look", "to") == "v" and lexicon.pos("look", "the") == "n"


def test_insert_adds_synonyms_of_words_in_the_text(real, vocab):
    params = op("insert", rate=0.1)
    for n, text in enumerate(real):
        out = ops.insert(text, random.Random(n), params, vocab)
        if out is None:
            continue
        gone, came = changed_tokens(text, out)
        assert gone == [] and came, (text, out)  # nothing removed
        assert out.split()[0] == text.split()[0]  # never before the first word
        pool = {s for w in text.split() for p in "nvar" for s in vocab.lexicon.synonyms(w, p, 3)}
        assert set(came) <= {x for s in pool for x in s.split()}, (text, out)


def test_insert_keeps_closing_punctuation_last(punctuated, vocab):
    for n, text in enumerate(punctuated):
        out = ops.insert(text, random.Random(n), op("insert", rate=0.2), vocab)
        assert out.endswith(".") and PUNCT.findall(out) == PUNCT.findall(text), (text, out)


def test_reorder_swaps_within_window_keeping_the_words(real, vocab):
    params = op("reorder", rate=0.01, window=2)  # one swap
    for n, text in enumerate(real):
        out = ops.reorder(text, random.Random(n), params, vocab)
        a, b = text.split(), out.split()
        assert Counter(a) == Counter(b)
        moved = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        assert len(moved) in (0, 2), (text, out)  # two equal words swapped look unmoved
        if moved:
            assert moved[1] - moved[0] <= 2


def test_reorder_moves_sentence_capitals_with_the_position(punctuated, vocab):
    for n, text in enumerate(punctuated):
        out = ops.reorder(text, random.Random(n), op("reorder", rate=0.5), vocab)
        assert out[0].isupper() and PUNCT.findall(out) == PUNCT.findall(text), (text, out)
        assert sorted(out.lower().replace(",", "").replace(".", "").split()) == \
            sorted(text.lower().replace(",", "").replace(".", "").split())


def test_reorder_shuffles_sentences_when_there_are_several(vocab):
    text = "The plot is thin. The acting is superb! Would I see it again? Probably."
    out = ops.reorder(text, random.Random(3), op("reorder"), vocab)
    parts = re.split(r"(?<=[.!?])\s+", text)
    assert out != text and sorted(re.split(r"(?<=[.!?])\s+", out)) == sorted(parts)
    words_only = ops.reorder(text, random.Random(3), op("reorder", sentences=False), vocab)
    assert sorted(re.split(r"(?<=[.!?])\s+", words_only)) != sorted(parts)


@pytest.mark.parametrize("text, sentences", [
    ("Mr. Smith went to Washington. He saw J. K. Rowling there.",
     ["Mr. Smith went to Washington.", "He saw J. K. Rowling there."]),
    ("It was shot in the U.S. by Dr. Who et al. in 1999. Great film, e.g. the score. See fig. 3 too.",
     ["It was shot in the U.S. by Dr. Who et al. in 1999.", "Great film, e.g. the score.", "See fig. 3 too."]),
    ('"Wow." She said. (Really.) Then 3 more.', ['"Wow."', "She said.", "(Really.)", "Then 3 more."]),
    ("这部电影很好。我很喜欢！你呢？", ["这部电影很好。", "我很喜欢！", "你呢？"]),
    ("no capital after. the stop, so one sentence", ["no capital after. the stop, so one sentence"]),
])
def test_sentence_splitting_knows_abbreviations_initials_quotes_and_cjk_stops(text, sentences):
    found, gaps = sent.split_sentences(text)
    assert found == sentences
    assert "".join(s + g for s, g in zip(found, gaps + [""])) == text  # nothing lost between them


def test_reorder_shuffles_chinese_sentences_without_spaces(vocab):
    text = "这部电影很好。我很喜欢！你呢？"
    out = ops.reorder(text, random.Random(0), op("reorder"), vocab)
    assert out != text and sorted(sent.split_sentences(out)[0]) == sorted(sent.split_sentences(text)[0])


def test_delete_drops_words_never_all_and_respects_bounds(real, vocab):
    params = op("delete", rate=0.3, max_edits=4)
    for n, text in enumerate(real):
        out = ops.delete(text, random.Random(n), params, vocab)
        gone, came = changed_tokens(text, out)
        assert came == [] and 1 <= len(gone) <= 4 and out.split(), (text, out)
    assert ops.delete("brilliant", random.Random(0), params, vocab) is None
    everything = ops.delete("a b c d", random.Random(0), op("delete", rate=1.0), vocab)
    assert len(everything.split()) == 1


def test_delete_of_bare_words_filters_as_the_general_path_would(real, punctuated, vocab, monkeypatch):
    """Dropping words without punctuation from single-spaced text takes a shortcut; it must give what
    the general path (punctuation passed on, gaps chosen) gives, capital passing included."""
    params = op("delete", rate=0.3)
    texts = [t for t in real + punctuated if "  " not in t]
    capitals = [" ".join(w.capitalize() for w in t.split()) for t in real[:40]]
    fast = [ops.delete(t, random.Random(n), params, vocab) for n, t in enumerate(texts + capitals)]
    monkeypatch.setattr(ops, "_bare", lambda token: False)
    general = [ops.delete(t, random.Random(n), params, vocab) for n, t in enumerate(texts + capitals)]
    assert fast == general and sum(a != b for a, b in zip(fast, texts + capitals)) > len(fast) // 2


def test_delete_moves_punctuation_to_a_neighbour_and_keeps_line_breaks(vocab):
    text = "Slow, dull and long.\n\nStill worth it"
    seen_break = 0
    for seed in range(30):
        out = ops.delete(text, random.Random(seed), op("delete", rate=0.3), vocab)
        assert out[0].isupper(), out
        assert not Counter(PUNCT.findall(out)) - Counter(PUNCT.findall(text)), out
        first, brk, second = out.partition("\n\n")
        if brk:  # a word of each paragraph survived: the break stays and so does the full stop
            seen_break += 1
            assert first.endswith("."), out
    assert seen_break > 10
    assert ops.delete("Great, fun. Loved it", random.Random(1), op("delete", rate=0.01), vocab).count(".") == 1


def test_protected_words_are_never_touched(real, vocab):
    protect = ops.Vocab(lexicon=vocab.lexicon, protect=frozenset({"film", "movie"}))
    for n, text in enumerate(t for t in real if " film " in f" {t} " or " movie " in f" {t} "):
        for name in ("substitute", "reorder", "delete"):
            out = ops.apply(text, random.Random(n), op(name, rate=0.5), protect)
            if out is None:
                continue
            a, b = text.split(), out.split()
            kept = [w for w in b if w in ("film", "movie")]
            assert kept == [w for w in a if w in ("film", "movie")], (name, text, out)
            if name == "reorder":  # nothing moves past them either
                assert [i for i, w in enumerate(a) if w in ("film", "movie")] == \
                    [i for i, w in enumerate(b) if w in ("film", "movie")]


@pytest.mark.parametrize("text", ["这部电影非常好看，演员的表演也很精彩。", "这部 电影 非常 好看",
                                  "I love this 电影 so much, really great", "", "   ", "!!! ???",
                                  "Ça reste un très bon film, même après dix ans."])
def test_non_english_and_odd_text_never_crashes(text, vocab):
    for name in ("substitute", "insert", "reorder", "delete"):
        for seed in range(5):
            out = ops.apply(text, random.Random(seed), op(name, rate=0.3), vocab)
            assert out is None or isinstance(out, str)
            if out is not None and "电影" in text:
                assert "电影" in out or name == "delete"
    # Only Latin-script words weigh in the English share: Chinese is another script, handled by its own rules.
    assert languages.english_ratio("这部 电影 非常 好看", vocab) == 1.0
    assert not languages.has_english_words("这部 电影 非常 好看", vocab)
    assert languages.english_ratio("Ça reste un très bon film, même après dix ans.", vocab) < 0.5
    assert languages.english_ratio("I love this 电影 so much", vocab) > 0.5


def test_same_seed_same_text_other_seed_other_text(real, vocab):
    for name in ("substitute", "insert", "reorder", "delete"):
        params = op(name, rate=0.2)
        first = [ops.apply(t, random.Random(7), params, vocab) for t in real[:40]]
        again = [ops.apply(t, random.Random(7), params, vocab) for t in real[:40]]
        other = [ops.apply(t, random.Random(8), params, vocab) for t in real[:40]]
        assert first == again
        assert sum(x != y for x, y in zip(first, other)) > 20


def test_token_edit_distance_matches_the_textbook_dp():
    def dp(a, b):
        previous = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            current = [i]
            for j, y in enumerate(b, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
            previous = current
        return previous[-1]

    rng = random.Random(0)
    for _ in range(2000):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert measures.token_edit_distance(a, b) == dp(a, b)
    assert measures.edit_rate("a b c d", "a c b d") == 0.5


def test_op_params_reject_bad_bounds():
    with pytest.raises(ValueError, match="max_edits"):
        op("delete", min_edits=3, max_edits=2)
    with pytest.raises(ValueError):
        op("substitute", rate=0)
    assert op("reorder").edit_bound == 1.0 and op("delete").edit_bound == 0.5


def test_a_parents_normalized_form_from_its_parse_is_normalize(real):
    """The duplicate guard takes a parent's normalized form from its cached parse: the same string
    normalize() gives, whatever the whitespace, case folding or script."""
    odd = ["  Straße \t und\n\nSTRASSE  ", "İstanbul\u00a0NIGHTS", "电影 很好看。The film is GOOD",
           "one\u2003two\x1cthree", "", "   "]
    for text in real + odd:
        assert measures.normalize_parsed(text) == measures.normalize(text), repr(text)

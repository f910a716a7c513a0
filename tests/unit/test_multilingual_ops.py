"""The ops on Chinese and mixed text (translated messages from Debian's zh_CN gettext catalogs, and
rows with emoji sequences, flags and combining marks): CJK runs are segmented into words, no op
ever splits a grapheme cluster, and in a mixed row each script keeps to its own words."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import regex

from augment import languages, ops
from augment import params as op_params
from augment import tokens as tok
from augment.lexicon import default_lexicon

ROOT = Path(__file__).resolve().parents[2]
ROWS = pq.read_table(ROOT / "sample_data" / "multilingual" / "zh_mixed.parquet")["text"].to_pylist()
CLASS = {"substitute": op_params.SubstituteOp, "insert": op_params.InsertOp, "reorder": op_params.ReorderOp,
         "delete": op_params.DeleteOp}


@pytest.fixture(scope="module")
def vocab():
    return ops.Vocab(lexicon=default_lexicon())


def graphemes(text: str) -> Counter:
    """The text's grapheme clusters, case-folded (a capital follows the sentence start, not the word)."""
    return Counter(g.casefold() for g in regex.findall(r"\X", text) if not g.isspace())


def script_runs(text: str) -> str:
    """The order of the text's Chinese (C) and Latin (L) runs, whatever their length: 'CLCLC'."""
    marks = regex.sub(r"\p{Han}+", "C", regex.sub(r"\p{Latin}+", "L", text))
    return regex.sub(r"(.)\1+", r"\1", regex.sub(r"[^CL]", "", marks))


def test_chinese_is_segmented_into_words_and_joins_back_unchanged():
    parsed = tok.parse("这部电影非常好看，演员的表演也很精彩。")
    assert parsed.words[:4] == ("这部", "电影", "非常", "好看，")  # punctuation stays with its word
    assert parsed.n_words >= 8 and all(gap == "" for gap in parsed.gaps) and all(parsed.cjk)
    for text in ROWS:
        assert tok.Tokens(text).text() == text.strip()  # a parse loses nothing


def test_no_token_boundary_falls_inside_a_grapheme_cluster():
    for text in ROWS:
        parsed = tok.parse(text)
        position, boundaries = 0, {m.start() for m in regex.finditer(r"\X", text.strip())} | {len(text.strip())}
        for word, gap in zip(parsed.words, (*parsed.gaps, "")):
            assert position in boundaries and position + len(word) in boundaries, (text, word)
            position += len(word) + len(gap)
    family = tok.parse("我们全家 👨‍👩‍👧 周末")
    assert "👨‍👩‍👧" in family.words
    assert tok.split_core("cafe\u0301,") == ("", "cafe\u0301", ",")  # the accent stays with its letter


@pytest.mark.parametrize("name", ["reorder", "delete", "substitute", "insert"])
def test_ops_never_split_a_character_sequence(name, vocab):
    spec = CLASS[name](op=name, rate=0.3)
    changed = 0
    for index, text in enumerate(ROWS):
        for seed in range(3):
            out = ops.apply(text, random.Random(seed * 1000 + index), spec, vocab)
            if out is None:
                continue
            changed += out != text
            before, after = graphemes(text), graphemes(out)
            if name == "reorder":
                assert after == before, (text, out)  # moved, never split, lost or made
            elif name == "delete":
                assert not after - before, (text, out)  # only whole clusters went
            else:  # English synonyms may come in; every other cluster is the input's
                assert all(g in before or regex.fullmatch(r"[A-Za-z'-]", g) for g in after - before), (text, out)
    assert changed > len(ROWS) // (2 if name in ("reorder", "delete") else 20)


def test_in_a_mixed_row_words_move_only_among_words_of_their_script(vocab):
    spec = op_params.ReorderOp(op="reorder", rate=0.5, sentences=False)
    mixed = [t for t in ROWS if tok.has_cjk(t) and languages.has_english_words(t, vocab)]
    assert len(mixed) >= 80
    for index, text in enumerate(mixed):
        out = ops.apply(text, random.Random(index), spec, vocab)
        if out is None:
            continue
        assert script_runs(out) == script_runs(text), (text, out)
        latin = regex.findall(r"\p{Latin}+", text.casefold())
        assert sorted(regex.findall(r"\p{Latin}+", out.casefold())) == sorted(latin), (text, out)


def test_lexical_ops_edit_only_the_english_part_of_a_mixed_row(vocab):
    text = "我昨天看了这部 movie，the acting was wonderful 而且 the story was moving"
    chinese = [core for _, core, _ in tok.parse(text).cores if tok.has_cjk(core)]
    for seed in range(20):
        for name in ("substitute", "insert"):
            out = ops.apply(text, random.Random(seed), CLASS[name](op=name, rate=0.3), vocab)
            assert out is not None and out != text
            assert [core for _, core, _ in tok.parse(out).cores if tok.has_cjk(core)] == chinese, out


def test_language_detection_for_the_languages_guard():
    assert languages.detect("这部电影非常好看，演员的表演也很精彩。") == "zh"
    assert languages.detect("日本のアニメはとても面白いです") == "ja"
    assert languages.detect("한국 영화는 정말 재미있어요") == "ko"
    assert languages.detect("the acting was wonderful and the story was moving") == "en"
    assert languages.detect("Ça reste un très bon film, même après dix ans.") == "fr"

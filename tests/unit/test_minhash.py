"""Near-duplicate keys and groups on real text: SST-2 sentences from the EDA sets beside the project
and translated gettext messages in Chinese, with near-duplicates planted by one- and two-word edits."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.hygiene.minhash import (
    MinHasher,
    candidate_pairs,
    exact_keys,
    groups,
    lsh_params,
    normalize,
    similar,
    tokens,
    verify,
)

SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "eda" / "4_full" / "sst2" / "train_orig.txt"
ZH = Path(__file__).resolve().parents[2] / "sample_data" / "multilingual" / "zh_mixed.parquet"


@pytest.fixture(scope="module")
def sst2() -> list[str]:
    """The distinct (after normalize) SST-2 training sentences, in file order."""
    if not SST2.exists():
        pytest.skip(f"needs the EDA sets at {SST2.parent}")
    texts = [line.partition("\t")[2].strip() for line in SST2.read_text(encoding="utf-8").splitlines()]
    return list({normalize(t): t for t in reversed(texts) if normalize(t)}.values())[::-1]


@pytest.fixture(scope="module")
def chinese() -> list[str]:
    return pq.read_table(ZH)["text"].to_pylist()


@pytest.fixture(scope="module")
def hasher() -> MinHasher:
    return MinHasher()


def dedup(hasher: MinHasher, texts, order=None) -> np.ndarray:
    """The whole path the job takes: keys, candidates, verification, groups."""
    sigs, valid = hasher.signatures(texts)
    pairs = candidate_pairs(hasher.band_keys(sigs), valid)
    return groups(len(texts), verify(pairs, sigs, hasher.threshold), order)


def jaccard(a: str, b: str) -> float:
    sa, sb = set(tokens(normalize(a))), set(tokens(normalize(b)))
    return len(sa & sb) / len(sa | sb)


def edit(words: list[str], rng: random.Random, vocab: list[str], op: str | None = None) -> list[str]:
    """One random word substituted, deleted or inserted."""
    words, at = list(words), rng.randrange(len(words))
    op = op or rng.choice(["substitute", "delete", "insert"])
    if op == "substitute":
        words[at] = rng.choice([w for w in rng.sample(vocab, 5) if w != words[at]])
    elif op == "delete":
        del words[at]
    else:
        words.insert(at, rng.choice(vocab))
    return words


def reference_normalize(text: str) -> str:
    """normalize() as its docstring defines it, one character at a time."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if category[0] in "PS" or category == "Cf" or (category == "Cc" and not c.isspace()):
            continue
        kept.append(c)
    return " ".join("".join(kept).split())


def test_normalize_case_whitespace_punctuation_full_width():
    assert normalize("  The Movie,\tis GREAT!!\n") == "the movie is great"
    assert normalize("ＦＵＬＬ　ｗｉｄｔｈ，ｔｅｘｔ！") == "full widthtext"
    assert normalize("Straße") == normalize("STRASSE") == "strasse"
    assert normalize("don't — stop… “now”") == "dont stop now"
    assert normalize("zero\u200bwidth\ufeff soft\u00adhyphen") == "zerowidth softhyphen"
    assert normalize("café") == normalize("cafe\u0301") == "café"
    assert normalize("我爱北京天安门。") == "我爱北京天安门"
    assert normalize("!!! ... ???") == ""


def test_normalize_matches_its_definition_on_real_text(sst2, chinese):
    rng = random.Random(3)
    marks = ["", "", ",", ".", "!", "'s", " -", "$"]
    punctuated = [" ".join(w + rng.choice(marks) for w in s.split()) for s in sst2[:300]]
    for text in punctuated + [s.upper() for s in sst2[:100]] + chinese:
        assert normalize(text) == reference_normalize(text), text


def test_tokens_split_words_and_cjk_characters():
    assert tokens("the rock is destined") == ["the", "rock", "is", "destined"]
    assert tokens("我爱北京") == ["我", "爱", "北", "京"]
    assert tokens(normalize("在ALTER OPERATOR中必须")) == ["在", "alter", "operator", "中", "必", "须"]
    assert tokens("カタカナ ひらがな 한국어") == list("カタカナひらがな한국어")


def test_exact_keys_equal_for_equal_normal_forms(sst2):
    base = sst2[:200]
    variants = [s.upper().replace(" ", "  ,\t") + " !" for s in base]
    keys, valid = exact_keys(base + variants)
    assert keys.dtype == np.uint64 and keys.shape == (400, 2) and valid.all()
    assert (keys[:200] == keys[200:]).all()
    assert len(np.unique(keys[:200], axis=0)) == 200


def test_none_and_empty_rows_are_never_grouped(hasher, sst2):
    texts = [None, "", "   ", "!!!", sst2[0], None, "", "?!", sst2[0], "\u200b"]
    keys, valid = exact_keys(texts)
    sigs, sig_valid = hasher.signatures(texts)
    assert (valid == sig_valid).all() and valid.tolist() == [False] * 4 + [True] + [False] * 3 + [True, False]
    pairs = candidate_pairs(np.hstack([hasher.band_keys(sigs), keys[:, :1]]), valid)
    assert pairs.tolist() == [[4, 8]]
    rep = groups(len(texts), verify(pairs, sigs, hasher.threshold))
    assert rep.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 4, 9]


def test_estimated_jaccard_close_to_true_jaccard(sst2):
    """Pairs at every similarity: a sentence against itself with 0 to all of its words replaced."""
    rng = random.Random(1)
    vocab = sorted({w for s in sst2 for w in s.split()})
    long = [s for s in sst2 if len(s.split()) >= 15]
    a, b = [], []
    for s in rng.sample(long, 1500):
        words = s.split()
        for at in rng.sample(range(len(words)), rng.randrange(len(words) + 1)):
            words[at] = rng.choice(vocab)
        a.append(s)
        b.append(" ".join(words))
    truth = np.array([jaccard(x, y) for x, y in zip(a, b)])
    for hasher in (MinHasher(), MinHasher(num_perm=128, seed=7)):
        error = similar(hasher.signatures(a)[0], hasher.signatures(b)[0]) - truth
        assert abs(error.mean()) < 0.01
        assert np.quantile(np.abs(error), 0.99) < 0.1
    assert truth.min() < 0.2 and truth.max() == 1.0


def test_lsh_params_threshold_near_requested():
    assert lsh_params(0.8, 128) == (9, 13)  # datasketch's MinHashLSH(0.8, 128)
    assert lsh_params(0.5, 128) == (25, 5)
    assert lsh_params(0.9, 256) == (9, 28)
    for threshold in (0.5, 0.7, 0.8, 0.9):
        for num_perm in (64, 128, 256):
            b, r = lsh_params(threshold, num_perm)
            assert b * r <= num_perm
            assert abs((1 / b) ** (1 / r) - threshold) < 0.08
    hasher = MinHasher()
    assert hasher.bands * hasher.rows <= hasher.num_perm
    # Tuned for recall: a pair at the threshold is a candidate more often than not.
    assert 1 - (1 - 0.8**hasher.rows) ** hasher.bands > 0.9


def test_one_and_two_word_edits_are_grouped(hasher, sst2):
    rng = random.Random(2)
    vocab = sorted({w for s in sst2 for w in s.split()})
    one = rng.sample([s for s in sst2 if 20 <= len(s.split()) < 30], 300)
    two = rng.sample([s for s in sst2 if len(s.split()) >= 30], 300)
    copies = [" ".join(edit(s.split(), rng, vocab)) for s in one]
    copies += [" ".join(edit(edit(s.split(), rng, vocab), rng, vocab)) for s in two]
    rep = dedup(hasher, one + two + copies)
    assert (rep[:600] == np.arange(600)).all()
    assert (rep[600:] == np.arange(600)).mean() >= 0.99


def test_distinct_sentences_are_not_grouped(hasher, sst2):
    texts = sst2[:4000]
    sigs, valid = hasher.signatures(texts)
    merged = verify(candidate_pairs(hasher.band_keys(sigs), valid), sigs, hasher.threshold)
    # The only merges are between sentences that are near-duplicates already.
    assert all(jaccard(texts[i], texts[j]) >= 0.7 for i, j in merged)
    rep = groups(len(texts), merged)
    assert (rep == np.arange(len(texts))).mean() >= 0.999


def test_chinese_one_character_changed_is_grouped(hasher, chinese):
    """Sentences of 30+ Chinese characters (two consecutive messages of the pure Chinese rows
    joined), each against a copy with one character replaced."""
    rng = random.Random(4)
    is_han = lambda c: "\u4e00" <= c <= "\u9fff"  # noqa: E731
    han = sorted({c for t in chinese for c in t if is_han(c)})
    joined = [chinese[k] + "，" + chinese[k + 1] for k in range(0, 100, 2)]
    originals = [t for t in joined if sum(map(is_han, t)) >= 30]
    assert len(originals) >= 20
    copies = []
    for text in originals:
        at = rng.choice([i for i, c in enumerate(text) if is_han(c)])
        copies.append(text[:at] + rng.choice([c for c in han if c not in text]) + text[at + 1 :])
    rep = dedup(hasher, originals + copies)
    assert (rep == np.tile(np.arange(len(originals)), 2)).all()
    # Distinct messages, Chinese and mixed, stay apart.
    assert (dedup(hasher, chinese) == np.arange(len(chinese))).all()


def test_groups_keep_first_occurrence_whatever_the_pair_order():
    pairs = np.array([[3, 7], [7, 9], [1, 4], [4, 8], [9, 12], [2, 5]])
    expected = np.arange(13)
    expected[[7, 9, 12]] = 3  # transitive: 3~7~9~12 is one group
    expected[[4, 8]] = 1
    expected[5] = 2
    rng = np.random.default_rng(0)
    for _ in range(20):
        shuffled = rng.permutation(pairs)
        flip = rng.random(len(pairs)) < 0.5
        shuffled[flip] = shuffled[flip][:, ::-1]
        assert (groups(13, shuffled) == expected).all()
    order = np.arange(13)[::-1].copy()  # keep the last occurrence instead
    rep = groups(13, pairs, order)
    assert rep[3] == rep[7] == rep[9] == 12 and rep[1] == rep[4] == 8 and rep[2] == 5
    assert (groups(5, np.empty((0, 2), dtype=np.int64)) == np.arange(5)).all()


def test_candidate_pairs_star_for_a_huge_bucket(hasher, sst2):
    sigs, valid = hasher.signatures([sst2[0]] * 10_000 + sst2[1:101])
    keys = hasher.band_keys(sigs)
    pairs = candidate_pairs(keys, valid)
    star = pairs[pairs[:, 1] < 10_000]
    assert len(star) == 9_999  # not 10,000 * 9,999 / 2
    assert (star[:, 0] == 0).all() and (np.sort(star[:, 1]) == np.arange(1, 10_000)).all()
    assert pairs.dtype == np.int64 and (pairs[:, 0] < pairs[:, 1]).all()
    rep = groups(len(valid), verify(pairs, sigs, hasher.threshold))
    assert (rep[:10_000] == 0).all()


def test_signatures_deterministic_and_independent_of_batching(sst2):
    texts = sst2[:500] + [None, ""]
    first, second = MinHasher(seed=5), MinHasher(seed=5)
    sigs, valid = first.signatures(texts)
    assert sigs.dtype == np.uint32 and sigs.shape == (502, 256)
    batched = np.vstack([second.signatures(texts[k : k + 7])[0] for k in range(0, len(texts), 7)])
    assert (sigs == batched).all()
    assert (first.band_keys(sigs) == second.band_keys(batched)).all()
    other = MinHasher(seed=6).signatures(texts)[0]
    assert (sigs[valid] != other[valid]).mean() > 0.9


def test_char_shingles_and_word_ngrams(sst2):
    texts = sst2[:300]
    for kind, n in (("char", 5), ("word", 3)):
        hasher = MinHasher(shingle=kind, ngram=n)
        sigs, valid = hasher.signatures(texts + texts[:50] + ["ab", "ab", "abc"])
        assert valid.all()
        assert (similar(sigs[:50], sigs[300:350]) == 1).all()
        assert similar(sigs[350], sigs[351]) == 1 and similar(sigs[350], sigs[352]) < 1
        assert np.quantile(similar(sigs[:150], sigs[150:300]), 0.99) < 0.3
    with pytest.raises(ValueError):
        MinHasher(shingle="line")


def test_quality_planted_near_duplicates(hasher, sst2):
    """5,000 sentences and 1,000 copies, each with one word substituted, deleted or inserted in a
    sentence of 12+ words, all shuffled: the copies join their originals, distinct rows survive."""
    rng = random.Random(0)
    vocab = sorted({w for s in sst2 for w in s.split()})
    originals = rng.sample(sst2, 5000)
    sources = rng.sample([i for i, s in enumerate(originals) if len(s.split()) >= 12], 1000)
    copies = [" ".join(edit(originals[i].split(), rng, vocab)) for i in sources]
    rows = originals + copies
    shuffle = np.random.default_rng(0).permutation(len(rows))  # position of row k is shuffle[k]
    shuffled = [None] * len(rows)
    for k, at in enumerate(shuffle):
        shuffled[at] = rows[k]
    rep = dedup(hasher, shuffled)
    collapsed = np.mean([rep[shuffle[5000 + k]] == rep[shuffle[i]] for k, i in enumerate(sources)])
    distinct_kept = len(set(rep[shuffle[:5000]].tolist())) / 5000
    assert collapsed >= 0.99, collapsed
    assert distinct_kept >= 0.999, distinct_kept


def test_packed_keys_survive_parquet_slices_takes_and_nulls(tmp_path):
    """The dedup stage stores each row's keys as raw bytes: read back through Parquet, a slice and
    a take, every valid row's keys are the ones written and the null rows stay null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.stages.dedup import _packed, _stack

    rng = np.random.default_rng(3)
    valid = rng.random(1000) > 0.1
    bands = rng.integers(0, 2**63, (1000, 7), dtype=np.uint64)
    sigs = rng.integers(0, 2**16, (1000, 33), dtype=np.uint16)
    pq.write_table(pa.table({"b": _packed(bands, valid), "s": _packed(sigs, valid)}), tmp_path / "k.parquet",
                   compression="none", use_dictionary=False)
    back = pq.read_table(tmp_path / "k.parquet")
    chunks = pa.chunked_array([back["b"].combine_chunks().slice(0, 400), back["b"].combine_chunks().slice(400)])
    matrix, ok = _stack([chunks])
    assert (ok == valid).all() and (matrix[ok] == bands[valid]).all()
    picked = np.array([5, 17, 400, 401, 998])
    matrix, ok = _stack([back["s"].take(pa.array(picked))], np.uint16)
    assert (ok == valid[picked]).all() and (matrix[ok] == sigs[picked][valid[picked]]).all()
    assert _stack([pa.chunked_array([], pa.binary(8))])[0].shape[0] == 0

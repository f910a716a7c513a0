"""Language identification: script rules, scores of short and mixed rows, odd strings, the batch path
against the row path, and accuracy on real translated sentences against plain py3langid."""

from __future__ import annotations

import py3langid
import pytest

from jobs.hygiene import langid
from jobs.hygiene.langid import UNDETERMINED, LanguageId
from tests.helpers import lang_corpus


@pytest.fixture(scope="module")
def model() -> LanguageId:
    return LanguageId()


def sentences(lang: str, count: int = 50) -> list[str]:
    return [text for text, code in lang_corpus.labelled_sentences((lang,), per_lang=count)]


def accuracy(predicted: list[str], rows: list[tuple[str, str]]) -> float:
    return sum(code == label for code, (_, label) in zip(predicted, rows)) / len(rows)


@pytest.mark.parametrize("text, code", [
    ("日本のアニメはとても面白いです", "ja"),
    ("ファイルを開けません", "ja"),  # kana only
    ("한국 영화는 정말 재미있어요", "ko"),
    ("这部电影非常好看，演员的表演也很精彩。", "zh"),
    ("無法開啟檔案，請稍後再試", "zh"),  # traditional characters
    ("Γεια σου κόσμε, τι κάνεις σήμερα;", "el"),
    ("שלום עולם, מה שלומך היום", "he"),
    ("สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย", "th"),
    ("გამარჯობა მსოფლიო, როგორ ხარ", "ka"),
    ("Բարեւ աշխարհ, ինչպես ես այսօր", "hy"),
    ("नमस्ते, आप कैसे हैं? मैं ठीक हूँ।", "hi"),
    ("مرحبا بالعالم، كيف حالك اليوم؟", "ar"),
    ("سلام دنیا، حال شما امروز چطور است؟", "fa"),
    ("Привет, как дела? Всё хорошо, спасибо.", "ru"),
    ("Привіт, як справи? Усе добре, дякую.", "uk"),
    ("the acting was wonderful and the story was moving", "en"),
    ("Ça reste un très bon film, même après dix ans.", "fr"),
])
def test_script_rules_and_the_model_name_the_language(model, text, code):
    found, score = model.detect(text)
    assert found == code and 0.3 < score <= 1.0


@pytest.mark.parametrize("lang", ["ja", "ko", "zh"])
def test_cjk_scripts_decide_real_sentences(model, lang):
    texts = sentences(lang)
    assert accuracy([code for code, _ in model.detect_many(texts)], [(t, lang) for t in texts]) >= 0.95


def test_ukrainian_and_russian_are_told_apart(model):
    rows = lang_corpus.labelled_sentences(("ru", "uk"), per_lang=100)
    found = [code for code, _ in model.detect_many([text for text, _ in rows])]
    for lang in ("ru", "uk"):
        mine = [(code, row) for code, row in zip(found, rows) if row[1] == lang]
        assert accuracy([code for code, _ in mine], [row for _, row in mine]) >= 0.95
    assert set(found) <= set(langid.SCRIPT_CANDIDATES["Cyrillic"]) | {"en", "und"}


def test_english_words_in_a_chinese_row_lower_its_score(model):
    pure = "无法打开文件，请检查路径是否正确然后重试"
    mixed = "无法打开文件 permission denied by the server，请检查路径是否正确然后重试"
    (pure_code, pure_score), (mixed_code, mixed_score) = model.detect(pure), model.detect(mixed)
    assert pure_code == mixed_code == "zh"
    assert mixed_score < pure_score


def test_code_mixed_chinese_rows_stay_chinese(model):
    rows = lang_corpus.code_mixed_chinese(100)
    found = model.detect_many([text for text, _ in rows])
    assert accuracy([code for code, _ in found], rows) >= 0.9
    pure = model.detect_many(sentences("zh", 100))
    mean = lambda pairs: sum(score for _, score in pairs) / len(pairs)  # noqa: E731
    assert mean(found) < mean(pure)


def test_short_rows_score_lower_than_long_ones(model):
    short, long = model.detect("Datei öffnen"), model.detect("Die Datei konnte nicht geöffnet werden, weil sie fehlt")
    assert long[0] == "de" and short[1] < long[1]


@pytest.mark.parametrize("text", ["", " ", "ok", "a!", "😀😀😀🎉", "12345 678,90", "https://example.com/42",
                                  "me@example.org", "!!! ??? ...", "\u0301\u0301\u0301"])
def test_rows_with_nothing_to_go_on_are_undetermined(model, text):
    assert model.detect(text) == (UNDETERMINED, 0.0)


ODD = ["\ud800", "abc \ud800 def ghi", "\udfff" * 50, "\x00" * 20, "text\x00with\x00nul bytes", "a" * 100_000,
       "Der Text geht weiter und weiter. " * 3_000, "日本語" * 40_000, "\n\t\r" * 100, "ᚠᚢᚦᚨᚱ ᚲᚷᚹ ᚺᚾᛁ",
       "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝔣𝔯𝔞𝔨𝔱𝔲𝔯", "\ufeff\u200b\u200d", "ﷺ ﷻ", None, 42, b"bytes are not text"]


def test_odd_strings_never_raise(model):
    for text in ODD:
        code, score = model.detect(text)
        assert isinstance(code, str) and 0.0 <= score <= 1.0
    assert model.detect(None) == model.detect(b"bytes are not text") == (UNDETERMINED, 0.0)
    assert model.detect_many(ODD) == [model.detect(text) for text in ODD]
    assert model.detect_many([]) == []
    assert langid.detect("\ud800") == (UNDETERMINED, 0.0)


def test_the_batch_path_gives_the_row_path_answers(model):
    rows = lang_corpus.labelled_sentences(per_lang=30, seed=3) + lang_corpus.mixed_sentences(count=30)
    texts = [text for text, _ in rows]
    one_by_one = [model.detect(text) for text in texts]
    batched = model.detect_many(texts)
    assert [code for code, _ in batched] == [code for code, _ in one_by_one]
    assert all(abs(a[1] - b[1]) < 1e-3 for a, b in zip(batched, one_by_one))


def test_candidate_sets_stay_on_their_instance():
    french = "Ça reste un très bon film, même après dix ans."
    assert LanguageId(languages={"Latin": ("en", "de")}).detect(french)[0] in ("en", "de")
    assert LanguageId().detect(french)[0] == "fr"
    assert len(py3langid.rank("Isto é un texto en galego")) > 100  # the global identifier keeps every language
    with pytest.raises(ValueError):
        LanguageId(languages={"Latin": ("en", "xx")})


def test_accuracy_beats_plain_py3langid_on_fourteen_languages(model):
    rows = lang_corpus.labelled_sentences(per_lang=100)
    assert len(rows) == 1400
    ours = accuracy([code for code, _ in model.detect_many([text for text, _ in rows])], rows)
    theirs = accuracy([py3langid.classify(text)[0] for text, _ in rows], rows)
    assert ours >= theirs and ours >= 0.9, (ours, theirs)


def test_the_corpus_is_deterministic_and_labelled():
    first = lang_corpus.labelled_sentences(per_lang=20, seed=7)
    assert first == lang_corpus.labelled_sentences(per_lang=20, seed=7)
    assert first != lang_corpus.labelled_sentences(per_lang=20, seed=8)
    assert {code for _, code in first} == set(lang_corpus.FOURTEEN)
    assert all("%s" not in text and "%d" not in text for text, _ in first)
    assert len({text for text, _ in first}) == len(first)

"""The clean stage on real and hostile text, without Ray."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.stages.base import ERROR, ERROR_TYPE, StageContext, StageRunner
from jobs.stages.clean import CleanError, CleanParams, CleanStage, clean_text

CTX = StageContext("t", 0, 0, "clean")


def params(**kw):
    return CleanParams(use="clean", column="text", **kw)


def test_real_sentence_is_unchanged(sentences):
    for sentence in sentences[:50]:
        assert clean_text(sentence, params()) == " ".join(sentence.split())


def test_normalization_controls_and_whitespace():
    assert clean_text("cafe\u0301  is\t\tnice\n", params()) == "caf\u00e9 is nice"
    assert clean_text("ｆｕｌｌ width", params(normalize="NFKC")) == "full width"
    assert clean_text("ｆｕｌｌ", params(normalize="none")) == "ｆｕｌｌ"
    assert clean_text("a\x00b\x07c\u200bd\ufeff", params()) == "abcd"
    assert clean_text("line\u2028break", params()) == "line break"
    assert clean_text("Keep CASE", params(lowercase=True)) == "keep case"


def test_mixed_chinese_english_and_emoji_survive():
    text = "这个产品很好 the battery lasts 两天 👍🏽 family: 👨‍👩‍👧"
    assert clean_text(text, params()) == text  # ZWJ sequences kept


@pytest.mark.parametrize("value, kind", [
    (None, "null"), ("   \t ", "empty"), (b"\xff\xfe bad", "invalid_utf8"), (12, "not_a_string"),
    ("x" * 101, "too_long"), ("ab", "too_short"),
])
def test_unusable_values_say_why(value, kind):
    with pytest.raises(CleanError) as info:
        clean_text(value, params(min_chars=3, max_chars=100))
    assert info.value.kind == kind and str(info.value)


def test_stage_marks_failures_and_keeps_original_values():
    bad_utf8 = pa.array([b"good  text", b"\xffbad", None, b"  "], pa.binary()).view(pa.string())
    batch = pa.table({"row_id": ["a", "b", "c", "d"], "text": bad_utf8})
    out, stats = StageRunner(CleanStage(params(), CTX))(batch)
    assert out["text_clean"].to_pylist() == ["good text", "\\xffbad", None, "  "]
    # The input column passes through unchanged, except that bytes which are not UTF-8 are escaped
    # in the rows that go to the dead letter (a string column must stay readable).
    assert out["text"].to_pylist() == ["good  text", "\\xffbad", None, "  "]
    assert out[ERROR_TYPE].to_pylist() == [None, "invalid_utf8", "null", "empty"]
    assert all(out[ERROR].to_pylist()[1:])
    assert (stats["rows_in"], stats["rows_out"], stats["rows_dead"]) == (4, 1, 3)
    assert stats["dead_invalid_utf8"] == 1


def test_output_column_leaves_input_untouched():
    batch = pa.table({"text": ["  A  b "]})
    out = CleanStage(params(output_column="clean_text"), CTX)(batch)
    assert out["text"].to_pylist() == ["  A  b "] and out["clean_text"].to_pylist() == ["A b"]
    default = CleanStage(params(), CTX)(batch)
    assert default["text"].to_pylist() == ["  A  b "] and default["text_clean"].to_pylist() == ["A b"]
    in_place = CleanStage(params(output_column="text"), CTX)(batch)  # asked for: cleaned in place
    assert in_place.column_names == ["text"] and in_place["text"].to_pylist() == ["A b"]

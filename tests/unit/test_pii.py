"""The PII detector on real sentences with planted values: every kind found, in English and inside
Chinese text with no spaces; checksums and formats keep prices, years, scores, dates and invalid
numbers out; masking and pseudonyms never leave a value behind."""

from __future__ import annotations

from collections import Counter

import pytest

from jobs.hygiene import pii
from tests.helpers.pii_corpus import clean_rows, decoy_rows, planted_rows


def spans(text: str, detector=None) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in (detector or pii.Detector()).find(text)]


def test_every_kind_inside_chinese_text_without_spaces():
    text = "请联系13812345678或邮件zhang.san@example.com，身份证号11010519491231002X，卡号4111111111111111。"
    assert spans(text) == [("phone", "13812345678"), ("email", "zhang.san@example.com"),
                           ("cn_id", "11010519491231002X"), ("credit_card", "4111111111111111")]


@pytest.mark.parametrize("text", ["card 4111 1111 1111 1112 declined",          # fails Luhn
                                  "iban DE89 3704 0044 0532 0130 01 please",     # fails mod 97
                                  "身份证号110105194912310021已登记",               # wrong check digit
                                  "it cost $1,299.00 in 2024 and scored 98.5",   # price, year, score
                                  "released 2024-05-01 at 12:30:45, version 10.0.1"])
def test_invalid_checksums_and_ordinary_numbers_are_not_caught(text):
    assert spans(text) == []


def test_recall_per_kind_and_precision_on_real_sentences():
    detector = pii.Detector()
    found, planted = Counter(), Counter()
    for row in planted_rows(2000):
        hits = spans(row["text"], detector)
        for kind, value in row["planted"]:
            planted[kind] += 1
            found[kind] += any(k == kind and (value in v or v in value) for k, v in hits)
    assert set(planted) == set(pii.KINDS)
    assert {k: found[k] / planted[k] for k in planted} == pytest.approx({k: 1.0 for k in planted}, abs=0.01)
    assert sum(bool(detector.find(r["text"])) for r in decoy_rows(2000)) <= 2
    assert sum(bool(detector.find(r["text"])) for r in clean_rows(5000)) <= 5  # <= 0.1% of clean rows


def test_entities_and_allow_list_restrict_what_is_found():
    text = "mail help@example.com or me li.wei@example.cn, call +44 20 7946 0958"
    assert [k for k, _ in spans(text, pii.Detector(["phone"]))] == ["phone"]
    assert spans(text, pii.Detector(allow=["help@example.com"]))[0] == ("email", "li.wei@example.cn")
    with pytest.raises(ValueError, match="passport"):
        pii.Detector(["passport"])


def test_mask_and_pseudonymize_leave_no_value_and_keep_pseudonyms_consistent():
    text = "write to li.wei@example.cn, again LI.WEI@example.cn, or bo@example.org"
    found = pii.Detector().find(text)
    assert pii.redact(text, found) == "write to <EMAIL>, again <EMAIL>, or <EMAIL>"
    first = pii.redact(text, found, "pseudonymize", b"a-salt-of-16-chars")
    again = pii.redact(text, pii.Detector().find(text), "pseudonymize", b"a-salt-of-16-chars")
    other_salt = pii.redact(text, found, "pseudonymize", b"another-salt-16-chars")
    names = first.replace(",", "").split()
    assert first == again and "example" not in first
    assert names[2] == names[4] != names[6]  # the same address (any case) gets the same pseudonym
    assert other_salt != first


def test_redact_stage_can_replace_the_raw_column_so_no_copy_of_a_value_stays():
    import pyarrow as pa

    from jobs.stages.base import StageContext
    from jobs.stages.redact import RedactParams, RedactStage

    batch = pa.table({"row_id": ["a", "b"], "text": ["mail li.wei@example.cn now", "no personal data here"]})
    params = RedactParams(use="redact", column="text", output_column="text")
    out = RedactStage(params, StageContext("j", 0, 0, "redact"))(batch)
    assert out.column_names == ["row_id", "text", "pii_entities"]
    assert out["text"].to_pylist() == ["mail <EMAIL> now", "no personal data here"]
    assert out["pii_entities"].to_pylist() == [["email"], []]

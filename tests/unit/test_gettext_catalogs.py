"""The frozen language corpus: how catalog messages are cleaned into sentences, that freezing the
catalogs again writes the same bytes, and that the corpus the tests read is the frozen one."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.helpers import gettext_catalogs as catalogs
from tests.helpers import lang_corpus


@pytest.mark.parametrize("message, text", [
    ("Cannot open file '%s': %s", "Cannot open file"),
    ("<b>_Save</b> the document to %1$s", "Save the document to"),
    ("use --force to overwrite ~/notes.txt", "use to overwrite"),
    ("ファイル「%s」を開けません(_O)", "ファイル を開けません"),
    ("see https://example.org/help for the_config_key", "see for"),
])
def test_messages_lose_markup_placeholders_options_and_paths(message, text):
    assert catalogs.clean(message) == text


def test_an_untranslated_message_in_a_korean_catalog_is_not_korean():
    assert catalogs.long_enough("파일을 열 수 없습니다 다시 시도하세요", "ko")
    assert not catalogs.long_enough("Cannot open the file, try again later", "ko")


@pytest.mark.skipif(catalogs.available(("ja", "ko")) != ("ja", "ko"),
                    reason="freezing reads the gettext catalogs of /usr/share/locale")
def test_freezing_twice_writes_the_same_bytes(tmp_path):
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    frozen = catalogs.freeze(first, langs=("ja", "ko"), sentences=30, short=5)
    catalogs.freeze(second, langs=("ja", "ko"), sentences=30, short=5)
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(gzip.decompress(first.read_bytes())) == frozen
    assert {lang: len(v["sentences"]) for lang, v in frozen["langs"].items()} == {"ja": 30, "ko": 30}
    assert all(catalogs.long_enough(text, "ko") for text in frozen["langs"]["ko"]["sentences"])


def test_the_tests_read_the_frozen_corpus_of_fourteen_languages():
    frozen = json.loads(gzip.decompress(catalogs.FROZEN.read_bytes()))
    assert set(frozen["langs"]) == set(lang_corpus.FOURTEEN)
    assert all(len(v["sentences"]) == catalogs.SENTENCES for v in frozen["langs"].values())
    rows = lang_corpus.labelled_sentences(("ja",), per_lang=catalogs.SENTENCES)
    assert sorted(text for text, _ in rows) == sorted(frozen["langs"]["ja"]["sentences"])
    with pytest.raises(ValueError, match="xx"):
        lang_corpus.labelled_sentences(("xx",))

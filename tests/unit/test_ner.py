"""The redact stage's entity model (jobs/hygiene/ner.py) on a tiny token-classification model whose
labels are known (tests/tiny_models.py NER_WORDS): names and places found at their exact spans in
English and Chinese rows, past the model's input limit, widened to whole words, beaten by pattern
findings, and masked or pseudonymized by the stage like any other kind."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.errors import SpecError
from jobs.hygiene import ner, pii
from jobs.stages.base import ROW_ID, StageContext
from jobs.stages.redact import RedactParams, RedactStage, Scrubber


@pytest.fixture(scope="module")
def model(tiny_models):
    return ner.EntityModel(str(tiny_models.ner), labels=ner.DEFAULT_LABELS)


def spans(model, texts):
    return [[(f.kind, t[f.start:f.end]) for f in found] for t, found in zip(texts, model.find(texts))]


def test_names_and_places_in_english_and_chinese_rows(model):
    texts = ["Alice Johnson moved to Springfield last year.", "请联系王芳，她住在深圳。", "", "nothing to see here",
             "Priya Nakamura, 12 Springfield Avenue: write to priya@example.com"]
    assert spans(model, texts) == [
        [("person", "Alice Johnson"), ("location", "Springfield")],
        [("person", "王芳"), ("location", "深圳")],
        [], [],
        [("person", "Priya Nakamura"), ("location", "Springfield Avenue")]]


def test_a_name_past_the_input_limit_is_found_in_a_later_window(model):
    filler = " ".join(["the film is quietly moving"] * 20)  # far over the model's 48 tokens
    text = f"Bob wrote: {filler} and Alice agreed"
    assert len(model.tokenizer(text)["input_ids"]) > 3 * model.max_tokens
    assert spans(model, [text]) == [[("person", "Bob"), ("person", "Alice")]]


def test_spans_widen_to_whole_words_but_not_across_chinese_text():
    assert ner.widen("Alicia came", 0, 3) == (0, 6)
    assert ner.widen("(Alice) came", 0, 7) == (1, 6)
    assert ner.widen("王芳住在深圳", 0, 2) == (0, 2)


def test_a_pattern_finding_wins_over_an_entity_that_overlaps_it():
    patterns = [pii.Found("email", 10, 25)]
    entities = [pii.Found("person", 0, 5), pii.Found("person", 10, 15)]
    assert ner.combine(patterns, entities) == [pii.Found("person", 0, 5), pii.Found("email", 10, 25)]


def test_min_score_and_labels_the_model_lacks(tiny_models):
    strict = ner.EntityModel(str(tiny_models.ner), labels=ner.DEFAULT_LABELS, min_score=0.99)
    assert strict.find(["Alice Johnson moved to Springfield"]) == [[]]
    with pytest.raises(SpecError, match="none of its labels"):
        ner.EntityModel(str(tiny_models.ner), labels={"ORG": "organization"})


def test_the_stage_masks_pseudonymizes_and_scrubs_entities_with_the_patterns(tiny_models, monkeypatch):
    monkeypatch.setenv("RAYBATCH_REDACT_SALT", "s" * 20)
    texts = ["Alice Johnson wrote to bob@example.com from Shenzhen", "王芳的电话是13812345678", "no one here"]
    batch = pa.table({"text": texts, ROW_ID: ["a", "b", "c"]})
    masked = RedactStage(RedactParams(use="redact", column="text", model=str(tiny_models.ner)),
                         StageContext("t", 0, 0, "redact"))(batch)
    assert masked["text_redacted"].to_pylist() == ["<PERSON> wrote to <EMAIL> from <LOCATION>", "<PERSON>的电话是<PHONE>",
                                                   "no one here"]
    assert masked["pii_entities"].to_pylist() == [["person", "email", "location"], ["person", "phone"], []]
    params = RedactParams(use="redact", column="text", model=str(tiny_models.ner), mode="pseudonymize")
    assert RedactStage.runs_in_actors(params) and not RedactStage.runs_in_actors(RedactParams(use="redact", column="t"))
    named = RedactStage(params, StageContext("t", 0, 0, "redact"))(batch)["text_redacted"].to_pylist()
    alice = pii.pseudonym("person", "Alice Johnson", b"s" * 20)
    assert named[0].startswith(alice + " wrote to <EMAIL_") and alice == pii.pseudonym("person", "alice  JOHNSON", b"s" * 20)
    # Rows that leave the job elsewhere (dead letter, _filtered/, the report) are masked with the model too.
    scrubbed = Scrubber(params.entities, [], params.model_dump(mode="json"))(pa.table({"text": texts}))
    assert scrubbed["text"].to_pylist() == masked["text_redacted"].to_pylist()


def test_model_labels_must_name_kinds_that_read_as_placeholders():
    with pytest.raises(ValueError, match="lower-case"):
        RedactParams(use="redact", column="t", model="m", model_labels={"PER": "Person Name"})

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


def test_several_rows_over_several_windows_in_small_batches(tiny_models):
    """Windows of different rows, sorted by length and batched two at a time, land in their rows."""
    model = ner.EntityModel(str(tiny_models.ner), labels=ner.DEFAULT_LABELS, batch_size=2)
    filler = " ".join(["a quietly moving film"] * 25)
    texts = [f"{filler} and then Alice", "Bob came", "", f"Priya said {filler} near Shenzhen", "no one"]
    assert spans(model, texts) == [[("person", "Alice")], [("person", "Bob")], [],
                                   [("person", "Priya"), ("location", "Shenzhen")], []]


def test_spans_widen_to_whole_words_with_their_marks_but_not_in_scripts_without_spaces():
    assert ner.widen("Alicia came", 0, 3) == (0, 6)
    assert ner.widen("(Alice) came", 0, 7) == (1, 6)
    assert ner.widen("王芳住在深圳", 0, 2) == (0, 2)
    assert ner.widen("सीता आई", 0, 3) == (0, 4)  # the vowel sign goes with the name
    nfd = "Jose\u0301 came"
    assert ner.widen(nfd, 0, 4) == (0, 5)
    assert ner.widen("สมชายไปตลาด", 0, 5) == (0, 5)  # Thai: no spaces to widen to


def test_a_pattern_keeps_its_span_and_an_entity_keeps_the_rest():
    text = "Contact Alice Johnson alice.j@example.com now"
    email = pii.Found("email", text.index("alice.j"), text.index(" now"))
    run_on = pii.Found("person", text.index("Alice"), text.index(".j@"))  # the model ran into the address
    assert ner.combine(text, [email], [run_on]) == [pii.Found("person", 8, 21), email]
    assert pii.redact(text, ner.combine(text, [email], [run_on])) == "Contact <PERSON> <EMAIL> now"
    inside = pii.Found("person", email.start, email.start + 5)
    assert ner.combine(text, [email], [inside]) == [email]


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


@pytest.mark.parametrize("labels, message", [({"PER": "Person Name"}, "lower-case"),
                                             ({"PER": "email"}, "patterns find"), ({"O": "other"}, "outside")])
def test_model_labels_must_name_kinds_of_their_own(labels, message):
    with pytest.raises(ValueError, match=message):
        RedactParams(use="redact", column="t", model="m", model_labels=labels)


def test_the_report_hides_rows_when_the_redact_model_cannot_load_where_it_renders(tmp_path):
    from jobs.report_stages import _masked

    specs = [{"use": "redact", "column": "text", "model": str(tmp_path / "gone")}]
    rows, scrubbed = _masked([["Alice Johnson wrote", "r1"]], specs)
    assert scrubbed and all("Alice" not in value and value.startswith("(hidden: redact") for value in rows[0])

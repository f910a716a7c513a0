"""The augment stage without Ray: copies, lineage, the source-row invariant, dedup, edit-rate bound,
guards for short / non-English / null rows, the split guard, chain mode, and block independence."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from augment import measures
from augment.augmenter import Augmenter, derive_seed, first_plan
from augment.params import AugmentParams
from augment.stage import LINEAGE_COLUMNS, AugmentStage
from jobs.stages.base import ERROR, ERROR_STAGE, ERROR_TYPE, SHARD, SOURCE, StageContext, StageRunner
from tests.conftest import eda_sentences

FOUR_OPS = [{"op": "substitute"}, {"op": "insert"}, {"op": "reorder"}, {"op": "delete"}]


def params(**kw) -> AugmentParams:
    return AugmentParams.model_validate({"use": "augment", "column": "text", "copies": 4, "ops": FOUR_OPS, **kw})


def block(texts, splits=None, ids=None, text_type=pa.string()) -> pa.Table:
    n = len(texts)
    columns = {"row_id": ids or [f"r{i}" for i in range(n)], "text": pa.array(texts, text_type),
               "label": list(range(n)), "split": splits or ["train"] * n}
    table = pa.table(columns)
    return (table.append_column(SHARD, pa.array([0] * n, pa.int64())).append_column(SOURCE, pa.array([True] * n))
            .append_column(ERROR_STAGE, pa.nulls(n, pa.string())).append_column(ERROR_TYPE, pa.nulls(n, pa.string()))
            .append_column(ERROR, pa.nulls(n, pa.string())))


def run(p: AugmentParams, table: pa.Table, seed: int = 0) -> tuple[pa.Table, dict]:
    return StageRunner(AugmentStage(p, StageContext("t", seed, 0, "augment")))(table)


def rows_of(table: pa.Table) -> list[dict]:
    return table.to_pylist()


@pytest.fixture(scope="module")
def real():
    return [text for _, text in eda_sentences(limit=120) if len(text.split()) >= 4][:60]


def test_copies_lineage_and_one_source_row_per_input(real):
    out, stats = run(params(), block(real))
    rows = rows_of(out)
    assert set(LINEAGE_COLUMNS) <= set(out.column_names)
    by_parent: dict[str, list[dict]] = {}
    for row in rows:
        by_parent.setdefault(row["parent_id"], []).append(row)
    assert sorted(by_parent) == sorted(f"r{i}" for i in range(len(real)))
    for parent, group in by_parent.items():
        assert sum(r[SOURCE] for r in group) == 1
        original = [r for r in group if not r["is_augmented"]]
        assert len(original) == 1 and original[0]["row_id"] == parent and original[0][SOURCE]
        assert original[0]["aug_op"] is None and original[0]["aug_seed"] is None and original[0]["edit_rate"] == 0
        for copy in (r for r in group if r["is_augmented"]):
            index = int(copy["row_id"].rsplit("~aug", 1)[1])
            assert copy["row_id"] == f"{parent}~aug{index}"
            start = first_plan(0, parent, 4)  # the ops taken in turn from the row's own offset
            assert copy["aug_op"] == ["substitute", "insert", "reorder", "delete"][(start + index) % 4]
            assert copy["label"] == original[0]["label"] and copy["split"] == "train"
            assert 0 < copy["edit_rate"] <= (1.0 if copy["aug_op"] == "reorder" else 0.5)
            assert copy["aug_seed"] == derive_seed(0, parent, index, copy["aug_op"], 0) or \
                stats[f"op_{copy['aug_op']}_retries"]
    made = sum(stats[f"op_{name}_made"] for name in ("substitute", "insert", "reorder", "delete"))
    assert made == stats["copies_made"] == pc.sum(out["is_augmented"]).as_py() >= len(real) * 4 * 0.95
    assert stats["rows_in"] == len(real) and stats["rows_out"] == out.num_rows


def test_aug_seed_replays_the_copy_exactly(real):
    p = params(chain=True, copies=2)
    out, _ = run(p, block(real[:20]), seed=5)
    augmenter = Augmenter(p, seed=5)
    for row in rows_of(out):
        if row["is_augmented"]:
            parent = real[int(row["parent_id"][1:])]
            assert augmenter.replay(parent, row["aug_seed"], p.ops) == row["text"]
            assert row["aug_op"] == "substitute+insert+reorder+delete"


def test_seeds_survive_pandas_which_reads_a_nullable_int_column_as_floats(real, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    p = params(copies=2)
    out, _ = run(p, block(real[:20]), seed=5)
    assert out["aug_seed"].null_count > 0  # the originals have none: pandas makes the column float64
    pq.write_table(out, tmp_path / "part.parquet")
    frame = pd.read_parquet(tmp_path / "part.parquet")
    assert frame["aug_seed"].dtype == "float64"
    augmenter = Augmenter(p, seed=5)
    for _, row in frame[frame["is_augmented"]].iterrows():
        parent = real[int(row["parent_id"][1:])]
        op = [o for o in p.ops if o.op == row["aug_op"]]
        assert augmenter.replay(parent, int(row["aug_seed"]), op) == row["text"]


def test_no_copy_equals_its_parent_or_a_sibling_and_duplicates_are_counted():
    # Three words, one swap within a window of one: only two distinct copies exist.
    p = params(copies=6, ops=[{"op": "reorder", "window": 1}], min_english=0)
    out, stats = run(p, block(["alpha beta gamma"]))
    texts = [r["text"] for r in rows_of(out)]
    normalized = [measures.normalize(t) for t in texts]
    assert len(normalized) == len(set(normalized)) == 3  # the parent and two copies
    assert stats["op_reorder_dropped_duplicate"] == 4 and stats["op_reorder_retries"] > 0
    assert rows_of(out)[0]["aug_skipped"] == "reorder:duplicate"
    # Case and spacing do not make a copy new.
    assert measures.normalize("The  Film ") == measures.normalize("the film")


def test_edit_rate_bound_drops_and_counts(real):
    p = params(copies=1, ops=[{"op": "substitute", "max_edit_rate": 0.01}])
    out, stats = run(p, block(real[:10]))
    assert not pc.any(out["is_augmented"]).as_py()
    assert stats["op_substitute_dropped_edit_rate"] == 10
    assert {r["aug_skipped"] for r in rows_of(out)} == {"substitute:edit_rate"}


def notes(row) -> set[str]:
    return set(row["aug_skipped"].split("; ")) if row["aug_skipped"] else set()


def test_rows_it_cannot_augment_are_kept_and_say_why():
    texts = ["ok fine", "这部电影非常好看，演员的表演也很精彩。", "这部 电影 非常 好看 演员 表演",
             None, "I love this 电影 so much, the acting is great", "the the the the",
             "Ça reste un très bon film, même après dix ans."]
    out, stats = run(params(copies=4), block(texts))
    rows = rows_of(out)
    originals = {r["row_id"]: r for r in rows if not r["is_augmented"]}
    copies = {f"r{i}": [r for r in rows if r["parent_id"] == f"r{i}" and r["is_augmented"]] for i in range(len(texts))}
    assert len(originals) == len(texts) and all(r[SOURCE] for r in originals.values())
    assert originals["r0"]["aug_skipped"] == "too_short"
    assert originals["r3"]["aug_skipped"] == "null_text" and originals["r3"]["text"] is None
    assert originals["r6"]["aug_skipped"] == "not_english"  # Latin script, but French: WordNet would mangle it
    for chinese in ("r1", "r2"):  # Chinese: segmented into words, so reorder and delete work on them
        assert notes(originals[chinese]) == {"substitute:unsupported_language", "insert:unsupported_language"}
        assert sorted(r["aug_op"] for r in copies[chinese]) == ["delete", "reorder"]
    assert originals["r4"]["aug_skipped"] is None  # mixed: each part handled by its script
    assert len(copies["r4"]) == 4 and all("电影" in r["text"] for r in copies["r4"] if r["aug_op"] != "delete")
    assert notes(originals["r5"]) == {"substitute:no_candidates", "insert:no_candidates", "reorder:no_candidates"}
    assert (stats["rows_too_short"], stats["rows_not_english"], stats["rows_null_text"]) == (1, 1, 1)
    assert stats["op_substitute_unsupported_language"] == stats["op_insert_unsupported_language"] == 2
    assert "rows_unsupported_language" not in stats  # both Chinese rows got copies from the other ops
    assert stats["rows_dead"] == 0


def test_a_row_no_op_can_handle_is_kept_unaugmented_and_counted():
    out, stats = run(params(copies=2, ops=[{"op": "substitute"}]), block(["这部电影非常好看，演员的表演也很精彩。"]))
    (row,) = rows_of(out)
    assert not row["is_augmented"] and row["aug_skipped"] == "substitute:unsupported_language"
    assert stats["rows_unsupported_language"] == 1 and stats["op_substitute_unsupported_language"] == 2


def test_keep_original_false_moves_the_source_flag_to_the_first_copy(real):
    texts = real[:8] + ["ok"]
    out, stats = run(params(keep_original=False, copies=3), block(texts))
    rows = rows_of(out)
    for i in range(len(texts)):
        group = [r for r in rows if r["parent_id"] == f"r{i}"]
        assert sum(r[SOURCE] for r in group) == 1
        if i < 8:
            assert all(r["is_augmented"] for r in group) and group[0][SOURCE] and group[0]["row_id"].endswith("~aug0")
        else:
            assert group == [r for r in rows if r["row_id"] == "r8"] and not group[0]["is_augmented"]
    assert stats["rows_kept_without_copy"] == 1


def test_split_guard_augments_only_the_listed_splits(real):
    splits = ["train", "validation", "test", "train"]
    out, stats = run(params(split_column="split", splits=["train"]), block(real[:4], splits=splits))
    counts = {f"r{i}": sum(1 for r in rows_of(out) if r["parent_id"] == f"r{i}") for i in range(4)}
    assert counts["r1"] == counts["r2"] == 1 and counts["r0"] == counts["r3"] == 5
    assert stats["rows_split_not_augmented"] == 2
    assert {r["aug_skipped"] for r in rows_of(out) if r["parent_id"] in ("r1", "r2")} == {"split"}
    assert params(split_column="split").augmented_splits == {"train"}
    with pytest.raises(ValidationError, match="split_column"):
        params(splits=["train"])


def test_output_depends_on_the_row_not_the_block(real):
    table = block(real[:30])
    whole, _ = run(params(), table)
    pieces = [run(params(), table.slice(start, 7))[0] for start in range(0, 30, 7)]
    assert pa.concat_tables(pieces).equals(whole)
    reordered, _ = run(params(), table.take(pa.array(list(range(29, -1, -1)))))
    key = lambda t: sorted(map(str, rows_of(t.drop_columns([SOURCE]))))  # noqa: E731
    assert key(reordered) == key(whole)
    other_seed, _ = run(params(), table, seed=1)
    assert not other_seed.equals(whole)


def test_stopwords_and_protect_options(real):
    p = params(copies=1, ops=[{"op": "substitute", "rate": 1.0}], stopwords=["rock", "destined"],
               protect=["century"])
    out, _ = run(p, block(["the rock is destined to be the st century is new conan"]))
    copy = rows_of(out)[1]["text"].split()
    assert {"rock", "destined", "century"} <= set(copy)
    augmenter = Augmenter(params(stopwords="none"), seed=0)
    assert augmenter.vocab.stopwords == frozenset()


def test_invalid_utf8_goes_to_the_dead_letter_and_valid_bytes_are_augmented(real):
    texts = [real[0].encode(), b"\xff\xfe broken bytes here"]
    out, stats = run(params(copies=1), block(texts, text_type=pa.binary()))
    failed = out.filter(pc.is_valid(out[ERROR_TYPE]))
    assert failed.num_rows == 1 and failed[ERROR_TYPE][0].as_py() == "invalid_utf8"
    assert failed[SOURCE][0].as_py() and failed["text"][0].as_py() == texts[1]  # bytes kept for replay
    assert stats["rows_dead"] == 1 and out.schema.field("text").type == pa.binary()
    assert out.filter(out["is_augmented"])["text"][0].as_py().decode() != real[0]


def test_params_are_checked():
    with pytest.raises(ValidationError, match="does not match"):
        params(ops=[{"op": "shout"}])
    with pytest.raises(ValidationError, match="extra"):
        params(ops=[{"op": "delete", "senses": 2}])
    with pytest.raises(ValidationError):
        params(copies=0)
    assert not params(ops=[{"op": "delete"}], min_english=0).needs_lexicon
    assert AugmentStage.input_columns(params(label_column="label", split_column="split")) == \
        {"text": "string", "label": "any", "split": "any"}


def test_languages_guard_reads_the_lang_column_or_detects_the_language():
    texts = ["这部电影非常好看，演员的表演也很精彩。", "the acting was wonderful and the story was moving",
             "Ça reste un très bon film, même après dix ans."]
    detected, stats = run(params(copies=2, languages=["ZH"], min_english=0), block(texts))
    skipped = {r["row_id"]: r["aug_skipped"] for r in rows_of(detected) if not r["is_augmented"]}
    assert skipped["r1"] == skipped["r2"] == "language_not_selected"
    assert any(r["parent_id"] == "r0" and r["is_augmented"] for r in rows_of(detected))
    assert stats["rows_language_not_selected"] == 2

    tagged = block(texts).append_column("lang", pa.array(["zh", "fr", "en"]))  # a language-id stage's column wins
    out, stats = run(params(copies=2, languages=["en"], min_english=0), tagged)
    augmented = {r["parent_id"] for r in rows_of(out) if r["is_augmented"]}
    assert augmented == {"r2"} and stats["rows_language_not_selected"] == 2

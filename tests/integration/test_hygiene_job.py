"""Hygiene stages end to end on a local Ray: clean → langid → redact → dedup (near, against an eval
set) over real sentences and Chinese prose with planted personal data, exact and near copies
spread over files and shards. Every input row ends in data/, the dead letter or _filtered/, and
no planted value leaves the job outside the redacted column."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT
from tests.helpers.jobs import assert_accounted, read_filtered, read_output, run, write_spec

SST2 = ROOT.parent / "shared" / "data" / "eda" / "1_tiny" / "sst2" / "train_orig.txt"
PLANTED = {"email": "li.wei@example.cn", "phone": "+44 20 7946 0958", "cn_mobile": "13812345678",
           "card": "4111 1111 1111 1111", "cn_id": "11010519491231002X"}


def sentences(n: int) -> list[str]:
    lines = SST2.read_text(encoding="utf-8").splitlines()
    seen, out = set(), []
    for line in lines:
        text = line.split("\t", 1)[1].strip()
        if len(text.split()) >= 12 and text not in seen:
            seen.add(text)
            out.append(text)
    return out[:n]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two input files and an eval set. Returns (folder, expectations)."""
    folder = tmp_path_factory.mktemp("hygiene")
    base = sentences(120)
    chinese = [t for t in pq.read_table(ROOT / "sample_data/multilingual/zh_mixed.parquet")["text"].to_pylist()
               if len(t) >= 12][:20]
    first = [{"id": f"a{i}", "text": t} for i, t in enumerate(base[:80] + chinese)]
    first.append({"id": "pii-en", "text": f"write to {PLANTED['email']} or call {PLANTED['phone']} today"})
    first.append({"id": "pii-zh", "text": f"请联系{PLANTED['cn_mobile']}，身份证号{PLANTED['cn_id']}，谢谢"})
    first.append({"id": "pii-boom", "text": f"card {PLANTED['card']} was charged boom"})
    words = base[5].split()
    words[3] = "remarkably"
    second = [{"id": f"b{i}", "text": t} for i, t in enumerate(base[80:])]
    second += [{"id": "exact-copy", "text": "  " + base[2].upper() + " !!"},      # a copy of a2 in another file
               {"id": "near-copy", "text": " ".join(words)},                       # one word changed from a5
               {"id": "zh-copy", "text": chinese[0]},                              # a Chinese row again
               {"id": "eval-copy", "text": base[100] + " ."}]                      # copies the eval set
    (folder / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(first), folder / "in" / "part-a.parquet")
    pq.write_table(pa.Table.from_pylist(second), folder / "in" / "part-b.parquet")
    (folder / "eval").mkdir()
    pq.write_table(pa.table({"text": [base[100], "a sentence nobody wrote in the corpus at all"]}),
                   folder / "eval" / "test.parquet")
    expected = {"exact-copy": ("duplicate", "a2"), "near-copy": ("duplicate", "a5"), "zh-copy": ("duplicate", "a80"),
                "b20": ("contaminated", f"{folder}/eval/test.parquet:0"),
                "eval-copy": ("contaminated", f"{folder}/eval/test.parquet:0")}
    return folder, expected, len(first) + len(second)


def hygiene_spec(folder: Path, out: Path, **dedup) -> Path:
    return write_spec(folder / f"{out.name}.yaml", {
        "name": "hygiene", "input": {"path": str(folder / "in"), "id_column": "id", "shard_rows": 25},
        "output": {"path": str(out)},
        "stages": [{"use": "clean", "column": "text"},
                   {"use": "langid", "column": "text_clean"},
                   {"use": "redact", "column": "text_clean"},
                   {"use": "dedup", "column": "text_clean_redacted", "method": "near", "threshold": 0.8,
                    "against": [str(folder / "eval" / "*.parquet")], "against_column": "text", **dedup},
                   {"use": "tests.helpers.stages:UpperStage", "column": "text_clean", "explode_on": "boom"}]})


def test_hygiene_chain_filters_duplicates_and_eval_copies_and_redacts(ray_local, corpus, tmp_path):
    folder, expected, n = corpus
    out = tmp_path / "out"
    run(hygiene_spec(folder, out))
    data, dead, manifest = assert_accounted(out, n)
    filtered = read_filtered(out)
    got = {r["row_id"]: (r["filter_reason"], r["duplicate_of"]) for r in filtered.to_pylist()}
    assert got == expected
    assert set(filtered["filter_stage"].to_pylist()) == {"dedup"}
    assert manifest["rows_filtered"] == len(expected)
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["dedup"]["filtered_duplicate"] == 3 and stages["dedup"]["filtered_contaminated"] == 2
    assert stages["redact"]["pii_email"] == 1 and stages["redact"]["pii_cn_id"] == 1
    assert stages["redact"]["pii_phone"] == 2 and stages["redact"]["pii_credit_card"] == 1
    rows = {r["row_id"]: r for r in data.to_pylist()}
    assert rows["pii-zh"]["text_clean_redacted"] == "请联系<PHONE>，身份证号<CN_ID>，谢谢"
    assert rows["pii-zh"]["pii_entities"] == ["phone", "cn_id"] and rows["pii-zh"]["lang"] == "zh"
    assert rows["a0"]["lang"] == "en" and rows["a0"]["pii_entities"] == []
    # The row a later stage failed keeps its input columns in the dead letter: masked there.
    assert dead["row_id"].to_pylist() == ["pii-boom"] and "<CREDIT_CARD>" in dead["text"][0].as_py()
    # No planted value anywhere outside the columns the user kept as they were.
    for path in [out / "_manifest.json", out / "report.html", out / "README.md", *out.glob("_dead_letter/*.parquet"),
                 *out.glob("_filtered/*.parquet")]:
        text = path.read_text(errors="ignore") if path.suffix != ".parquet" else json.dumps(pq.read_table(path).to_pylist())
        for value in PLANTED.values():
            assert value not in text, (path.name, value)


def test_exact_dedup_keeps_the_first_of_each_group_across_files(ray_local, corpus, tmp_path):
    folder, _, n = corpus
    out = tmp_path / "exact"
    run(hygiene_spec(folder, out, method="exact", against=[]))
    assert_accounted(out, n)
    got = {r["row_id"]: (r["filter_reason"], r["duplicate_of"]) for r in read_filtered(out).to_pylist()}
    # Without an eval set, the eval copy is an exact copy of another input row (punctuation folded).
    assert got == {"exact-copy": ("duplicate", "a2"), "zh-copy": ("duplicate", "a80"), "eval-copy": ("duplicate", "b20")}


def test_a_rerun_gives_the_same_output_and_the_committed_one_is_skipped(ray_local, corpus, tmp_path):
    folder, _, _ = corpus
    first, second = tmp_path / "first", tmp_path / "second"
    run(hygiene_spec(folder, first))
    run(hygiene_spec(folder, second))
    assert read_output(first)[0].equals(read_output(second)[0])
    assert read_filtered(first).equals(read_filtered(second))
    assert run(hygiene_spec(folder, first)).skipped


def test_a_redact_model_masks_names_and_places_in_actors_and_wherever_rows_leave(ray_local, tiny_models, tmp_path):
    """redact with `model:` (a token-classification model, in an actor): names and places are masked
    in the output column, counted per kind, and masked in the dead letter and the report too."""
    names = ["Alice Johnson", "Priya Nakamura", "王芳", "Shenzhen"]
    # The named rows first: the report's sample rows are the first rows of the output.
    texts = [f"{names[0]} wrote to li.wei@example.cn about the film", f"请把票寄给{names[2]}，谢谢",
             f"{names[1]} flew to {names[3]} and it went boom"] + sentences(30)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts}), tmp_path / "in" / "p.parquet")
    out = tmp_path / "out"
    run(write_spec(tmp_path / "ner.yaml", {
        "name": "ner", "input": {"path": str(tmp_path / "in"), "id_column": "id", "shard_rows": 11},
        "output": {"path": str(out)},
        "stages": [{"use": "redact", "column": "text", "model": str(tiny_models.ner)},
                   {"use": "tests.helpers.stages:UpperStage", "column": "text_redacted", "explode_on": "boom"}]}))
    data, dead, manifest = assert_accounted(out, len(texts))
    rows = {r["row_id"]: r for r in data.to_pylist()}
    assert rows["r0"]["text_redacted"] == "<PERSON> wrote to <EMAIL> about the film"
    assert rows["r0"]["upper"] == "<PERSON> WROTE TO <EMAIL> ABOUT THE FILM"
    assert rows["r1"]["text_redacted"] == "请把票寄给<PERSON>，谢谢" and rows["r1"]["pii_entities"] == ["person"]
    stage = manifest["stages"][0]
    assert stage["pii_person"] == 3 and stage["pii_location"] == 1 and stage["pii_email"] == 1
    assert stage["model"] == str(tiny_models.ner) and stage["model_loads"] >= 1
    assert dead["row_id"].to_pylist() == ["r2"] and dead["text"][0].as_py() == "<PERSON> flew to <LOCATION> and it went boom"
    assert "&lt;PERSON&gt; wrote to" in (out / "report.html").read_text()  # the sample rows are there, masked
    for path in [out / "_manifest.json", out / "report.html", *out.glob("_dead_letter/*.parquet")]:
        text = path.read_text(errors="ignore") if path.suffix != ".parquet" else json.dumps(pq.read_table(path).to_pylist())
        for name in names:
            assert name not in text, (path.name, name)

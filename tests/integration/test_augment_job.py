"""The augment job through the real pipeline on a local Ray: identical output whatever the shard
size and worker count, lineage, the split guard, dedup, accounting, and the fine-tuning export
loaded by HF `datasets` from Parquet and JSONL."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from augment import ops
from augment import measures
from augment import params as op_params
from augment import tokens as tok
from jobs.export import write_export
from augment.augmenter import Augmenter
from augment.params import AugmentParams
from jobs.plan import plan_job
from jobs.runner import run_job
from jobs.spec import load_spec
from tests.conftest import ROOT, eda_sentences
from tests.helpers.jobs import read_output, write_spec

ODD = ["这部电影非常好看，演员的表演也很精彩。", "I love this 电影 so much, the acting is great", "fine", None,
       "The plot is thin. The acting is superb! Would I see it again? Probably.",
       "Ça reste un très bon film, même après dix ans."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Real SST-2 rows (train and validation) plus Chinese, mixed, short, null and multi-sentence rows."""
    folder = tmp_path_factory.mktemp("corpus")
    rows = eda_sentences(limit=90)
    texts = [t for _, t in rows] + ODD
    n = len(texts)
    table = pa.table({"id": [f"s{i:03d}" for i in range(n)], "text": texts,
                      "label": [label for label, _ in rows] + [1] * len(ODD),
                      "split": ["validation" if i % 5 == 4 and i < len(rows) else "train" for i in range(n)]})
    pq.write_table(table.slice(0, 50), folder / "a.parquet")
    pq.write_table(table.slice(50), folder / "b.parquet")
    return folder, table


def spec(tmp_path, corpus_dir, **augment) -> dict:
    stage = {"use": "augment", "column": "text", "copies": 4, "keep_original": True,
             "ops": [{"op": "substitute", "rate": 0.1}, {"op": "insert", "rate": 0.1},
                     {"op": "reorder", "rate": 0.1}, {"op": "delete", "rate": 0.1}],
             "label_column": "label", "split_column": "split", "splits": ["train"], **augment}
    return {"name": "aug-test", "seed": 7, "input": {"path": str(corpus_dir), "id_column": "id"},
            "output": {"path": str(tmp_path / "out")}, "stages": [stage]}


def run(spec_dict, tmp_path, name, *overrides):
    path = write_spec(tmp_path / f"{name}.yaml", spec_dict)
    out = tmp_path / name
    result = run_job(plan_job(load_spec(path, [f"output.path={out}", *overrides])))
    data, dead, manifest = read_output(out)
    assert not result.skipped and manifest["rows_dead_letter"] == dead.num_rows == 0
    return data, manifest


def test_identical_output_whatever_the_shard_size_and_worker_count(ray_local, corpus, tmp_path):
    folder, table = corpus
    # One worker: its own Ray with one CPU, in a subprocess, with two big shards.
    path = write_spec(tmp_path / "a.yaml", spec(tmp_path, folder))
    code = ("import ray, sys; ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False); "
            "from jobs.plan import plan_job; from jobs.runner import run_job; from jobs.spec import load_spec; "
            "run_job(plan_job(load_spec(sys.argv[1], sys.argv[2:])))")
    done = subprocess.run([sys.executable, "-c", code, str(path), f"output.path={tmp_path / 'a'}",
                           "input.shard_rows=1000"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one_worker, _, manifest_a = read_output(tmp_path / "a")
    # Several workers: 7-row shards, a quarter CPU per task, on the shared two-CPU Ray.
    many, manifest_b = run(spec(tmp_path, folder, resources={"num_cpus": 0.25}), tmp_path, "b",
                           "input.shard_rows=7")
    assert manifest_a["shards"] == 2 and manifest_b["shards"] == 15
    assert many.equals(one_worker)  # both sorted by row_id: every byte of every row
    assert manifest_a["rows_in"] == manifest_b["rows_in"] == table.num_rows
    stats_a, stats_b = manifest_a["stages"][0], manifest_b["stages"][0]
    for key in ("copies_made", "op_substitute_made", "op_delete_made", "rows_not_english", "rows_too_short",
                "op_substitute_unsupported_language"):
        assert stats_a[key] == stats_b[key]


def test_lineage_split_guard_dedup_and_accounting(ray_local, corpus, tmp_path):
    folder, table = corpus
    data, manifest = run(spec(tmp_path, folder), tmp_path, "c")
    rows = data.to_pylist()
    source = {r["id"]: r for r in table.to_pylist()}
    originals = [r for r in rows if not r["is_augmented"]]
    copies = [r for r in rows if r["is_augmented"]]
    assert sorted(r["row_id"] for r in originals) == sorted(source)  # every input row once
    assert manifest["rows_in"] == len(source) and manifest["rows_out"] == len(rows)
    stats = manifest["stages"][0]
    assert stats["copies_made"] == len(copies) == sum(stats[f"op_{op}_made"] for op in
                                                      ("substitute", "insert", "reorder", "delete"))
    params = AugmentParams.model_validate(manifest["spec"]["stages"][0])
    replayer = Augmenter(params, seed=manifest["seed"])
    for copy in copies:
        parent = source[copy["parent_id"]]
        assert parent["split"] == "train" and copy["split"] == "train"  # the split guard
        assert copy["label"] == parent["label"] and copy["id"] == parent["id"]  # carried
        assert copy["row_id"].startswith(copy["parent_id"] + "~aug")
        assert measures.normalize(copy["text"]) != measures.normalize(parent["text"])
        assert copy["edit_rate"] == round(measures.edit_rate(parent["text"], copy["text"]), 6) > 0
        op = next(o for o in params.ops if o.op == copy["aug_op"])
        assert copy["edit_rate"] <= op.edit_bound
        assert replayer.replay(parent["text"], copy["aug_seed"], [op]) == copy["text"]
    siblings: dict[str, list[str]] = {}
    for copy in copies:
        siblings.setdefault(copy["parent_id"], []).append(measures.normalize(copy["text"]))
    assert all(len(v) == len(set(v)) for v in siblings.values())  # no two copies alike
    validation = [r for r in originals if r["split"] == "validation"]
    assert validation and all(r["aug_skipped"] == "split" for r in validation)
    assert stats["rows_split_not_augmented"] == len(validation)
    by_text = {r["text"]: r for r in originals}
    chinese = [c for c in copies if c["parent_id"] == by_text[ODD[0]]["row_id"]]  # segmented: reorder, delete
    assert chinese and {c["aug_op"] for c in chinese} <= {"reorder", "delete"}
    assert "substitute:unsupported_language" in by_text[ODD[0]]["aug_skipped"]
    assert by_text[ODD[5]]["aug_skipped"] == "not_english"
    assert sum(1 for c in copies if c["parent_id"] == by_text[ODD[1]]["row_id"]) >= 3  # mixed: augmented
    assert by_text[ODD[2]]["aug_skipped"] == "too_short" and stats["rows_null_text"] == 1
    multi = [c["text"] for c in copies if c["parent_id"] == by_text[ODD[4]]["row_id"] and c["aug_op"] == "reorder"]
    sentences = re.compile(r"(?<=[.!?])\s+")
    assert multi and multi[0] != ODD[4] and sorted(sentences.split(multi[0])) == sorted(sentences.split(ODD[4]))
    # The report's augment section: copies per op as counted, every copy's edit rate, copies next to parents.
    page = (tmp_path / "c" / "report.html").read_text(encoding="utf-8")
    section = page.split("<h2>Stage 0: augment (column text)</h2>")[1].split("<h2>")[0]
    for op in ("substitute", "insert", "reorder", "delete"):
        assert f"<tr><td>{op}</td><td>{stats[f'op_{op}_made']:,}</td>" in section
    edit_rates = section.split("<h3>Edit rate of the copies</h3>")[1].split("</svg>")[0]
    assert sum(int(n) for n in re.findall(r'fill="#4c78a8"><title>[^<]*: (\d+)</title>', edit_rates)) == len(copies)
    examples = section.split("<h3>Before and after</h3>")[1].split("</table>")[0]
    shown = re.findall(r"<tr><td>(\w+)</td><td>(.*?)</td><td>(.*?)</td></tr>", examples)
    assert len(shown) == 5 and all("(original not kept)" not in before for _, before, _ in shown)
    assert any(before != after for _, before, after in shown)


def test_keep_original_false_still_accounts_for_every_row(ray_local, corpus, tmp_path):
    folder, table = corpus
    data, manifest = run(spec(tmp_path, folder, keep_original=False, copies=2), tmp_path, "d")
    parents = pc.unique(data["parent_id"]).to_pylist()
    assert sorted(parents) == sorted(table["id"].to_pylist())  # the publish passed the accounting check
    kept = data.filter(pc.invert(data["is_augmented"]))
    assert kept.num_rows == manifest["stages"][0]["rows_kept_without_copy"] > 0
    train_with_copies = data.filter(data["is_augmented"])
    assert train_with_copies.num_rows > 0 and set(train_with_copies["split"].to_pylist()) == {"train"}


def test_contextual_insertion_runs_in_an_actor_pool_and_does_not_depend_on_the_shards(
        ray_local, corpus, tmp_path, tiny_models):
    """A masked-LM insert op beside a rule op: the stage runs as actors (the model loads once per actor)
    and gives every byte of every row the same with one big shard as with 9-row shards."""
    folder, table = corpus
    model_ops = [{"op": "insert", "rate": 0.1, "model": str(tiny_models.masked_lm), "batch_size": 8},
                 {"op": "delete", "rate": 0.1}]
    big, manifest = run(spec(tmp_path, folder, ops=model_ops, copies=2), tmp_path, "m1", "input.shard_rows=1000")
    small, _ = run(spec(tmp_path, folder, ops=model_ops, copies=2), tmp_path, "m2", "input.shard_rows=9")
    assert big.equals(small)
    stats = manifest["stages"][0]
    assert stats["op_insert_made"] > 20 and stats["op_delete_made"] > 20
    source = {r["id"]: r["text"] for r in table.to_pylist()}
    inserted = [r for r in big.to_pylist() if r["aug_op"] == "insert"]
    assert inserted
    for row in inserted:
        parent = source[row["parent_id"]]
        if tok.has_cjk(parent):  # words go between Chinese words without spaces; the parent's text stays, in order
            remaining = iter(row["text"])
            assert all(ch in remaining for ch in parent if not ch.isspace())
            continue
        added = len(row["text"].split()) - len(parent.split())
        # One word per mask; a mask whose predictions hold no whole word is left out.
        assert 1 <= added <= ops.edits_for(tok.word_count(parent), op_params.InsertOp(op="insert", rate=0.1))
        remaining = iter(row["text"].split())
        assert all(any(word == w for w in remaining) for word in parent.split())  # parent's words, in order


def test_export_loads_with_datasets_from_parquet_and_jsonl(ray_local, corpus, tmp_path):
    import datasets

    folder, _ = corpus
    job = spec(tmp_path, folder)
    job["stages"].append({"use": "finetune_export", "column": "text", "label_column": "label",
                          "split_column": "split", "labels": {0: "negative", 1: "positive"},
                          "system": "Label the review.", "prompt": "Review: {text}\nSentiment?"})
    data, _ = run(job, tmp_path, "e")
    # The committed Parquet already loads as a fine-tuning set.
    committed = datasets.load_dataset("parquet", data_files=str(tmp_path / "e" / "data" / "*.parquet"),
                                      split="train")
    assert committed.num_rows == data.num_rows and {"prompt", "completion", "messages"} <= set(committed.features)
    summary = write_export(tmp_path / "e", tmp_path / "ft")
    expected = {s: data.filter(pc.equal(data["split"], s)).num_rows for s in ("train", "validation")}
    assert summary["splits"] == expected
    for kind, ext in (("parquet", "parquet"), ("json", "jsonl")):
        loaded = datasets.load_dataset(kind, data_files={s: str(tmp_path / "ft" / f"{s}.{ext}") for s in expected})
        for split, rows in expected.items():
            part = loaded[split]
            assert part.num_rows == rows
            assert {"prompt", "completion", "messages", "label", "split", "row_id", "parent_id", "aug_op",
                    "aug_seed", "is_augmented", "edit_rate"} == set(part.features)
            assert part.features["prompt"].dtype == "string" and part.features["is_augmented"].dtype == "bool"
            first = part[0]
            assert first["messages"][0] == {"role": "system", "content": "Label the review."}
            assert first["messages"][1] == {"role": "user", "content": first["prompt"]}
            assert first["prompt"].startswith("Review: ") and first["prompt"].endswith("\nSentiment?")
            assert first["completion"] == (" positive" if first["label"] == 1 else " negative")  # separated
            assert first["messages"][2] == {"role": "assistant", "content": first["completion"].strip()}
            assert set(part["split"]) == {split}
    meta = json.loads((tmp_path / "ft" / "_export.json").read_text())
    assert meta["source_rows_out"] == data.num_rows


def test_replay_as_documented_redoes_copies_from_the_output_or_through_earlier_stages(ray_local, corpus, tmp_path):
    """docs/augment.md's replay, run as written: the command and the function, on a job that kept no
    originals and cleaned the text first (so the parent is redone from the input through `clean`)."""
    folder, table = corpus
    clean_input = tmp_path / "plain"
    clean_input.mkdir()
    pq.write_table(table.slice(0, 40), clean_input / "a.parquet")  # real sentences, no null or odd rows
    job = spec(tmp_path, clean_input, keep_original=False, copies=2, column="text_clean")
    job["stages"].insert(0, {"use": "clean", "column": "text", "lowercase": True})
    data, _ = run(job, tmp_path, "r")
    copies = data.filter(data["is_augmented"]).to_pylist()
    assert copies
    doc = (ROOT / "docs" / "augment.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(from augment\.replay import replay_row.*?)```", doc, re.S).group(1)
    for copy in copies[:12]:
        namespace: dict = {}
        exec(snippet.replace('"out/augment-corpus/2026-12-06"', repr(str(tmp_path / "r")))
                    .replace('"sst2-0001~aug2"', repr(copy["row_id"])), namespace)
        done = namespace["done"]
        assert done.parent_from == "input" and done.replayed == copy["text_clean"]
        assert done.parent_text == next(" ".join(t.split()).lower() for i, t in
                                        zip(table["id"].to_pylist(), table["text"].to_pylist()) if i == copy["parent_id"])
    command = re.search(r"```bash\n(raybatch replay OUTPUT ROW_ID)", doc).group(1).split()
    replayed = subprocess.run([sys.executable, "-m", "jobs", *command[1:2], str(tmp_path / "r"), copies[0]["row_id"],
                               "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["matches"] is True
    # Another parent text gives another copy: the command says so and exits 1.
    differs = subprocess.run([sys.executable, "-m", "jobs", "replay", str(tmp_path / "r"), copies[0]["row_id"],
                              "--parent-text", "an entirely different sentence about the weather today"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert differs.returncode == 1 and "DIFFERS from the output" in differs.stdout
    original = data.filter(pc.invert(data["is_augmented"]))["row_id"].to_pylist()
    if original:
        refused = subprocess.run([sys.executable, "-m", "jobs", "replay", str(tmp_path / "r"), original[0]],
                                 capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert refused.returncode == 2 and "is not a copy an augment stage made" in refused.stderr

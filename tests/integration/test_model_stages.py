"""The model stages through the real pipeline on a local Ray (actor pools on CPU): outputs, dead
letters, manifest counters, seeds independent of block size, and spec errors from `raybatch validate`."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.engine import EngineConfig
from jobs.engine.hf_backend import TransformersEngine as Engine
from jobs.plan import plan_job
from jobs.runner import run_job
from jobs.spec import load_spec
from tests.conftest import ROOT, eda_sentences
from tests.helpers.jobs import read_output, write_spec

# Short sentences fit the tiny Marian's 64 positions; one row joins eight of them to overflow it.
TEXTS = [text for _, text in eda_sentences(limit=200) if len(text) < 110][:24]


def corpus(folder, files: int = 2) -> list[str]:
    """EDA sentences (one of them long) plus a null and an empty row, split over `files` Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = TEXTS[:12] + [" ".join(TEXTS[12:20]), None, "   "]
    ids = [f"doc{i:02d}" for i in range(len(texts))]
    topics = ["film"] * len(texts)
    per = -(-len(texts) // files)
    for f in range(files):
        chunk = slice(f * per, (f + 1) * per)
        pq.write_table(pa.table({"id": ids[chunk], "text": texts[chunk], "topic": topics[chunk]}),
                       folder / f"part{f}.parquet")
    return texts


def job(tmp_path, stages, shard_rows=100, name="models"):
    spec = write_spec(tmp_path / f"{name}.yaml", {
        "name": name, "seed": 5, "input": {"path": str(tmp_path / "in"), "id_column": "id", "shard_rows": shard_rows},
        "output": {"path": str(tmp_path / name)}, "stages": stages})
    run_job(plan_job(load_spec(spec)))
    return read_output(tmp_path / name)


def test_three_model_stages_in_one_job(ray_local, tiny_models, tmp_path):
    texts = corpus(tmp_path / "in")
    data, dead, manifest = job(tmp_path, [
        {"use": "summarize", "model": str(tiny_models.t5), "column": "text", "max_new_tokens": 6,
         "long_input": "chunk", "max_input_tokens": 48, "batch_size": 4},
        {"use": "translate", "model": str(tiny_models.marian), "column": "text", "output_column": "text_de",
         "max_new_tokens": 6, "long_input": "fail"},
        {"use": "generate", "model": str(tiny_models.llama_chat), "prompt": "Ask about this {topic}: {summary}",
         "output_column": "question", "max_new_tokens": 6, "temperature": 0.8, "n": 2},
    ])
    assert manifest["rows_in"] == len(texts) == data.num_rows + dead.num_rows
    # Dead letter: the null and empty rows at summarize; the long one cannot be translated (64 positions).
    reasons = {r["row_id"]: (r["stage"], r["error_type"]) for r in dead.to_pylist()}
    assert reasons == {"doc13": ("summarize", "null_input"), "doc14": ("summarize", "empty_input"),
                       "doc12": ("translate", "input_too_long")}
    assert data["row_id"].to_pylist() == [f"doc{i:02d}" for i in range(12)]
    rows = data.to_pylist()
    assert all(r["summary"] and r["text_de"] for r in rows)
    assert all(len(r["question"]) == 2 for r in rows)  # n samples per row: a list column
    assert [r["text"] for r in rows] == texts[:12]  # input columns pass through
    summarize, translate, generate = manifest["stages"]
    assert (summarize["model"], translate["model"], generate["model"]) == (
        str(tiny_models.t5), str(tiny_models.marian), str(tiny_models.llama_chat))
    assert summarize["inputs_chunked"] == 1 and summarize["merge_rounds"] >= 1
    for stage in (summarize, translate, generate):
        assert stage["tokens_in"] > 0 and stage["tokens_out"] > 0 and stage["generate_seconds"] > 0
        assert stage["tokens_in_padded"] >= stage["tokens_in"]
        assert stage["tokens_out_per_second"] > 0 and stage["revision"]
        assert stage["model_loads"] >= 1 and stage["model_load_seconds"] > 0  # once per actor that took a block
    assert summarize["decoding"] == "lean" and generate["decoding"] == "generate"  # causal LMs use generate
    assert generate["rows_in"] == 12 and translate["rows_dead"] == 1
    page = (tmp_path / "models" / "report.html").read_text(encoding="utf-8")
    padding = f"{summarize['tokens_in'] / summarize['tokens_in_padded']:.0%}"
    model_part = page.split("<h2>Stage 0: summarize (column text)</h2>")[1].split("<h2>")[0]
    assert f"<td>padding efficiency</td><td>{padding}</td>" in model_part and "<td>decoding mode</td><td>lean</td>" in model_part
    assert f"<td>tokens in</td><td>{summarize['tokens_in']:,}</td>" in model_part and "<td>engine</td>" in model_part

    # The actors' greedy output equals the engine's in this process: loading and batching are the same.
    engine = Engine(EngineConfig(model=str(tiny_models.t5), max_new_tokens=6, task="summarization",
                                 long_input="chunk", max_input_tokens=48, chunk_merge="summarize"))
    assert [r.texts[0] for r in engine.run([{"text": t} for t in texts[:12]])] == data["summary"].to_pylist()


def test_sampled_outputs_do_not_depend_on_block_size(ray_local, tiny_models, tmp_path):
    corpus(tmp_path / "in", files=1)
    stage = {"use": "generate", "model": str(tiny_models.llama), "prompt": "{text}", "max_new_tokens": 5,
             "temperature": 1.0, "top_k": 40, "long_input": "truncate", "max_input_tokens": 24, "batch_size": 3}
    whole, _, first = job(tmp_path, [stage], shard_rows=100, name="whole")
    small, _, second = job(tmp_path, [stage], shard_rows=4, name="small")
    assert second["shards"] == 4 and first["shards"] == 1
    assert whole["generated"].to_pylist() == small["generated"].to_pylist()
    assert len(set(whole["generated"].to_pylist())) > 6
    assert first["stages"][0]["inputs_truncated"] == second["stages"][0]["inputs_truncated"] >= 1


def validate(spec_path):
    return subprocess.run([sys.executable, "-m", "jobs", "validate", str(spec_path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("stage, fragment", [
    ({"model": "/no/such/model"}, "stages[0] (summarize): model: /no/such/model: no such folder"),
    ({"max_new_tokenz": 5}, "stages[0].max_new_tokenz: unknown key"),
    ({"temperature": 0.5, "num_beams": 4}, "do not mix"),
    ({"model": "no-such-org/not-cached"}, "not in the Hugging Face cache"),
])
def test_validate_names_the_spec_error_in_one_line(tiny_models, tmp_path, stage, fragment):
    corpus(tmp_path / "in")
    spec = write_spec(tmp_path / "bad.yaml", {
        "name": "bad", "input": {"path": str(tmp_path / "in"), "id_column": "id"},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": "summarize", "model": str(tiny_models.t5), "column": "text", **stage}]})
    result = validate(spec)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert fragment in lines[0]


def test_validate_accepts_a_good_model_spec_and_rejects_a_missing_column(tiny_models, tmp_path):
    corpus(tmp_path / "in")
    good = {"use": "translate", "model": str(tiny_models.m2m), "column": "text", "source_lang": "en",
            "target_lang": "de"}
    spec = {"name": "ok", "input": {"path": str(tmp_path / "in"), "id_column": "id"},
            "output": {"path": str(tmp_path / "out")}, "stages": [good]}
    result = validate(write_spec(tmp_path / "ok.yaml", spec))
    assert result.returncode == 0 and "stages: translate" in result.stdout, result.stderr
    spec["stages"] = [{**good, "source_lang": None, "target_lang": None}]
    result = validate(write_spec(tmp_path / "langs.yaml", spec))
    assert result.returncode == 2 and "set source_lang and target_lang" in result.stderr
    spec["stages"] = [{"use": "generate", "model": str(tiny_models.llama), "prompt": "{title}: {text}"}]
    result = validate(write_spec(tmp_path / "column.yaml", spec))
    assert result.returncode == 2 and "needs column 'title'" in result.stderr
    spec["stages"] = [{"use": "summarize", "model": str(tiny_models.llama), "column": "text"}]
    result = validate(write_spec(tmp_path / "causal.yaml", spec))
    assert result.returncode == 2 and "decoder-only model; give a prompt" in result.stderr

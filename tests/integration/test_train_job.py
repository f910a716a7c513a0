"""Fine-tuning with Ray Train on 2 CPU workers, tiny local models, real transformers Trainer: the loss
goes down, the model is committed and loads, eval metrics are recorded, and the loop closes: a
generate stage runs on the trained model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from jobs.train.runner import train
from jobs.train.spec import parse_train_spec
from tests.conftest import ROOT
from tests.helpers.jobs import read_output, write_spec
from tests.helpers.train_data import train_spec, write_export

RAYBATCH = [sys.executable, "-m", "jobs"]


def test_sft_on_chats_with_lora_commits_a_model_that_loads_and_generates(ray_local, tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_export(tmp_path / "export")
    spec = parse_train_spec(train_spec(data, tiny_models.qwen2, tmp_path / "out", format="messages",
                                       learning_rate=0.02, lora={"r": 8, "alpha": 16}))
    result = train(spec)
    m = result.manifest
    assert m["world_size"] == 2 and m["steps"] == 6 and m["resumed_from_step"] is None
    assert m["train_loss"][-1]["loss"] < m["train_loss"][0]["loss"]
    assert [e["step"] for e in m["eval_loss"]] == [3, 6] and m["eval_metrics"]["loss"] > 0
    assert m["data"]["rows"] == {"train": 64, "validation": 16} and len(m["data"]["record_sha256"]) == 64
    assert m["model"]["revision"].startswith("local-") and m["hyperparameters"]["lora"]["r"] == 8
    assert m["seed"] == 0 and "torch" in m["versions"] and "transformers" in m["versions"]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "_manifest.json", "model", "report.html"]
    assert {f["path"] for f in m["files"]} >= {"model/model.safetensors", "model/config.json", "report.html"}
    page = (out / "report.html").read_text()
    assert page.count("<polyline") == 2 and "eval loss" in page and "lora" in page
    model = AutoModelForCausalLM.from_pretrained(out / "model")  # adapters merged: a plain model
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    prompt = tokenizer("Review: a fine film", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 4
    assert train(spec).skipped  # committed: a rerun does nothing


def test_classify_records_accuracy_and_macro_f1_and_saves_the_labels(ray_local, tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    data = write_export(tmp_path / "export")
    # Evaluated on the rows it trains on: the same rows at every evaluation, so the loss's fall is
    # the model learning, not which batches a logging period happened to draw.
    spec = parse_train_spec(train_spec(data, tiny_models.masked_lm, tmp_path / "out", task="classify",
                                       text_column="text", label_column="label", learning_rate=1e-3,
                                       max_steps=12, eval_split="train"))
    m = train(spec).manifest
    assert set(m["eval_metrics"]) >= {"loss", "accuracy", "macro_f1"}
    assert 0 <= m["eval_metrics"]["accuracy"] <= 1 and 0 <= m["eval_metrics"]["macro_f1"] <= 1
    assert [e["step"] for e in m["eval_loss"]] == [3, 6, 9, 12]
    assert m["eval_loss"][-1]["loss"] < m["eval_loss"][0]["loss"]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model")
    assert model.config.id2label == {0: "0", 1: "1"}


def test_the_loop_closes_through_the_cli_train_then_generate_with_the_trained_model(tiny_models, tmp_path):
    data = write_export(tmp_path / "export")
    trained = tmp_path / "sft"
    spec = write_spec(tmp_path / "train.yaml", train_spec(data, tiny_models.qwen2, trained))
    checked = subprocess.run([*RAYBATCH, "validate", str(spec)], capture_output=True, text=True, cwd=ROOT)
    assert checked.returncode == 0 and "ok: sft-test: train sft" in checked.stdout, checked.stderr
    done = subprocess.run([*RAYBATCH, "train", str(spec)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sft-test: 6 steps on 2 worker(s)" in done.stdout and f"model: {trained}/model" in done.stdout
    job = write_spec(tmp_path / "generate.yaml", {
        "name": "gen", "input": {"path": str(data / "validation.parquet"), "id_column": "row_id"},
        "output": {"path": str(tmp_path / "gen")},
        "stages": [{"use": "generate", "model": str(trained), "engine": "transformers", "prompt": "{prompt}",
                    "output_column": "answer", "max_new_tokens": 4}]})
    ran = subprocess.run([*RAYBATCH, "run", str(job)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows, dead, manifest = read_output(tmp_path / "gen")
    assert rows.num_rows == pq.read_metadata(data / "validation.parquet").num_rows and dead.num_rows == 0
    assert all(isinstance(a, str) for a in rows["answer"].to_pylist())
    assert manifest["spec"]["stages"][0]["model"] == str(trained / "model")
    assert json.loads((trained / "_manifest.json").read_text())["kind"] == "train"
    report = subprocess.run([*RAYBATCH, "report", str(trained)], capture_output=True, text=True, cwd=ROOT)
    assert report.returncode == 0 and "train loss:" in report.stdout and "eval loss:" in report.stdout
    assert f"report: {trained}/report.html" in report.stdout
    scripted = subprocess.run([*RAYBATCH, "report", str(trained), "--json"], capture_output=True, text=True, cwd=ROOT)
    record = json.loads(scripted.stdout)
    assert record["kind"] == "train" and record["steps"] > 0 and record["report"] == f"{trained}/report.html"


def test_a_training_run_that_fails_says_so_in_one_line_that_names_its_log(tiny_models, tmp_path):
    """Weights that cannot load fail the workers, not the checks before Ray: the one error line names
    the run's log, which holds what Ray Train printed, and nothing is committed."""
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_models.qwen2, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])
    data = write_export(tmp_path / "export")
    spec = write_spec(tmp_path / "train.yaml", train_spec(data, broken, tmp_path / "out"))
    done = subprocess.run([*RAYBATCH, "train", str(spec)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: training failed:") and "Ray's output: " in lines[0]
    log = Path(lines[0].rsplit("Ray's output: ", 1)[1])
    assert log.is_file() and log.stat().st_size > 0
    assert not (tmp_path / "out").exists()

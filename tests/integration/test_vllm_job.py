"""A generate job on the vLLM engine through the real pipeline (Ray actors, Parquet, commit), with
its engine killed mid-run: Ray restarts the actor and retries its block, and every row lands
exactly once, in the output or (an over-long prompt) the dead letter."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import eda_sentences
from tests.faults.helpers import cli, one_line_error
from tests.helpers.jobs import assert_accounted, run, write_spec

ROWS = 144
FILES = 12
PER_FILE = ROWS // FILES


def corpus(folder: Path) -> list[str]:
    """Files of short rows, two of them far over the prompt limit."""
    short = [t for _, t in eda_sentences() if len(t) < 60]
    texts = (short * (ROWS // len(short) + 1))[:ROWS]
    texts[7] = texts[41] = " ".join(texts[:30])
    folder.mkdir(parents=True)
    for part in range(FILES):
        rows = range(part * PER_FILE, (part + 1) * PER_FILE)
        pq.write_table(pa.table({"id": [f"r{i:03d}" for i in rows], "text": [texts[i] for i in rows]}),
                       folder / f"part-{part}.parquet")
    return texts


def kill_engine_once(staging: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill the job's vLLM engine process (the one a Ray actor runs) once the first block has been
    written, so mid-run."""
    while not stop.is_set() and not killed:
        if list(staging.glob("_shards/*.json")):
            for proc in psutil.process_iter(["name", "cmdline"]):
                if "EngineCore" in (proc.info["name"] or "") + " ".join(proc.info["cmdline"] or []) \
                        and proc.parent() is not None and proc.parent().name().startswith("ray::"):
                    proc.kill()
                    killed.append(proc.pid)
        time.sleep(0.2)


def test_a_vllm_job_survives_its_engine_dying(ray_local, tiny_models, tmp_path, ledger):
    corpus(tmp_path / "in")
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "job.yaml", {
        "name": "vllm-questions", "seed": 3,
        "input": {"path": str(tmp_path / "in"), "id_column": "id", "shard_rows": PER_FILE},
        "output": {"path": str(out)},
        "stages": [{"use": "generate", "engine": "vllm", "model": str(tiny_models.qwen2),
                    "prompt": "Ask about: {text}", "output_column": "question", "max_new_tokens": 32, "min_new_tokens": 32,
                    "max_input_tokens": 48, "long_input": "fail", "temperature": 0.8, "n": 2,
                    "engine_kwargs": {"max_model_len": 256}, "engine_timeout_s": 60}]})
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_engine_once, args=(out.parent / ".out.staging", killed, stop))
    watcher.start()
    try:
        run(spec)
    finally:
        stop.set()
        watcher.join()
    data, dead, manifest = assert_accounted(out, ROWS)
    ledger("fault", "the vLLM engine killed mid-run", lost=ROWS - data.num_rows - dead.num_rows, doubled=0)
    assert killed, "the engine was never killed: the test did not test anything"
    assert sorted(dead["row_id"].to_pylist()) == ["r007", "r041"]
    assert set(dead["error_type"].to_pylist()) == {"input_too_long"}
    assert all(len(copies) == 2 and all(copies) for copies in data["question"].to_pylist())
    assert set(data["question_tokens_out"].to_pylist()) == {64}  # two copies of exactly 32 tokens
    assert all(n > 0 for n in data["question_tokens_in"].to_pylist())
    stage = manifest["stages"][0]
    assert stage["engine"] == "vllm" and stage["engine_version"] and '"max_model_len": 256' in stage["engine_kwargs"]
    assert stage["tokens_out"] == sum(data["question_tokens_out"].to_pylist()) and stage["tokens_out_per_second"] > 0
    assert "continuous batching" in stage["batch_invariant"]


def test_run_refuses_a_key_the_engine_lacks_where_the_engine_loads(tiny_models, tmp_path):
    """`run` leaves engine checks to the actors (their libraries count, not the driver's): the same
    one-line spec error, exit 2, before the model loads."""
    corpus(tmp_path / "in")
    spec = write_spec(tmp_path / "job.yaml", {
        "name": "bad-engine-key", "input": {"path": str(tmp_path / "in"), "id_column": "id"},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": "generate", "engine": "transformers", "model": str(tiny_models.qwen2),
                    "prompt": "{text}", "engine_kwargs": {"gpu_memory_utilization": 0.9}}]})
    line = one_line_error(cli("run", spec), 2, "stages[0] (generate): engine_kwargs.gpu_memory_utilization")
    assert "transformers engine has no such setting" in line
    assert not (tmp_path / "out").exists()
    validated = cli("validate", spec)
    assert validated.returncode == 2 and "engine_kwargs.gpu_memory_utilization" in validated.stderr

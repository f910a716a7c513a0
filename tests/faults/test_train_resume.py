"""kill -9 in the middle of `raybatch train`, then the same command again: it resumes from the last
checkpoint in staging, the step count continues to the planned total, and the losses logged are
the uninterrupted run's (the Trainer restores its data position and random state)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from tests.conftest import ROOT
from tests.faults.helpers import RAYBATCH, cli
from tests.helpers.jobs import write_spec
from tests.helpers.train_data import train_spec, write_export


def test_a_killed_training_run_resumes_from_its_checkpoint(tiny_models, tmp_path, ledger):
    data = write_export(tmp_path / "export")
    reference = write_spec(tmp_path / "ref.yaml", train_spec(data, tiny_models.qwen2, tmp_path / "ref", max_steps=12))
    spec = write_spec(tmp_path / "sft.yaml", train_spec(data, tiny_models.qwen2, tmp_path / "out", max_steps=12))
    assert cli("train", reference, timeout=600).returncode == 0
    checkpoint = tmp_path / ".out.staging" / "_checkpoints" / "checkpoint-6" / "trainer_state.json"
    driver = subprocess.Popen([*RAYBATCH, "train", str(spec)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not checkpoint.exists() and driver.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists() and driver.poll() is None, "the run ended before its first checkpoint"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (tmp_path / "out").exists()

    again = cli("train", spec, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step" in again.stdout
    resumed = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    whole = json.loads((tmp_path / "ref" / "_manifest.json").read_text())
    assert 6 <= resumed["resumed_from_step"] < 12 and resumed["steps"] == whole["steps"] == 12  # past an epoch end
    assert [e["step"] for e in resumed["train_loss"]] == [3, 6, 9, 12]
    assert [round(e["loss"], 4) for e in resumed["train_loss"]] == [round(e["loss"], 4) for e in whole["train_loss"]]
    assert not (tmp_path / ".out.staging").exists()
    ledger("kill point", "train: kill -9 after a checkpoint, then resume")

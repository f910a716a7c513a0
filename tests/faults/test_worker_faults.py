"""A task worker and an actor killed mid-block: Ray retries the task and restarts the actor, and
every row still lands exactly once."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.helpers.jobs import assert_accounted, run, write_spec


@pytest.mark.parametrize("stage, what", [("UpperStage", "worker"), ("UpperActorStage", "actor")])
def test_a_killed_worker_or_actor_is_replaced_and_every_row_lands_once(ray_local, tmp_path, ledger, stage, what):
    """A task worker is retried; an actor is restarted: either way, every row lands exactly once."""
    flag = tmp_path / "died"
    spec = write_spec(tmp_path / "fault.yaml", {
        "name": f"{what}-fault", "input": {"path": str(ROOT / "sample_data/reviews"), "id_column": "id",
                                           "shard_rows": 100},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": f"tests.helpers.stages:{stage}", "column": "text", "die_once_flag": str(flag)}]})
    run(spec)
    assert flag.exists(), f"the {what} never died: the test did not test a fault"
    data, dead, _ = assert_accounted(tmp_path / "out", 600)
    assert dead.num_rows == 0 and data["upper"].to_pylist() == [t.upper() for t in data["text"].to_pylist()]
    ledger("fault", f"a {what} killed mid-block", lost=600 - data.num_rows, doubled=0)

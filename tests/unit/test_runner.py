"""StageRunner: rows that raise a declared row error are isolated; any other exception, or an
output that does not account for each input row once, fails the batch naming the stage."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.errors import StageFailed
from jobs.stages.base import (ERROR_STAGE, ERROR_TYPE, INPUT_ID, SOURCE, StageContext, StageRunner,
                               mark_failed)
from tests.helpers.stages import UpperParams, UpperStage

CTX = StageContext("t", 0, 1, "upper")


def runner(**kw):
    return StageRunner(UpperStage(UpperParams(use="upper", column="text", **kw), CTX))


def test_raising_rows_are_isolated_and_the_rest_processed():
    texts = [f"row {i}" for i in range(10)]
    texts[3] = "row BOOM 3"
    texts[8] = "row BOOM 8"
    batch = pa.table({"row_id": [str(i) for i in range(10)], "text": texts})
    out, stats = runner(explode_on="BOOM")(batch)
    assert out.num_rows == 10
    by_id = {r["row_id"]: r for r in out.to_pylist()}
    assert by_id["3"][ERROR_TYPE] == "ValueError" and by_id["3"][ERROR_STAGE] == "upper"
    assert by_id["8"][ERROR_TYPE] == "ValueError"
    assert by_id["0"]["upper"] == "ROW 0" and by_id["0"][ERROR_TYPE] is None
    assert (stats["rows_in"], stats["rows_out"], stats["rows_dead"]) == (10, 8, 2)


def test_rows_failed_earlier_are_not_processed_again():
    batch = pa.table({"row_id": ["a", "b"], "text": ["x", "y"]})
    batch = mark_failed(batch, {0: ("null", "earlier")})
    batch = batch.append_column(ERROR_STAGE, pa.array(["clean", None]))
    out, stats = runner()(batch)
    rows = {r["row_id"]: r for r in out.to_pylist()}
    assert rows["a"][ERROR_STAGE] == "clean" and rows["a"]["upper"] is None
    assert rows["b"]["upper"] == "Y"
    assert stats["rows_in"] == 1 and stats["uppercased"] == 1


def tracked(texts):
    """A batch as the reader makes it: each row is its own source row."""
    ids = [str(i) for i in range(len(texts))]
    return pa.table({"row_id": ids, "text": texts, SOURCE: [True] * len(ids), INPUT_ID: ids})


def test_a_plain_bug_fails_the_batch_naming_stage_exception_and_first_row():
    with pytest.raises(StageFailed, match=r"stage 'upper' raised ZeroDivisionError: division by zero "
                                          r"\(in a block starting at row_id '0'\)"):
        runner(bug_on="row")(tracked(["row a", "row b"]))


def test_a_stage_that_drops_one_row_and_doubles_another_fails_identity():
    with pytest.raises(StageFailed, match=r"IdentityError: .*missing e.g. \['0'\], doubled e.g. \['2'\]"):
        runner(drop_and_double=True)(tracked(["a", "b", "c"]))


def test_counters_of_a_failed_attempt_do_not_reach_the_next_batch():
    stage = runner(bug_on="boom")
    stage.stage.count("uppercased", 99)  # left over, as a raising attempt would leave it
    _, stats = stage(tracked(["fine", "also fine"]))
    assert stats["uppercased"] == 2

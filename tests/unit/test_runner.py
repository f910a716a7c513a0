"""StageRunner: rows that make a stage raise are isolated; earlier failures pass through untouched."""

from __future__ import annotations

import pyarrow as pa

from jobs.stages.base import ERROR_STAGE, ERROR_TYPE, StageContext, StageRunner, mark_failed
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
    assert by_id["3"][ERROR_TYPE] == "RuntimeError" and by_id["3"][ERROR_STAGE] == "upper"
    assert by_id["8"][ERROR_TYPE] == "RuntimeError"
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

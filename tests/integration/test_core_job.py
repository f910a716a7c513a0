"""The job runner end to end on a local Ray: sample job, bad input, stage exceptions, worker
faults and incremental runs, all with the accounting invariant checked on the committed output."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import ROOT
from tests.helpers.jobs import assert_accounted, read_output, run, write_spec

def test_sample_job_end_to_end_then_skip_then_overwrite(ray_local, tmp_path):
    out = tmp_path / "out"
    result = run(ROOT / "jobs/specs/sample_clean.yaml", f"output.path={out}")
    data, dead, manifest = assert_accounted(out, 600)
    assert not result.skipped and dead.num_rows == 0
    source = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(str(ROOT / "sample_data/reviews/*.parquet")))])
    assert sorted(data["row_id"].to_pylist()) == sorted(source["id"].to_pylist())
    assert set(source.column_names) <= set(data.column_names)  # input columns pass through
    assert manifest["stages"][0]["rows_in"] == 600 and manifest["stages"][0]["seconds"] >= 0
    assert manifest["spec"]["output"]["path"] == str(out) and manifest["seed"] == 0
    first_finish = manifest["finished_at"]
    assert run(ROOT / "jobs/specs/sample_clean.yaml", f"output.path={out}").skipped
    assert read_output(out)[2]["finished_at"] == first_finish
    assert not run(ROOT / "jobs/specs/sample_clean.yaml", f"output.path={out}", overwrite=True).skipped
    assert_accounted(out, 600)


def bad_corpus(folder: Path) -> int:
    """Nulls, empty, huge, non-string (binary that is not text) and bad UTF-8 rows, plus good ones."""
    folder.mkdir(parents=True)
    bad_utf8 = pa.array([b"fine text", b"\xc3\x28 broken", b"ok \xe4\xb8\xad\xe6\x96\x87 mixed"], pa.binary())
    pq.write_table(pa.table({"id": ["u1", "u2", "u3"], "text": bad_utf8.view(pa.string())}), folder / "utf8.parquet")
    pq.write_table(pa.table({
        "id": ["n1", "n2", "n3", "n4", "n5", "n6"],
        "text": [None, "", "   ", "x" * 50_000, "a normal review of a phone", "这个手机很好 good phone"],
    }), folder / "mixed.parquet")
    return 9


def test_bad_rows_go_to_dead_letter_with_reasons(ray_local, tmp_path):
    n = bad_corpus(tmp_path / "in")
    spec = write_spec(tmp_path / "bad.yaml", {
        "name": "bad", "max_dead_letter_fraction": 1.0,
        "input": {"path": str(tmp_path / "in"), "id_column": "id"},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": "clean", "column": "text", "max_chars": 1000},
                   {"use": "tests.helpers.stages:UpperStage", "column": "text", "explode_on": "normal"}]})
    run(spec)
    data, dead, manifest = assert_accounted(tmp_path / "out", n)
    reasons = {r["row_id"]: (r["stage"], r["error_type"]) for r in dead.to_pylist()}
    assert reasons == {"n1": ("clean", "null"), "n2": ("clean", "empty"), "n3": ("clean", "empty"),
                       "n4": ("clean", "too_long"), "u2": ("clean", "invalid_utf8"),
                       "n5": ("upper", "ValueError")}
    assert dead.filter(pa.compute.equal(dead["row_id"], "n4"))["text"][0].as_py() == "x" * 50_000
    assert set(data["row_id"].to_pylist()) == {"u1", "u3", "n6"}
    assert "中文" in data.filter(pa.compute.equal(data["row_id"], "u3"))["text"][0].as_py()
    stages = {s["name"]: s for s in manifest["stages"]}
    assert (stages["clean"]["rows_in"], stages["clean"]["rows_dead"]) == (9, 5)
    assert (stages["tests.helpers.stages:UpperStage"]["rows_in"],
            stages["tests.helpers.stages:UpperStage"]["rows_dead"]) == (4, 1)


def test_incremental_runs_take_only_new_files(ray_local, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ROOT / "sample_data/reviews/sst2.parquet", src)
    spec = write_spec(tmp_path / "inc.yaml", {
        "name": "inc", "input": {"path": str(src), "id_column": "id", "incremental": True},
        "output": {"path": str(tmp_path / "out" / "{date}")},
        "stages": [{"use": "clean", "column": "text"}]})
    run(spec, date="2026-03-01")
    shutil.copy(ROOT / "sample_data/reviews/cr.parquet", src)
    run(spec, date="2026-03-02")
    run(spec, date="2026-03-03")
    first, second, third = (read_output(tmp_path / "out" / d) for d in ("2026-03-01", "2026-03-02", "2026-03-03"))
    assert first[2]["input_files"] == [str(src / "sst2.parquet")] and first[0].num_rows == 300
    assert second[2]["input_files"] == [str(src / "cr.parquet")] and second[0].num_rows == 300
    assert third[2]["input_files"] == [] and third[2]["rows_in"] == 0
    assert os.path.exists(tmp_path / "out" / ".raybatch-inc.state.json")
    assert set(first[0]["row_id"].to_pylist()).isdisjoint(second[0]["row_id"].to_pylist())




def test_a_cpu_model_actor_computes_on_every_core_of_the_machine(ray_local, tmp_path):
    """Ray gives the actor num_cpus 1 (a CPU stays free for I/O) and so OMP_NUM_THREADS=1; the
    actor's torch must still use both cores of this 2-CPU Ray."""
    spec = write_spec(tmp_path / "threads.yaml", {
        "name": "threads", "input": {"path": str(ROOT / "sample_data/reviews"), "id_column": "id"},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"use": "tests.helpers.stages:ThreadsActorStage", "column": "text"}]})
    run(spec)
    _, _, manifest = assert_accounted(tmp_path / "out", 600)
    assert manifest["stages"][0]["torch_threads"] == "2"

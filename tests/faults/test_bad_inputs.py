"""Mistakes users make, through the real CLI: each exits with one line naming the place, and
nothing the job did not write is touched; where the job runs, no row is lost or doubled."""

from __future__ import annotations

import os
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.faults.helpers import SAMPLE, cli, job_spec, lost_and_doubled, one_line_error
from tests.helpers.jobs import read_output, write_spec


def snapshot(folder):
    return {p: (folder / p).read_bytes() for p in sorted(os.listdir(folder)) if (folder / p).is_file()}


def user_input(folder, ids=("a", "b", "c")):
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": list(ids), "text": [f"review {i}" for i in ids]}), folder / "part.parquet")
    (folder / "README.md").write_text("the user's own notes")
    return folder


@pytest.mark.parametrize("where", ["the input folder", "inside the input", "above the input"])
def test_an_output_path_overlapping_the_input_is_refused_in_validate_and_run(tmp_path, ledger, where):
    data = user_input(tmp_path / "corpus" / "in")
    output = {"the input folder": data, "inside the input": data / "out", "above the input": tmp_path / "corpus"}[where]
    before = snapshot(data)
    spec = job_spec(tmp_path / "job.yaml", output, input_path=data, stages=[{"use": "clean", "column": "text"}])
    for command in (["validate", spec], ["run", spec], ["run", spec, "--overwrite"]):
        one_line_error(cli(*command), 2, "output.path", "the input", "nothing was touched")
    assert snapshot(data) == before and sorted(os.listdir(data)) == ["README.md", "part.parquet"]
    ledger("bad input", f"output path is {where}")


@pytest.mark.parametrize("owner", ["user files", "another job's output"])
def test_a_folder_the_job_did_not_write_is_never_replaced(tmp_path, ledger, owner):
    out = tmp_path / "out"
    if owner == "user files":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
    else:
        first = job_spec(tmp_path / "other.yaml", out, name="other-job", stages=[{"use": "clean", "column": "text"}])
        assert cli("run", first).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    spec = job_spec(tmp_path / "job.yaml", out, stages=[{"use": "clean", "column": "text"}])
    for command in (["validate", spec], ["run", spec], ["run", spec, "--overwrite"]):
        one_line_error(cli(*command), 2, f"output.path {out}", "nothing was touched")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    ledger("bad input", f"output path holds {owner}")


@pytest.mark.parametrize("stage, message", [
    ({"use": "tests.helpers.stages:UpperStage", "column": "text", "bug_on": " "},
     "stage 'tests.helpers.stages:UpperStage' raised ZeroDivisionError: division by zero (in a block starting at row_id"),
    ({"use": "tests.helpers.stages:UpperStage", "column": "text", "drop_and_double": True},
     "raised IdentityError"),
    ({"use": "tests.helpers.stages:UpperStage", "column": "text", "fail_init": True},
     "could not start: OSError: cannot load weights from /models/text"),
    ({"use": "tests.helpers.stages:UpperActorStage", "column": "text", "fail_init": True},
     "could not start: OSError: cannot load weights from /models/text"),
    ({"use": "tests.helpers.stages:UpperStage", "column": "text", "explode_on": " "},
     "more than max_dead_letter_fraction 0.5"),
], ids=["bug-on-every-row", "drops-and-doubles", "task-init-fails", "actor-init-fails", "most-rows-dead"])
def test_a_broken_stage_fails_the_job_in_one_line_and_publishes_nothing(tmp_path, ledger, stage, message):
    out = tmp_path / "out"
    result = cli("run", job_spec(tmp_path / "job.yaml", out, stages=[stage]))
    one_line_error(result, 1, message, "nothing was published")
    assert not out.exists()
    ledger("fault", f"stage: {stage.get('bug_on') and 'bug' or next(k for k in stage if k not in ('use', 'column'))}")


def test_a_model_actor_whose_engine_refuses_a_setting_exits_2_in_one_line(tmp_path, ledger):
    out = tmp_path / "out"
    stage = {"use": "tests.helpers.stages:UpperActorStage", "column": "text", "refuse_on_init": True}
    result = cli("run", job_spec(tmp_path / "job.yaml", out, stages=[stage]))
    one_line_error(result, 2, "target_lang: 'xx' is not a language code")
    assert not out.exists()
    ledger("bad input", "a setting the model's engine refuses when it loads")


def test_duplicate_ids_fail_before_work_or_go_to_the_dead_letter_on_request(tmp_path, ledger):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["one", "two", "three"]}), folder / "1.parquet")
    pq.write_table(pa.table({"id": ["c", "b"], "text": ["four", "five"]}), folder / "2.parquet")
    spec = job_spec(tmp_path / "job.yaml", tmp_path / "out", input_path=folder, max_dead_letter_fraction=1.0,
                    stages=[{"use": "clean", "column": "text"}])
    one_line_error(cli("validate", spec), 2, "1.parquet: row 2: id 'a'", "already used by", "1.parquet row 0")
    one_line_error(cli("run", spec), 2, "duplicate_ids: dead_letter")
    assert not (tmp_path / "out").exists()
    folder2 = tmp_path / "in2"
    folder2.mkdir()
    shutil.copy(folder / "2.parquet", folder2)
    pq.write_table(pa.table({"id": ["b"], "text": ["zero"]}), folder2 / "0.parquet")
    one_line_error(cli("validate", job_spec(tmp_path / "j2.yaml", tmp_path / "o2", input_path=folder2)), 2,
                   "2.parquet: row 1: id 'b'", "0.parquet row 0")  # across files too
    result = cli("run", spec, "--set", "input.duplicate_ids=dead_letter")
    assert result.returncode == 0, result.stderr
    data, dead, manifest = read_output(tmp_path / "out")
    assert sorted(data["row_id"].to_pylist()) == ["a", "b", "c"]
    assert sorted(dead["row_id"].to_pylist()) == ["a@1.parquet:2", "b@2.parquet:1"]
    assert set(dead["error_type"].to_pylist()) == {"duplicate_id"}
    assert data.filter(pa.compute.equal(data["row_id"], "a"))["text"][0].as_py() == "one"  # the first copy wins
    ledger("bad input", "duplicate ids within and across files")


def test_a_symlink_loop_is_read_once_and_a_fifo_is_refused_at_once(tmp_path, ledger):
    folder = tmp_path / "in"
    shutil.copytree(SAMPLE, folder)
    os.symlink(folder, folder / "loop")  # in/loop -> in: the old reader took every file 41 times
    out = tmp_path / "out"
    result = cli("run", job_spec(tmp_path / "job.yaml", out, input_path=folder,
                                 stages=[{"use": "clean", "column": "text"}]))
    assert result.returncode == 0, result.stderr
    ids = pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("*.parquet"))])["id"].to_pylist()
    assert lost_and_doubled(out, ids) == (0, 0) and read_output(out)[2]["rows_in"] == len(ids)
    ledger("bad input", "directory symlink loop")
    os.mkfifo(folder / "stuck.parquet")
    started = time.time()
    for command in ("validate", "run"):  # the FIFO is skipped, never opened (it would block for ever)
        assert cli(command, tmp_path / "job.yaml", timeout=60).returncode == 0
    assert time.time() - started < 60
    fifo_only = tmp_path / "fifo.parquet"
    os.mkfifo(fifo_only)
    one_line_error(cli("validate", job_spec(tmp_path / "f.yaml", tmp_path / "o", input_path=fifo_only), timeout=60),
                   2, "not a regular file")
    ledger("bad input", "a FIFO named *.parquet")


def test_credentials_in_an_unreachable_object_store_uri_never_show(tmp_path, ledger):
    uri = "s3://AKIAEXAMPLEKEY:VerySecret123@bucket/data?endpoint_override=127.0.0.1:9&scheme=http"
    spec = job_spec(tmp_path / "job.yaml", tmp_path / "out", input_path=uri)  # type: ignore[arg-type]
    started = time.time()
    for command in ("validate", "run"):
        result = cli(command, spec, timeout=120)
        line = one_line_error(result, 2, "s3://***@bucket/data", "cannot reach the object store")
        assert "VerySecret123" not in result.stderr + result.stdout and "AKIAEXAMPLEKEY" not in line
    assert time.time() - started < 90
    ledger("fault", "unreachable object store")
    ledger("bad input", "credentials in an input URI")


def test_alias_bombs_bad_keys_and_impossible_dates_exit_2_at_once(tmp_path, ledger):
    levels = "\n".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, 9))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"x0: &x0 [lol]\n{levels}\nname: bomb\ninput: {{path: {SAMPLE}}}\n"
                    f"output: {{path: {tmp_path / 'out'}}}\nstages:\n  - use: *x8\n")
    started = time.time()
    one_line_error(cli("validate", bomb), 2, "bomb.yaml", "aliases expand to more than")
    assert time.time() - started < 20
    ledger("bad input", "YAML alias bomb")
    listy = write_spec(tmp_path / "listy.yaml", {"name": "l", "input": {"path": str(SAMPLE)},
                                                  "output": {"path": str(tmp_path / "out")},
                                                  "stages": [{"use": ["clean", "clean"]}]})
    one_line_error(cli("validate", listy), 2, "stages[0].use: must be a stage name (a string), not a list")
    ledger("bad input", "a list where a stage name goes")
    spec = job_spec(tmp_path / "job.yaml", tmp_path / "out" / "{date}", stages=[{"use": "clean", "column": "text"}])
    for date in ("2026-13-45", "2026-02-30", "2026-2-3", "yesterday"):
        one_line_error(cli("run", spec, "--date", date), 2, f"--date {date!r}: not a calendar date")
        ledger("bad input", f"--date {date}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep_second", [False, True])
def test_augment_after_augment_accounts_for_every_row(tmp_path, ledger, keep_second):
    """The second augment's copies never take the ids of the first one's kept copies."""
    ops = [{"op": "reorder", "rate": 0.3}, {"op": "delete", "rate": 0.2}]
    stages = [{"use": "clean", "column": "text"},
              {"use": "augment", "column": "text_clean", "copies": 2, "keep_original": True, "ops": ops},
              {"use": "augment", "column": "text_clean", "copies": 1, "keep_original": keep_second, "ops": ops}]
    out = tmp_path / "out"
    result = cli("run", job_spec(tmp_path / "job.yaml", out, stages=stages))
    assert result.returncode == 0, result.stderr
    data, dead, manifest = read_output(out)
    ids = pa.concat_tables([pq.read_table(p) for p in sorted(SAMPLE.glob("*.parquet"))])["id"].to_pylist()
    assert manifest["rows_in"] == len(ids) and data.num_rows + dead.num_rows > len(ids)
    parents = {row_id.split("~")[0] for row_id in data["row_id"].to_pylist()}
    assert parents | set(dead["row_id"].to_pylist() if dead.num_rows else []) == set(ids)
    assert len(set(data["row_id"].to_pylist())) == data.num_rows  # no id twice
    assert any(row_id.endswith("~aug2.0") for row_id in data["row_id"].to_pylist())
    ledger("bad input", f"augment after augment (second keeps originals: {keep_second})")


def test_incremental_retention_and_a_recopied_file_do_not_retake_files(tmp_path, ledger):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLE / "sst2.parquet", folder)
    spec = job_spec(tmp_path / "inc.yaml", tmp_path / "out" / "{date}", name="inc", input_path=folder,
                    stages=[{"use": "clean", "column": "text"}], input_keys={"incremental": True})
    assert cli("run", spec, "--date", "2026-03-01").returncode == 0
    shutil.rmtree(tmp_path / "out" / "2026-03-01")  # retention
    data = (folder / "sst2.parquet").read_bytes()
    (folder / "sst2.parquet").unlink()
    (folder / "sst2.parquet").write_bytes(data)  # the same file copied in again: new mtime
    os.utime(folder / "sst2.parquet", (time.time() + 5, time.time() + 5))
    shutil.copy(SAMPLE / "cr.parquet", folder)
    result = cli("run", spec, "--date", "2026-03-02")
    assert result.returncode == 0, result.stderr
    _, _, manifest = read_output(tmp_path / "out" / "2026-03-02")
    assert manifest["input_files"] == [str(folder / "cr.parquet")]
    ledger("bad input", "incremental: retention and a re-copied file")

"""The cluster client without a cluster: addresses, token lookup, what gets shipped, the entrypoint."""

from __future__ import annotations

import os
import shlex
import stat

import pytest

from jobs.spec import load_spec
from ray_cluster import auth, submit
from ray_cluster.errors import ClusterError
from tests.conftest import ROOT


@pytest.fixture
def no_token_env(monkeypatch, tmp_path):
    """A HOME without ~/.ray/auth_token and no token variables."""
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.mark.parametrize("given, expected", [
    ("http://127.0.0.1:8265", "http://127.0.0.1:8265"),
    ("127.0.0.1:8265/", "http://127.0.0.1:8265"),
    ("https://ray.example.org", "https://ray.example.org"),
])
def test_addresses_become_dashboard_urls(given, expected, no_token_env):
    assert submit.resolve_address(given) == expected


def test_address_falls_back_to_ray_address(monkeypatch, no_token_env):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:8265")
    assert submit.resolve_address(None) == "http://10.0.0.5:8265"


@pytest.mark.parametrize("given, fragment", [
    (None, "no cluster address"),
    ("ray://127.0.0.1:10001", "not a Ray Client address"),
    ("http://127.0.0.1:port", "expected a dashboard URL"),
    ("ftp://127.0.0.1:21", "expected a dashboard URL"),
])
def test_bad_addresses_are_one_line_usage_errors(given, fragment, no_token_env):
    with pytest.raises(ClusterError, match=fragment) as info:
        submit.resolve_address(given)
    assert info.value.exit_code == 2


def test_token_precedence_env_then_path_then_home_file(monkeypatch, no_token_env, tmp_path):
    assert auth.find_token() is None and auth.auth_headers() == {}
    (no_token_env / ".ray").mkdir()
    (no_token_env / ".ray" / "auth_token").write_text("from-home\n")
    assert auth.find_token() == auth.Token("from-home", str(no_token_env / ".ray" / "auth_token"))
    named = tmp_path / "named"
    named.write_text("  from-path  ")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert auth.find_token().value == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert auth.find_token() == auth.Token("from-env", "RAY_AUTH_TOKEN")
    assert auth.auth_headers() == {"Authorization": "Bearer from-env"}


def test_unreadable_token_path_is_an_error_not_a_fallback(monkeypatch, no_token_env, tmp_path):
    (no_token_env / ".ray").mkdir()
    (no_token_env / ".ray" / "auth_token").write_text("from-home")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(ClusterError, match="cannot read the token file"):
        auth.find_token()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "empty"))
    with pytest.raises(ClusterError, match="token file is empty"):
        auth.find_token()


def test_ensure_token_creates_a_private_file_once(no_token_env):
    token, created = auth.ensure_token()
    path = no_token_env / ".ray" / "auth_token"
    assert created and path.read_text() == token.value and len(token.value) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = auth.ensure_token()
    assert again == token and not created_again


def make_project(root):
    """A small checkout with everything that must and must not be shipped."""
    files = {
        "pyproject.toml": "[project]\nname='x'\n",
        ".gitignore": "secrets.env\n/data/raw/\n*.log\n",
        ".rayignore": "big/\n",
        "jobs/__init__.py": "",
        "jobs/specs/job.yaml": "name: x\n",
        "sample_data/reviews/a.parquet": "PAR1",
        "jobs/__pycache__/m.cpython-311.pyc": "x",
        ".venv/bin/python": "x",
        ".git/HEAD": "ref",
        "out/x/data/part.parquet": "x",
        "secrets.env": "x",
        "data/raw/a.csv": "x",
        "data/keep.csv": "x",
        "big/blob.bin": "x",
        "run.log": "x",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def shipped(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def test_working_dir_holds_code_data_and_spec_but_no_env_outputs_or_ignored_files(tmp_path):
    root = tmp_path / "project"
    make_project(root)
    working = submit.stage_working_dir(root, root / "jobs/specs/job.yaml", tmp_path / "stage")
    assert working.spec == "jobs/specs/job.yaml"
    assert shipped(working.path) == [".gitignore", ".rayignore", "data/keep.csv", "jobs/__init__.py",
                                     "jobs/specs/job.yaml", "pyproject.toml", "sample_data/reviews/a.parquet"]
    assert working.files == 7


def test_a_spec_from_outside_the_project_is_shipped_beside_it(tmp_path):
    root = tmp_path / "project"
    make_project(root)
    outside = tmp_path / "elsewhere" / "nightly.yaml"
    outside.parent.mkdir()
    outside.write_text("name: y\n")
    working = submit.stage_working_dir(root, outside, tmp_path / "stage")
    assert working.spec == "_raybatch_specs/nightly.yaml"
    assert (working.path / working.spec).read_text() == "name: y\n"


def test_a_working_dir_over_rays_limit_is_refused_naming_the_biggest_file(tmp_path, monkeypatch):
    root = tmp_path / "project"
    make_project(root)
    (root / "sample_data" / "huge.parquet").write_bytes(b"x" * 5000)
    monkeypatch.setattr(submit, "max_upload_bytes", lambda: 4096)
    with pytest.raises(ClusterError, match=r"over Ray's .* upload limit; biggest: sample_data/huge.parquet"):
        submit.stage_working_dir(root, root / "jobs/specs/job.yaml", tmp_path / "stage")


def test_the_real_project_ships_small_and_its_sample_spec_validates_from_the_copy(tmp_path, monkeypatch):
    working = submit.stage_working_dir(ROOT, ROOT / "jobs/specs/sample_clean.yaml", tmp_path / "stage")
    assert working.bytes < submit.max_upload_bytes() // 10
    names = shipped(working.path)
    assert "jobs/cli.py" in names and any(n.startswith("sample_data/reviews/") for n in names)
    assert not any(n.startswith((".venv/", ".git/", "out/")) or "__pycache__" in n for n in names)
    monkeypatch.chdir(working.path)  # as the driver sees it on the cluster
    spec = load_spec(working.spec, ["output.path=/tmp/x/{name}/{date}"], "2026-01-31")
    assert spec.output.path == "/tmp/x/sample-clean/2026-01-31"


def test_entrypoint_is_the_local_run_command_quoted_for_the_shell():
    entrypoint = submit.build_entrypoint("jobs/specs/a b.yaml", "2026-01-31",
                                         ["output.path=/tmp/o/{name}/{date}", "stages.0.column=it's"])
    assert shlex.split(entrypoint) == ["python", "-m", "jobs", "run", "jobs/specs/a b.yaml", "--date", "2026-01-31",
                                       "--verbose", "--set", "output.path=/tmp/o/{name}/{date}", "--set", "stages.0.column=it's"]


def test_server_errors_shrink_to_the_exception_line():
    text = ("Request failed with status code 500: Traceback (most recent call last):\n  File \"x.py\", line 1\n"
            "ValueError: runtime_env is invalid\n.")
    assert submit.summary(text) == "ValueError: runtime_env is invalid"
    assert submit.summary("No available agent to submit job, please try again later.\nmore") == \
        "No available agent to submit job, please try again later."


def test_a_train_spec_is_checked_here_and_submitted_as_train(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from jobs.cli import app
    from tests.helpers.jobs import write_spec
    from tests.helpers.train_data import train_spec

    sent = {}

    class FakeCluster:
        address = "http://127.0.0.1:8265"

        def __init__(self, address, connect_timeout):
            pass

        def submit(self, spec, date, overrides, name, command="run"):
            sent.update(spec=spec, name=name, command=command,
                        entrypoint=submit.build_entrypoint(str(spec), date, overrides, command))
            return "raybatch-sft-test-1"

    monkeypatch.setattr(submit, "Cluster", FakeCluster)
    spec = write_spec(tmp_path / "sft.yaml", train_spec(tmp_path / "export", tmp_path / "model", tmp_path / "out"))
    result = CliRunner().invoke(app, ["submit", str(spec), "--date", "2026-01-31"])
    assert result.exit_code == 0, result.output
    assert sent["command"] == "train" and sent["name"] == "sft-test"
    assert shlex.split(sent["entrypoint"])[:5] == ["python", "-m", "jobs", "train", str(spec)]
    bad = write_spec(tmp_path / "bad.yaml", train_spec(tmp_path / "export", tmp_path / "model", tmp_path / "out",
                                                        learning_rate=-1))
    result = CliRunner().invoke(app, ["submit", str(bad)])
    assert result.exit_code == 2 and "train.learning_rate: must be > 0" in result.output

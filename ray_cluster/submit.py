"""Run raybatch jobs on a Ray cluster through the Jobs API (JobSubmissionClient).

A submission ships the project (code, sample data, the spec) as the job's working_dir and runs
the same entrypoint as a local run, `python -m jobs run SPEC --date D [--set K=V …]`, so one spec
behaves alike everywhere. The client sends the cluster's token by itself, retries while a fresh
head is still starting, and turns every refusal into one line (ClusterError, exit 2).
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import secrets
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlparse

from ray_cluster.auth import auth_headers, find_token
from ray_cluster.errors import ClusterError, JobNotFound

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# Never shipped: environments, outputs, VCS data and caches (plus .gitignore / .rayignore entries).
DEFAULT_EXCLUDES = [".git/", ".venv/", "venv/", "out/", "__pycache__/", "*.pyc", ".pytest_cache/",
                    ".mypy_cache/", ".ruff_cache/", "*.egg-info/", "build/", "dist/", ".ipynb_checkpoints/"]
SPEC_DIR = "_raybatch_specs"  # where a spec from outside the project lands in the working dir
# Messages of a head whose job agent is not registered yet: worth retrying, not reporting.
NOT_READY = ("No available agent", "Failed to get head node agent", "status code 502", "status code 503",
             "status code 504")


def resolve_address(address: str | None) -> str:
    """The dashboard URL to talk to: --address, else RAY_ADDRESS; http:// is assumed."""
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    if not address:
        raise ClusterError("no cluster address: pass --address http://HOST:8265 or set RAY_ADDRESS")
    if address.startswith("ray://"):
        raise ClusterError(f"--address {address}: the Jobs API needs the dashboard URL (http://HOST:8265), "
                           f"not a Ray Client address")
    if "://" not in address:
        address = f"http://{address}"
    parsed = urlparse(address)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or (port is None and ":" in parsed.netloc):
        raise ClusterError(f"--address {address}: expected a dashboard URL like http://127.0.0.1:8265")
    return address.rstrip("/")


# ---- the working dir ----------------------------------------------------------------------


def project_root() -> Path:
    """The checkout holding the `jobs` package: what a job needs to run on the cluster."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists() or not (root / "jobs").is_dir():
        raise ClusterError(f"{root}: not a raybatch checkout (no pyproject.toml); submit from the project "
                           f"directory so its code and data can be shipped")
    return root


def ignore_patterns(root: Path) -> list[str]:
    patterns = list(DEFAULT_EXCLUDES)
    for name in (".gitignore", ".rayignore"):
        try:
            lines = (root / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        patterns += [line.strip() for line in lines
                     if line.strip() and not line.startswith("#") and not line.startswith("!")]
    return patterns


def is_excluded(rel: str, is_dir: bool, patterns: Iterable[str]) -> bool:
    """gitignore-style matching for the common forms: `name`, `*.ext`, `dir/`, `/anchored/path`."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pattern = pattern.strip("/") if dir_only else pattern.lstrip("/")
        if dir_only and not is_dir:
            continue
        anchored = "/" in pattern
        if fnmatch.fnmatchcase(rel if anchored else name, pattern):
            return True
    return False


def max_upload_bytes() -> int:
    """Ray's cap on one working_dir package (a gRPC message)."""
    try:
        from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE
    except ImportError:  # moved in another Ray version: the documented default
        return 512 * 1024 * 1024
    return GCS_STORAGE_MAX_SIZE


@dataclass
class WorkingDir:
    path: Path
    spec: str  # the spec's path inside the working dir, as the entrypoint names it
    files: int
    bytes: int


def stage_working_dir(root: Path, spec: Path, dest: Path) -> WorkingDir:
    """Copy the project into `dest` minus excluded paths, plus the spec when it lives elsewhere;
    refuse (one line naming the biggest files) when Ray would refuse the upload."""
    patterns = ignore_patterns(root)
    sizes: list[tuple[int, str]] = []
    for current, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = sorted(d for d in dirs if not is_excluded(rel_dir + d, True, patterns))
        for name in sorted(files):
            rel = rel_dir + name
            source = Path(current) / name
            if is_excluded(rel, False, patterns) or not source.is_file():
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            sizes.append((source.stat().st_size, rel))
    spec = spec.resolve()
    try:
        spec_rel = spec.relative_to(root).as_posix()
    except ValueError:
        spec_rel = None
    if spec_rel is None or not (dest / spec_rel).exists():
        # Outside the project, or excluded there: ship it beside the project under its own name.
        spec_rel = f"{SPEC_DIR}/{spec.name}"
        (dest / SPEC_DIR).mkdir(exist_ok=True)
        shutil.copy2(spec, dest / spec_rel)
        sizes.append((spec.stat().st_size, spec_rel))
    total = sum(size for size, _ in sizes)
    limit = max_upload_bytes()
    if total >= limit:
        biggest = ", ".join(f"{rel} ({size / 2**20:.0f} MiB)" for size, rel in sorted(sizes, reverse=True)[:3])
        raise ClusterError(f"the working dir to ship is {total / 2**20:.0f} MiB, over Ray's {limit / 2**20:.0f} MiB "
                           f"upload limit; biggest: {biggest}. List large data in .rayignore and read it from "
                           f"storage every node can reach")
    return WorkingDir(dest, spec_rel, len(sizes), total)


def build_entrypoint(spec_rel: str, date: str, overrides: list[str], command: str = "run") -> str:
    """`python -m jobs run|train SPEC --date … --verbose` as the cluster's driver runs it: verbose,
    so Ray's own output stays in the job's logs (`raybatch logs`), where a cluster user reads it."""
    parts = ["python", "-m", "jobs", command, spec_rel, "--date", date, "--verbose"]
    for item in overrides:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


# ---- the client ---------------------------------------------------------------------------


class Cluster:
    """A JobSubmissionClient that authenticates itself and reports refusals in one line."""

    def __init__(self, address: str | None, connect_timeout: float = 10.0):
        self.address = resolve_address(address)
        self.connect_timeout = connect_timeout
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = self._retrying(lambda: JobSubmissionClient(self.address, headers=auth_headers()),
                                          "connect")
        return self._client

    def _retrying(self, call: Callable, what: str, job_id: str | None = None):
        """Run `call`, retrying while the cluster is unreachable or its job agent is not up yet,
        for up to `connect_timeout` seconds; map every other refusal to ClusterError."""
        import requests
        from ray.exceptions import AuthenticationError

        deadline = time.monotonic() + self.connect_timeout
        delay = 0.5
        while True:
            try:
                return call()
            except AuthenticationError as exc:
                raise ClusterError(self._auth_message(str(exc))) from None
            except (ConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                if time.monotonic() >= deadline:
                    raise ClusterError(f"cannot reach the Ray dashboard at {self.address} (tried for "
                                       f"{self.connect_timeout:.0f}s): is the cluster up, and is this its "
                                       f"dashboard URL (http://HOST:8265, not the GCS port)?") from None
            except RuntimeError as exc:
                text = str(exc)
                if "status code 404" in text:
                    raise JobNotFound(f"no job {job_id!r} on {self.address}") from None
                if not any(marker in text for marker in NOT_READY) or time.monotonic() >= deadline:
                    raise ClusterError(f"{what} failed on {self.address}: {summary(text)}") from None
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    def _auth_message(self, text: str) -> str:
        token = find_token()
        if "Authentication required" in text or token is None:
            return (f"the cluster at {self.address} requires a token and none was found: set RAY_AUTH_TOKEN "
                    f"or put the cluster's token in ~/.ray/auth_token")
        return (f"the cluster at {self.address} rejected the token from {token.source}: it is not the token "
                f"the cluster was started with")

    # ---- commands ----

    def submit(self, spec: str | Path, date: str, overrides: list[str], name: str, command: str = "run") -> str:
        """Ship the project and spec, start `python -m jobs run …` (or `train`) on the cluster; return the job id."""
        spec = Path(spec)
        root = project_root()
        submission_id = f"raybatch-{name}-{date}-{time.strftime('%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
        with tempfile.TemporaryDirectory(prefix="raybatch-submit-") as tmp:
            working = stage_working_dir(root, spec, Path(tmp) / "project")
            entrypoint = build_entrypoint(working.spec, date, overrides, command)
            runtime_env = {"working_dir": str(working.path), "env_vars": {"PYTHONUNBUFFERED": "1"}}
            metadata = {"raybatch_job": name, "date": date, "spec": working.spec}
            client = self.client

            def call():
                try:
                    return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                             submission_id=submission_id, metadata=metadata)
                except RuntimeError as exc:
                    # A retry after a lost response: the first attempt got through.
                    if "already exists" in str(exc) and submission_id in str(exc):
                        return submission_id
                    raise
                except ValueError as exc:  # Ray's own package size check
                    raise ClusterError(f"cannot ship the working dir: {summary(str(exc))}") from None

            return self._retrying(call, "submit")

    def info(self, job_id: str):
        return self._retrying(lambda: self.client.get_job_info(job_id), "status", job_id)

    def logs(self, job_id: str) -> str:
        return self._retrying(lambda: self.client.get_job_logs(job_id), "logs", job_id)

    def follow(self, job_id: str, write: Callable[[str], None]) -> None:
        """Stream the job's logs until it ends (prints what was logged so far first)."""
        self.info(job_id)  # unknown ids and auth problems fail here, as one line

        async def tail():
            import logging

            logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)  # "WebSocket closed"
            async for chunk in self.client.tail_job_logs(job_id):
                write(chunk)

        import aiohttp

        try:
            asyncio.run(tail())
        except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The stream can drop (head restarted, proxy timeout); the job itself may be fine.
            write(f"\n[log stream ended early: {summary(str(exc))}]\n")

    def wait(self, job_id: str, poll: float = 1.0):
        """Block until the job reaches a terminal status; return its JobDetails."""
        while True:
            details = self.info(job_id)
            if status_name(details) in TERMINAL:
                return details
            time.sleep(poll)

    def stop(self, job_id: str) -> bool:
        return self._retrying(lambda: self.client.stop_job(job_id), "stop", job_id)

    def list(self) -> list:
        return self._retrying(lambda: self.client.list_jobs(), "list")


def summary(text: str, limit: int = 300) -> str:
    """One line of a server error: a traceback's last line (the exception), else the first line."""
    lines = [line.strip() for line in text.splitlines() if any(ch.isalnum() for ch in line)]
    if not lines:
        return "(no message)"
    line = lines[-1] if "Traceback" in text else lines[0]
    return line if len(line) <= limit else line[:limit] + "…"


def status_name(details) -> str:
    """JobStatus is a str enum; its str() differs across Ray versions, its value does not."""
    status = details.status
    return getattr(status, "value", str(status))

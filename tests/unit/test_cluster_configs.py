"""ray_cluster/ configs are valid for their tools: the launcher's schema, a RayJob the KubeRay operator
accepts and whose entrypoint is our CLI with a spec that validates, a crontab cron can read."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import jsonschema
import yaml

from jobs.spec import load_spec
from tests.conftest import ROOT

CLUSTER = ROOT / "ray_cluster"


def ray_schema() -> dict:
    """The launcher schema Ray ships (read as a file: no Ray import, no Ray start)."""
    package = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    return json.loads((package / "autoscaler" / "ray-schema.json").read_text())


def run_args(command: str) -> list[str]:
    """The arguments after `python -m jobs run` / `raybatch run|submit` in a shell command."""
    words = shlex.split(command)
    for index, word in enumerate(words):
        if word == "jobs" and words[index - 1] == "-m" and words[index + 1] == "run":
            return words[index + 2:]
        if word == "raybatch" and words[index + 1] in ("run", "submit"):
            return words[index + 2:]
    raise AssertionError(f"no raybatch run in: {command}")


def check_run_args(args: list[str]) -> None:
    """The spec exists in the project and validates with the command's --set overrides."""
    spec, overrides, date = args[0], [], "2026-01-31"
    words = iter(args[1:])
    for word in words:
        if word == "--set":
            overrides.append(next(words))
        elif word == "--date":
            next(words)  # a shell substitution in cron; any valid date checks the rest
        elif word.startswith(">>") or word in ("2>&1", ">>"):
            break
    assert (ROOT / spec).is_file(), spec
    job = load_spec(ROOT / spec, overrides, date)
    assert job.output.path.startswith("/"), "cluster and cron outputs must be absolute paths"


def test_cluster_launcher_config_is_valid_with_a_cpu_head_and_an_autoscaling_gpu_group():
    config = yaml.safe_load((CLUSTER / "cluster.yaml").read_text())
    jsonschema.validate(config, ray_schema())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] > 0
    gpu_groups = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu_groups, "no GPU worker group"
    for group in gpu_groups.values():
        assert group["min_workers"] == 0 < group["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0
    # Token auth on every node: the token file is shipped and every `ray start` runs in token mode.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "--head" in starts[0] and "--num-gpus=0" in starts[0] and "$RAY_HEAD_IP:6379" in starts[1]
    assert any("raybatch" in c and "pip install" in c for c in config["setup_commands"])


def test_rayjob_runs_our_entrypoint_with_token_auth_and_an_autoscaling_gpu_group():
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    spec = job["spec"]
    command = spec["entrypoint"]
    assert "python -m jobs run" in command
    check_run_args(run_args(command.split("&&")[-1]))
    assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token" and cluster["rayVersion"] == "2.60.0"
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    workers = cluster["workerGroupSpecs"]
    gpu = [w for w in workers
           if any("nvidia.com/gpu" in c["resources"]["limits"] for c in w["template"]["spec"]["containers"])]
    assert gpu and all(w["minReplicas"] == 0 < w["maxReplicas"] and w["replicas"] >= w["minReplicas"] for w in gpu)
    # Every pod mounts the output volume it declares (the output is written from any node).
    for pod in [head["template"]["spec"]] + [w["template"]["spec"] for w in workers]:
        volumes = {v["name"] for v in pod["volumes"]}
        for container in pod["containers"]:
            assert container["image"]
            assert {m["name"] for m in container["volumeMounts"]} <= volumes
            assert any("/mnt/out/" in command and m["mountPath"] == "/mnt/out" for m in container["volumeMounts"])


def cron_lines() -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    env, jobs = {}, []
    for line in (CLUSTER / "crontab.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z_]+)=(.*)", line)
        if match:
            env[match[1]] = match[2]
            continue
        fields = line.split(None, 5)
        jobs.append((fields[:5], fields[5]))
    return env, jobs


CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # minute, hour, day, month, weekday


def test_crontab_example_has_environment_valid_schedules_and_commands_that_validate():
    env, jobs = cron_lines()
    assert {"SHELL", "PATH", "CRON_TZ"} <= env.keys() and ".venv/bin" in env["PATH"]
    assert len(jobs) >= 2
    for schedule, command in jobs:
        for value, (low, high) in zip(schedule, CRON_FIELDS):
            assert value == "*" or low <= int(value) <= high, schedule
        # cron ends the command at an unescaped %: every date format must escape it.
        assert not re.search(r"(?<!\\)%", command), command
        assert ">> /var/log/raybatch/" in command and command.rstrip().endswith("2>&1")
        if re.search(r"raybatch (run|submit) ", command):
            check_run_args(run_args(command.replace("\\%", "%")))
        if "raybatch submit" in command:
            assert "--wait" in command and "--address http" in command
    text = (CLUSTER / "crontab.example").read_text()
    assert re.search(r"^#\s+3\s+lock held", text, re.M) and "flock" in text

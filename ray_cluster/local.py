"""A real multi-node Ray cluster on this machine (127.0.0.1) for tests and demos.

Each node is a `ray start --block` process of its own, started with this project's Python, so
job drivers (`python -m jobs run …`) and workers find the project's dependencies. Every node gets
its own temp dir and its own ports: nodes on one machine must not share the dashboard agent's or
the runtime-env agent's port. `down` stops only the processes this helper started (recorded in
`<dir>/cluster.json`, tagged with an environment marker), never other Ray instances on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ray_cluster.auth import auth_headers, ensure_token
from ray_cluster.errors import ClusterError

HOST = "127.0.0.1"
STATE_FILE = "cluster.json"
RAY_WORKER_PORTS = (10002, 19999)  # `ray start`'s default --min-worker-port and --max-worker-port
MARKER_ENV = "RAYBATCH_LOCAL_CLUSTER"  # inherited by every process of the cluster; `down` keys on it


def default_dir() -> Path:
    """Kept short: Ray's Unix socket paths live under it and must stay below ~107 characters."""
    return Path(os.environ.get("RAYBATCH_CLUSTER_DIR") or f"/tmp/raybatch-cluster-{os.getuid()}")


@dataclass
class Node:
    name: str
    pid: int
    temp_dir: str
    log: str


@dataclass
class LocalCluster:
    root: str
    gcs_port: int
    dashboard_port: int
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The GCS address (`ray start --address`, `ray.init(address=…)`)."""
        return f"{HOST}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """The Jobs API address (`ray job submit --address`, `raybatch submit --address`)."""
        return f"http://{HOST}:{self.dashboard_port}"

    def save(self) -> None:
        data = {**asdict(self), "nodes": [asdict(n) for n in self.nodes]}
        path = Path(self.root) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: Path) -> "LocalCluster | None":
        try:
            data = json.loads((Path(root) / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(data["root"], data["gcs_port"], data["dashboard_port"], [Node(**n) for n in data["nodes"]])


def free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1 now (held open together so none repeats)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def port_is_free(port: int) -> bool:
    """Bindable the way Ray's servers bind (SO_REUSEADDR: a closed cluster's TIME_WAIT is no conflict)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def ray_command() -> list[str]:
    """`ray` run by this very interpreter, so the cluster uses the project's environment; through
    a launcher that keeps the nodes on 127.0.0.1 (see _ray_start.py)."""
    return [sys.executable, str(Path(__file__).with_name("_ray_start.py"))]


def node_env(root: Path) -> dict[str, str]:
    """The environment every node (and so every worker and job driver) inherits."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a node must not join whatever cluster the caller points at
    bin_dir = str(Path(sys.executable).parent)
    # Job entrypoints say `python`: put this interpreter's bin first so that is the project's Python.
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["RAY_AUTH_MODE"] = "token"
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["PYTHONUNBUFFERED"] = "1"
    env[MARKER_ENV] = str(root)
    return env


def up(workers: int = 1, *, root: Path | None = None, cpus_per_node: int = 1, port: int | None = None,
       dashboard_port: int | None = None, object_store_mb: int = 512, timeout: float = 120.0) -> LocalCluster:
    """Start a head and `workers` worker nodes on 127.0.0.1 with token auth; wait until every
    node is alive and the dashboard answers. On failure, what was started is stopped again."""
    for asked in (port, dashboard_port):
        if asked and RAY_WORKER_PORTS[0] <= asked <= RAY_WORKER_PORTS[1]:  # Ray would fail late on it
            raise ClusterError(f"port {asked} is in the range Ray gives its worker processes "
                               f"({RAY_WORKER_PORTS[0]}-{RAY_WORKER_PORTS[1]}); pick one outside it")
    root = Path(root or default_dir()).absolute()
    existing = LocalCluster.load(root)
    if existing and _alive_nodes(existing):
        raise ClusterError(f"a local cluster from {root} is already running (dashboard: {existing.dashboard_url}); "
                           f"run `raybatch cluster down` first")
    if workers < 0:
        raise ClusterError("--workers must be >= 0")
    if existing:
        down(root)  # a dead head can leave live children behind; they go before their files do
    _clear(root, existing)
    ensure_token()
    env = node_env(root)
    port = port or (6379 if port_is_free(6379) else free_ports(1)[0])
    dashboard_port = dashboard_port or (8265 if port_is_free(8265) else free_ports(1)[0])
    for wanted in (port, dashboard_port):
        if not port_is_free(wanted):
            raise ClusterError(f"port {wanted} on {HOST} is in use; pick another (--port / --dashboard-port)")
    cluster = LocalCluster(str(root), port, dashboard_port)
    try:
        head_args = ["--head", f"--port={port}", f"--dashboard-port={dashboard_port}", f"--dashboard-host={HOST}",
                     "--include-dashboard=true", f"--ray-client-server-port={free_ports(1)[0]}"]
        _start_node(cluster, "head", head_args, env, cpus_per_node, object_store_mb)
        _wait(lambda: _dashboard_ready(cluster), timeout, cluster, "the head's dashboard to answer")
        for index in range(1, workers + 1):
            _start_node(cluster, f"worker{index}", [f"--address={cluster.address}"], env, cpus_per_node,
                        object_store_mb)
        _wait(lambda: _alive_node_count(cluster) >= workers + 1, timeout, cluster,
              f"{workers + 1} node(s) to register")
    except BaseException:
        down(root)
        raise
    return cluster


def _clear(root: Path, stale: "LocalCluster | None") -> None:
    """Make `root` ready: new, empty, or a stopped cluster's dir, whose files alone are removed
    (a --dir pointing at anything else is refused, never wiped)."""
    if root.exists() and any(root.iterdir()):
        if stale is None:
            raise ClusterError(f"--dir {root} is not empty and holds no raybatch cluster; give a new or empty folder")
        for node in stale.nodes:
            for path in (Path(node.temp_dir), Path(node.log)):
                if path.parent != root:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        (root / STATE_FILE).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def _start_node(cluster: LocalCluster, name: str, args: list[str], env: dict, cpus: int,
                object_store_mb: int) -> None:
    temp_dir = Path(cluster.root) / name
    log = Path(cluster.root) / f"{name}.log"
    node = Node(name, 0, str(temp_dir), str(log))  # recorded before its files exist: a failed up leaves
    cluster.nodes.append(node)                     # a folder the next up knows as ours and clears
    cluster.save()
    temp_dir.mkdir()
    (node_manager, object_manager, agent_http, agent_grpc, runtime_env_agent, metrics) = free_ports(6)
    command = [*ray_command(), "start", "--block", f"--node-ip-address={HOST}", f"--temp-dir={temp_dir}",
               f"--num-cpus={cpus}", "--num-gpus=0", f"--object-store-memory={object_store_mb * 1024 * 1024}",
               f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
               f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--runtime-env-agent-port={runtime_env_agent}", f"--metrics-export-port={metrics}",
               "--disable-usage-stats", *args]
    with open(log, "wb") as out:
        # Its own session: a Ctrl-C in the caller's terminal must not reach the cluster.
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    node.pid = process.pid
    cluster.save()


def _wait(check, timeout: float, cluster: LocalCluster, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [n for n in cluster.nodes if not _pid_alive(n.pid)]
        if dead:
            raise ClusterError(f"node {dead[0].name} exited while starting: {_tail(dead[0].log)} "
                               f"(log: {dead[0].log})")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {cluster.root}")


def _dashboard_ready(cluster: LocalCluster) -> bool:
    import requests

    try:
        response = requests.get(f"{cluster.dashboard_url}/api/version", headers=auth_headers(), timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200


def _alive_node_count(cluster: LocalCluster) -> int:
    import requests

    try:
        response = requests.get(f"{cluster.dashboard_url}/api/v0/nodes", params={"limit": 1000},
                                headers=auth_headers(), timeout=5)
    except requests.RequestException:
        return 0
    if response.status_code != 200:
        return 0
    nodes = response.json().get("data", {}).get("result", {}).get("result", [])
    return sum(1 for n in nodes if n.get("state") == "ALIVE")


def _tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


# ---- stopping ------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _ours(proc, root: str) -> bool:
    """A process belongs to the cluster in `root` when it carries the marker we put in the nodes'
    environment (every Ray process inherits it) or names one of our temp dirs on its command line."""
    import psutil

    try:
        if proc.environ().get(MARKER_ENV) == root:
            return True
        return any(f"{root}/" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def processes(root: Path | None = None) -> list:
    """Every live process of the local cluster in `root` (psutil.Process objects)."""
    import psutil

    root = str(Path(root or default_dir()).absolute())
    me = os.getpid()
    found = {p.pid: p for p in psutil.process_iter() if p.pid != me and _ours(p, root)}
    # Ray workers rename themselves (and may overwrite the environment block that held the marker):
    # their parents, the raylets, are ours, so descendants count too.
    for proc in list(found.values()):
        try:
            found.update((child.pid, child) for child in proc.children(recursive=True) if child.pid != me)
        except psutil.Error:
            pass
    return list(found.values())


def _alive_nodes(cluster: LocalCluster) -> list[Node]:
    import psutil

    alive = []
    for node in cluster.nodes:
        try:
            if _pid_alive(node.pid) and _ours(psutil.Process(node.pid), cluster.root):
                alive.append(node)
        except psutil.Error:
            pass
    return alive


def down(root: Path | None = None, grace: float = 15.0) -> int:
    """Stop the cluster recorded under `root`: Ctrl-C to each node (workers first), then SIGKILL to
    whatever of it is left after `grace` seconds. Returns how many processes were running."""
    import psutil

    root = Path(root or default_dir()).absolute()
    cluster = LocalCluster.load(root)
    if cluster is None:
        return 0
    # Everything the nodes started, found before anything stops (orphans lose their parent link).
    procs = {p.pid: p for p in processes(root)}
    for node in reversed(cluster.nodes):
        proc = procs.get(node.pid)
        if proc is not None:
            try:
                proc.send_signal(signal.SIGINT)  # `ray start --block` shuts its node down on Ctrl-C
            except psutil.Error:
                pass
    started_with = len(procs)
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace)
    _kill(alive)
    # Stragglers started while we were stopping (a worker being spawned) carry the marker too.
    _kill(processes(root))
    # The record stays: it says which files here are the stopped cluster's (logs to read), and the
    # next `up` in this folder clears them instead of refusing a folder it does not know.
    return started_with


def _kill(procs: list) -> None:
    """SIGKILL what is still running and wait briefly for it to go."""
    import psutil

    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)

"""RAY_ADDRESS checked before Ray is asked to connect: a dashboard URL, an address where nothing
answers, or a loopback-only cluster each get a clear answer in seconds instead of Ray's minutes of
retries and its traceback."""

from __future__ import annotations

import os
import sys

from jobs.errors import ClusterAddressError


def cluster_address(address: str, timeout: float = 5.0) -> str:
    """The GCS address to connect to, checked in a few seconds instead of Ray's minutes of retries.
    A dashboard URL is refused in one line. For a cluster on this machine's loopback address (as
    `raybatch cluster up` starts it), Ray must not swap 127.0.0.1 for the machine's network address,
    which the cluster does not listen on."""
    if address.startswith(("http://", "https://")):
        raise ClusterAddressError(
            f"RAY_ADDRESS={address} is a dashboard (Jobs API) address: `raybatch submit SPEC` sends the job "
            f"there; to run from this shell, set RAY_ADDRESS to the cluster's GCS address (host:port, "
            f"`raybatch cluster up` prints it as address:)")
    if address in ("auto", "local") or "://" in address:
        return address
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ClusterAddressError(f"RAY_ADDRESS={address}: expected the cluster's GCS address as host:port")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    try:
        _answers(host, int(port), timeout)
    except OSError as exc:
        # Ray puts this machine's network address in place of loopback: a head bound to it alone is fine.
        if not (loopback and _answers_on_node_ip(int(port), timeout)):
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise ClusterAddressError(
                f"RAY_ADDRESS={address}: no Ray cluster answers there ({reason}); start one "
                f"(`raybatch cluster up`) or unset RAY_ADDRESS to run on this machine") from None
        return address
    if loopback and not _answers_on_node_ip(int(port), timeout):
        # Only loopback answers (as `raybatch cluster up` binds it): keep Ray on it, through its own
        # switch (read from the environment when Ray is imported, so set on an imported module too).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
            constants.ENABLE_RAY_CLUSTER = False
    return address


def _answers(host: str, port: int, timeout: float) -> None:
    import socket

    socket.create_connection((host, port), timeout=timeout).close()


def _answers_on_node_ip(port: int, timeout: float) -> bool:
    """Whether the GCS also listens on the address Ray would put in place of loopback (this
    machine's own network address, never another host)."""
    from ray._private.services import get_node_ip_address

    node_ip = get_node_ip_address()
    if node_ip in ("127.0.0.1", "::1"):  # Ray already takes loopback as this node's address
        return False
    try:
        _answers(node_ip, port, timeout)
        return True
    except OSError:
        return False

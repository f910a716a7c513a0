"""`ray start` that leaves 127.0.0.1 as 127.0.0.1, for the local test cluster.

Ray rewrites a loopback --address / --node-ip-address to the host's routable IP unless multi-node
clusters are switched off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), and with them off a worker node
refuses to start. So this launcher keeps loopback addresses as given in this process and switches
the rewrite off for the node's children (raylet, agents, workers, job drivers) through that
variable: every process of the cluster then binds and connects to 127.0.0.1 only.
"""

import os

from ray._common.network_utils import is_localhost
from ray._private import services

_resolve = services.resolve_ip_for_localhost


def _keep_loopback(host: str) -> str:
    return "127.0.0.1" if is_localhost(host) else _resolve(host)


services.resolve_ip_for_localhost = _keep_loopback
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

if __name__ == "__main__":
    from ray.scripts.scripts import main

    main()

"""Cluster-side errors (no Ray import): the CLI prints them as one line with their exit code."""

from jobs.errors import RaybatchError


class ClusterError(RaybatchError):
    """The cluster cannot be reached, refuses us, or the request is malformed (exit 2)."""

    exit_code = 2


class JobNotFound(ClusterError):
    """No job with this id on the cluster."""

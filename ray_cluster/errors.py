"""Cluster-side errors (no Ray import, and no import of `jobs`: the arrow goes from the CLI to the
cluster code only). The CLI prints them as one line with their exit code."""


class ClusterError(Exception):
    """The cluster cannot be reached, refuses us, or the request is malformed (exit 2)."""

    exit_code = 2


class JobNotFound(ClusterError):
    """No job with this id on the cluster."""

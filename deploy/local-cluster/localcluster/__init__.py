"""A three-host Flock cluster on one machine: network namespaces as hosts, each with its
own dockerd and agent, a real etcd and two replicated managers on the machine itself.

`up.sh` / `down.sh` next to this package run `python -m localcluster up|down`.
"""


class ClusterError(RuntimeError):
    """Something up or down could not do; the message says what to do next."""


class UsageError(ClusterError):
    """A bad option (exit status 2)."""

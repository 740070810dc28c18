"""How many files a process may hold open, raised to what the system allows.

A manager holds a connection per node (its gRPC channel) and, for most nodes, another
(the call link); a hollow fleet three or four descriptors per agent. The soft limit many
shells and container runtimes start with (1024) would cut a manager off at a few hundred
nodes while the hard limit allows far more: Go programs (classic Swarm among them) raise
it at start for the same reason.
"""

from __future__ import annotations

import resource

# Descriptors kept free of call links for everything else: the gRPC channels, etcd, the
# Docker API's clients, logs.
RESERVE = 512


def raise_limit() -> int:
    """Lift the soft limit on open files to the hard one; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # as it was: the budget below follows what is in force
    return soft


def link_budget() -> int:
    """How many call links a manager may open: each is a descriptor on top of the node's
    gRPC channel, so half the limit, less a reserve, leaves one channel per node room
    to spare. Past it, nodes are called over gRPC (manager/cluster/call_stream.py)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(0, soft // 2 - RESERVE)

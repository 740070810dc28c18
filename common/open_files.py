"""How many files a process may hold open, raised to what the system allows.

A manager holds a connection per node: its call link, or its gRPC channel when the node
has no link (or the manager no room for one), both while a call only gRPC carries is
under way (manager/cluster/agent_client.py); a hollow fleet three or four descriptors
per agent. The soft limit many
shells and container runtimes start with (1024) would cut a manager off at a few hundred
nodes while the hard limit allows far more: Go programs (classic Swarm among them) raise
it at start for the same reason.
"""

from __future__ import annotations

import resource

# Descriptors kept free of call links for everything else: etcd, the Docker API's
# clients, logs; and a quarter of the limit on top for gRPC channels (nodes without a
# link, nodes connecting, Docker streams).
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
    """How many call links a manager may open. A node on its link holds no gRPC channel
    most of the time (its link takes the control calls too), so links may have the
    limit less the reserve and a quarter for the channels: at the common hard limit of
    20,000 that is 14,488 nodes, where it was 9,488 when each link came on top of a
    channel. Past it, nodes are called over gRPC (manager/cluster/call_stream.py)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(0, soft - soft // 4 - RESERVE)

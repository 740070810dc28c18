"""Classic Swarm's meaning of `-c N` / `--cpu-shares N`: N CPUs reserved on the node.

The engine knows nothing of reservations: it weighs containers by relative shares (1024
being one CPU's worth), and runc refuses fewer than 2. So, as classic Swarm does, N goes
to the engine as the part of the chosen node N CPUs are, and is read back from the
engine's shares the same way: a restarted manager, which only has the engines to ask,
then finds the same N. Pure arithmetic, the node's CPU count given by the caller.
"""

from __future__ import annotations

import math

SHARES_PER_CPU = 1024


def engine_shares(cpus: float, node_cpus: int) -> int:
    """The CpuShares that reserve `cpus` CPUs on a node of `node_cpus`: classic's
    `ceil(N * 1024 / node CPUs)` (cluster/engine.go, CreateContainer). Rounding up
    keeps the read-back exact (see reserved_cpus)."""
    return math.ceil(cpus * SHARES_PER_CPU / _count(node_cpus))


def reserved_cpus(shares: float, node_cpus: int) -> int:
    """The CPUs a container with `shares` CpuShares reserves on a node of `node_cpus`:
    classic's `CpuShares * node CPUs / 1024` in integers (cluster/engine.go,
    updateContainer), so `engine_shares(N)` reads back as N on any node of fewer than
    1024 CPUs."""
    return int(shares) * _count(node_cpus) // SHARES_PER_CPU


def _count(node_cpus: int) -> int:
    """A node that reports no CPUs (not read yet) counts as one, never a division by
    zero."""
    return max(int(node_cpus), 1)

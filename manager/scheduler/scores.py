"""Classic Swarm's arithmetic for one node, shared by every path that ranks nodes.

cpuScore = (usedCPUs + requested) * 100 / totalCPUs and memScore = (usedMemory +
requested) * 100 / totalMemory, each 100 when nothing of that resource is requested;
totals include the overcommit (total * (1 + overcommit)). A node where either score
exceeds 100 lacks resources. The weight is cpuScore + memScore, rounded so that equal
weights tie despite float noise: the fast path and the filter chain must agree on ties.
"""

from __future__ import annotations

LIMIT = 100 + 1e-9  # a score of exactly 100 fits; the slack absorbs float rounding
NOTHING_REQUESTED = 200.0  # the weight of every node when neither CPU nor memory is asked


class Request:
    """The resources one container asks for, and how a node's usage scores against them."""

    __slots__ = ("cpus", "memory", "factor", "order")

    def __init__(self, cpus: float, memory: int, overcommit: float) -> None:
        self.cpus, self.memory, self.factor = cpus, memory, 1 + overcommit
        # Which usage figures decide the rank among nodes of one size (see buckets.py).
        self.order = "cm" if cpus and memory else "c" if cpus else "m" if memory else ""

    def cpu_score(self, total: float, used: float) -> float:
        return _score(used, self.cpus, total * self.factor) if self.cpus else 100.0

    def memory_score(self, total: int, used: int) -> float:
        return _score(used, self.memory, total * self.factor) if self.memory else 100.0

    def weight(
        self, total_cpus: float, total_memory: int, used_cpus: float, used_memory: int
    ) -> float | None:
        """cpuScore + memScore, or None when the node lacks either resource. (The scores'
        arithmetic inlined: this runs for every bucket a decision looks at.)"""
        cpu = memory = 100.0
        if self.cpus:
            total = total_cpus * self.factor
            if total <= 0:
                return None
            cpu = (used_cpus + self.cpus) * 100 / total
            if cpu > LIMIT:
                return None
        if self.memory:
            total = total_memory * self.factor
            if total <= 0:
                return None
            memory = (used_memory + self.memory) * 100 / total
            if memory > LIMIT:
                return None
        return round(cpu + memory, 9)

    def headroom(self, total_cpus: float, total_memory: int) -> tuple[float, float]:
        """The most CPUs and memory a node of this size may already have reserved and
        still fit the request (a bound for skipping nodes that cannot fit; the exact
        test is `weight`)."""
        cpus = total_cpus * self.factor * LIMIT / 100 - self.cpus
        memory = total_memory * self.factor * LIMIT / 100 - self.memory
        return cpus, memory


def _score(used: float, requested: float, total: float) -> float:
    if total <= 0:
        return float("inf")
    return (used + requested) * 100 / total

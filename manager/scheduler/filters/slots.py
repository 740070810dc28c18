"""containerslots: a node labelled `containerslots=N` takes at most N containers.

Containers of every state count, pending creates too. A label that is not an integer
is ignored, as in classic Swarm.
"""

from __future__ import annotations

from manager.cluster.state import ClusterState
from manager.scheduler.filters.base import Filter, FilterResult, NodeIds, Removal
from manager.scheduler.spec import ContainerSpec

LABEL = "containerslots"
CONDITION = "available container slots"


class SlotsFilter(Filter):
    name = "containerslots"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        by_count = state.nodes_by_container_count()
        removed: set[str] = set()
        for value, labelled in state.label_values(LABEL).items():
            try:
                slots = int(value)
            except ValueError:
                continue
            for count, ids in by_count.items():
                if count >= slots:
                    removed.update(nid for nid in labelled & ids if nid in candidates)
        if not removed:
            return FilterResult(candidates)
        return FilterResult(candidates - removed, [Removal(CONDITION, removed)])

"""containerslots: a node labelled `containerslots=N` takes at most N containers.

Containers of every state count, pending creates too. A label that is not an integer
is ignored, as in classic Swarm. ClusterState keeps the set of full nodes as counts
and labels change.
"""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import Filter, FilterResult, NodeIds, Removal
from flock.manager.scheduler.query import Query
from flock.manager.scheduler.spec import ContainerSpec

CONDITION = "available container slots"


class SlotsFilter(Filter):
    name = "containerslots"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        removed = {nid for nid in state.slot_full_node_ids() if nid in candidates}
        if not removed:
            return FilterResult(candidates)
        return FilterResult(candidates - removed, [Removal(CONDITION, removed)])

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        query.add(state.slot_full_node_ids(), False)

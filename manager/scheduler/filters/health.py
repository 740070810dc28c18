"""health: only healthy nodes are candidates (pending and unhealthy ones are not)."""

from __future__ import annotations

from manager.cluster.state import ClusterState
from manager.scheduler.filters.base import Filter, FilterResult, NodeIds, Removal
from manager.scheduler.query import Query
from manager.scheduler.spec import ContainerSpec

CONDITION = "healthy node"


class HealthFilter(Filter):
    name = "health"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        unhealthy = state.unhealthy_node_ids()
        removed = {nid for nid in unhealthy if nid in candidates}
        if not removed:
            return FilterResult(candidates)
        if len(candidates) == len(state.node_map()):
            survivors: NodeIds = state.healthy_node_ids()  # every node was a candidate
        else:
            survivors = candidates - removed
        return FilterResult(survivors, [Removal(CONDITION, removed)])

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        query.add(state.healthy_node_ids(), True)

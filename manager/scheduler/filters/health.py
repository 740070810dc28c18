"""health: only healthy nodes are candidates (pending, unhealthy and disconnected ones
are not), and only those not drained (`flock drain`)."""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.drain import CONDITION as DRAINED
from flock.manager.scheduler.drain import drained
from flock.manager.scheduler.filters.base import Filter, FilterResult, NodeIds, Removal
from flock.manager.scheduler.query import Query
from flock.manager.scheduler.spec import ContainerSpec

CONDITION = "healthy node"


class HealthFilter(Filter):
    name = "health"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        result = self._healthy(state, candidates)
        ids = drained(state).ids
        removed = {nid for nid in ids if nid in result.survivors}
        if removed:
            result = FilterResult(result.survivors - removed,
                                  [*result.removals, Removal(DRAINED, removed)])
        return result

    def _healthy(self, state: ClusterState, candidates: NodeIds) -> FilterResult:
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
        ids = drained(state).ids
        if ids:
            query.add(ids, False)

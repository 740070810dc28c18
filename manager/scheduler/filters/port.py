"""port: a host port the container binds must be free on the node, per protocol.

Ports in use come from ClusterState's port -> nodes index, which counts every container
(stopped ones too, like classic Swarm), pending creates, and the exposed ports of
`--net=host` containers.
"""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import Filter, FilterResult, NodeIds, Removal, keep
from flock.manager.scheduler.query import Query
from flock.manager.scheduler.spec import ContainerSpec


class PortFilter(Filter):
    name = "port"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        result = FilterResult(candidates)
        host_mode = spec.network_mode == "host"
        for port, proto in spec.ports:
            if not result.survivors:
                break
            survivors = keep(result.survivors, state.nodes_using_port(port, proto), False)
            if survivors is not result.survivors:
                removed = result.survivors - survivors
                result.removals.append(Removal(condition(port, proto, host_mode), removed))
                result.survivors = survivors
        return result

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        for port, proto in spec.ports:
            query.add(state.nodes_using_port(port, proto), False)


def condition(port: int, proto: str, host_mode: bool) -> str:
    """Classic Swarm's texts: `port 80 (Bridge mode)`, `port 80/tcp (Host mode)`."""
    if host_mode:
        return f"port {port}/{proto} (Host mode)"
    return f"port {port} (Bridge mode)"

"""dependency: `--link`, `--volumes-from` and `--net=container:x` pin the container to
the node of what it depends on; all dependencies must be on one node."""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import NONE, Filter, FilterResult, NodeIds, Removal
from flock.manager.scheduler.query import Query
from flock.manager.scheduler.spec import ContainerSpec


class DependencyFilter(Filter):
    name = "dependency"

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        result = FilterResult(candidates)
        pinned: dict[str, str] = {}  # dependency ref -> its node ID, those met so far
        for ref in spec.dependencies:
            node_id = state.container_node(ref)
            before = result.survivors
            survivors = {node_id} if node_id is not None and node_id in before else set()
            if len(survivors) != len(before):
                detail = _why(state, ref, node_id, pinned, before)
                flag = spec.dependency_flags.get(ref, ref)
                result.removals.append(Removal(flag, before - survivors, detail))
                result.survivors = survivors
            if node_id is not None:
                pinned.setdefault(ref, node_id)
            if not result.survivors:
                break
        return result

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        for ref in spec.dependencies:
            node_id = state.container_node(ref)
            query.add({node_id} if node_id is not None else NONE, True)


def _why(
    state: ClusterState, ref: str, node_id: str | None, pinned: dict[str, str], before: NodeIds
) -> str:
    if node_id is None:
        return f"no such container: {ref}"
    others = {other: nid for other, nid in pinned.items() if nid != node_id}
    if others:
        where = ", ".join(f"{dep} on {_name(state, nid)}" for dep, nid in others.items())
        return f"dependencies are on different nodes: {ref} on {_name(state, node_id)}, {where}"
    if node_id not in before:
        return f"{ref} is on {_name(state, node_id)}, which is not a candidate"
    return ""


def _name(state: ClusterState, node_id: str) -> str:
    node = state.node(node_id)
    return node.name if node is not None else node_id

"""Drained nodes: the IDs the health filter excludes.

The node's agent keeps the operator's word (UpdateNode, availability "drain") and
reports it in every refresh, so a drain outlives manager restarts and failovers; this
listener turns the reported availability into a set the filters can test cheaply.
`set_drained` also changes the set directly, for the moment between the drain and the
agent's next report.
"""

from __future__ import annotations

from flock.manager.cluster.model import Node
from flock.manager.cluster.state import ClusterState, NodeUsage

KEY = "drained"
DRAIN = "drain"
ACTIVE = "active"
CONDITION = "active node (not drained)"


class Drained:
    """The IDs of the drained nodes of one state."""

    def __init__(self, state: ClusterState) -> None:
        self.ids: set[str] = {n.id for n in state.nodes() if n.availability == DRAIN}

    # A node that leaves keeps its drain: its agent still holds it when it comes back.
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        if node is None:
            return
        if node.availability == DRAIN:
            self.ids.add(node_id)
        else:
            self.ids.discard(node_id)

    def container_changed(self, container_id: str, name: str, node_id: str, added: bool) -> None:
        return None

    def container_rewritten(self, container_id: str, node_id: str) -> None:
        return None


def drained(state: ClusterState) -> Drained:
    return state.attach(KEY, Drained)


def set_drained(state: ClusterState, node_id: str, value: bool) -> bool:
    """Drain (True) or activate (False) a node; whether anything changed."""
    ids = drained(state).ids
    node = state.node(node_id)
    if node is not None:
        node.availability = DRAIN if value else ACTIVE
    changed = (node_id in ids) != value
    if value:
        ids.add(node_id)
    else:
        ids.discard(node_id)
    if changed:
        state.generation += 1
    return changed

"""Drained nodes: operator intent kept beside the node records, not in them.

A node's record is rebuilt from its agent on every refresh, so a flag on it would be
lost; the drained IDs live in a listener attached to the state instead and outlast
refreshes (and a node leaving and coming back). The health filter excludes them.
"""

from __future__ import annotations

from manager.cluster.model import Node
from manager.cluster.state import ClusterState, NodeUsage

KEY = "drained"
CONDITION = "active node (not drained)"


class Drained:
    """The IDs of the drained nodes of one state."""

    def __init__(self, state: ClusterState) -> None:
        self.ids: set[str] = set()

    # ClusterState tells every attached index of changes; a drain is the operator's
    # word and lasts until Activate, whatever happens to the node's record, so these
    # notifications change nothing here.
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        return None

    def container_changed(self, container_id: str, name: str, node_id: str, added: bool) -> None:
        return None


def drained(state: ClusterState) -> Drained:
    return state.attach(KEY, Drained)


def set_drained(state: ClusterState, node_id: str, value: bool) -> bool:
    """Drain (True) or activate (False) a node; whether anything changed."""
    ids = drained(state).ids
    changed = (node_id in ids) != value
    if value:
        ids.add(node_id)
    else:
        ids.discard(node_id)
    if changed:
        state.generation += 1
    return changed

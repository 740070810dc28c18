"""Which agent client talks to which node, and the one answer when none can.

Every front (the Docker API, the ClusterService, placement) needs a node's agent client,
and each used to check for it and word its absence on its own: five texts for one
fact. Here the watcher registers a client when a node is adopted and drops it when the
node goes, and `require` is the one check: a node with no client, or one the watcher
has not reached (Pending) or has lost (Unhealthy), is refused at once with
NodeNotConnected, whose text names the node, says why and what to do. A call would
otherwise wait for an agent that does not answer (classic Swarm refuses calls on an
unhealthy engine the same way, api/utils.go getContainerFromVars).
"""

from __future__ import annotations

from flock.manager.cluster.agent_client import AgentClient, AgentUnavailable
from flock.manager.cluster.model import PENDING, UNHEALTHY, Node

# What to do about an agent that cannot be reached, said after every such error.
AGENT_HINT = "Check that the agent runs on that machine (flock join) or remove it from " \
    "discovery."
NOT_ANSWERING = frozenset({PENDING, UNHEALTHY})


class NodeNotConnected(AgentUnavailable):
    """The manager has no working link to a node's agent. The Docker API answers it
    with a 503, the ClusterService with UNAVAILABLE, both with this text."""

    def __init__(self, node: Node) -> None:
        why = node.error or ("not reached yet" if node.health == PENDING
                             else "the manager has no link to its agent")
        super().__init__(f"node {node.name} ({node.addr}) is not connected: {why}. "
                         f"{AGENT_HINT} Retry once the node is healthy again.")
        self.node = node


class Clients:
    """node ID -> the AgentClient of its agent; written by the NodeWatcher only."""

    def __init__(self) -> None:
        self._by_node: dict[str, AgentClient] = {}

    def add(self, node_id: str, client: AgentClient) -> None:
        self._by_node[node_id] = client

    def remove(self, node_id: str) -> None:
        self._by_node.pop(node_id, None)

    def get(self, node_id: str) -> AgentClient | None:
        """The node's client whatever its health: for the watcher's own reads, which
        must go on while a node fails, to notice it is back."""
        return self._by_node.get(node_id)

    def require(self, node: Node) -> AgentClient:
        """The client for a call made on a user's behalf; NodeNotConnected when the
        node has none, or its agent has not answered (Pending) or stopped (Unhealthy)."""
        client = self._by_node.get(node.id)
        if client is None or node.health in NOT_ANSWERING:
            raise NodeNotConnected(node)
        return client

"""The manager's narrow doors: one check and one text for a node that cannot be asked
(cluster/clients.py), and one writer of container records (cluster/container_records.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flock.manager.cluster.agent_client import AgentClient, AgentUnavailable
from flock.manager.cluster.clients import Clients, NodeNotConnected
from flock.manager.cluster.model import DISCONNECTED, HEALTHY, PENDING, UNHEALTHY, Node

MANAGER = Path(__file__).resolve().parents[2] / "manager"
HINT = ("Check that the agent runs on that machine (flock join) or remove it from "
        "discovery. Retry once the node is healthy again.")


def node(health: str, error: str = "") -> Node:
    return Node(id="n1", name="node-1", addr="10.0.0.5:4000", health=health, error=error)


def test_a_node_that_answers_gets_its_client():
    clients, client = Clients(), AgentClient("10.0.0.5:4000")
    clients.add("n1", client)
    assert clients.require(node(HEALTHY)) is client
    # Gone from discovery but still answering: calls still reach it (classic
    # disconnects such an engine; Flock keeps it until its containers moved).
    assert clients.require(node(DISCONNECTED)) is client


@pytest.mark.parametrize("health, error, why", [
    (UNHEALTHY, "Cannot reach agent 10.0.0.5:4000: connection refused",
     "Cannot reach agent 10.0.0.5:4000: connection refused"),
    (PENDING, "", "not reached yet"),
])
def test_a_node_that_does_not_answer_is_refused_in_one_text(health, error, why):
    clients = Clients()
    clients.add("n1", AgentClient("10.0.0.5:4000"))
    with pytest.raises(NodeNotConnected) as caught:
        clients.require(node(health, error))
    assert str(caught.value) == f"node node-1 (10.0.0.5:4000) is not connected: {why}. {HINT}"
    assert isinstance(caught.value, AgentUnavailable)  # callers that catch it still do


def test_a_node_without_a_client_is_refused_too():
    clients = Clients()
    clients.add("n1", AgentClient("10.0.0.5:4000"))
    clients.remove("n1")
    assert clients.get("n1") is None
    with pytest.raises(NodeNotConnected, match=r"^node node-1 \(10.0.0.5:4000\) is not "
                                               r"connected: the manager has no link to its "
                                               r"agent\. Check"):
        clients.require(node(HEALTHY))


def _writes(path: Path) -> list[int]:
    """Lines of `path` that call ClusterState's container writers."""
    tree = ast.parse(path.read_text(), str(path))
    return [call.lineno for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr in ("upsert_container", "remove_container")]


def test_records_is_the_only_writer_of_container_records():
    """Every front writes records through Records, so the read-back and freshness
    protocol (freshness.py) sees every write; a direct write would skip it."""
    writers = {str(path.relative_to(MANAGER)): lines for path in sorted(MANAGER.rglob("*.py"))
               if (lines := _writes(path)) and path.name != "state.py"}
    assert set(writers) == {"cluster/container_records.py"}, writers

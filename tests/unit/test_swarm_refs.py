"""Classic Swarm's references as pure rules: the Swarm ID in `resolve` (classic
cluster/container.go Get), the whitelists label (scheduler/filter/whitelist.go) and
`events?until` without replay (api/handlers.go getEvents)."""

from __future__ import annotations

import urllib.parse

import pytest

from flock.manager.api.docker.events import classic_until
from flock.manager.api.docker.ps import _is_task_matches
from flock.manager.cluster.labels import SWARM_ID_LABEL
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.state import Ambiguous, ClusterState, NotFound
from flock.manager.scheduler.rules import RuleError
from flock.manager.scheduler.whitelist import NotWhitelisted, parse_whitelists, whitelisted

SID = "5" * 12 + "a" * 52


def state_with(*containers: Container) -> ClusterState:
    state = ClusterState()
    for node in ("n1", "n2"):
        state.upsert_node(Node(id=node, name=node, addr=node))
    for container in containers:
        state.upsert_container(container)
    return state


def test_resolve_by_swarm_id_full_short_and_prefix():
    web = Container(id="f" * 64, name="web", node_id="n1", labels={SWARM_ID_LABEL: SID})
    state = state_with(web, Container(id="e" * 64, name="db", node_id="n2"))
    for ref in (SID, SID[:12], SID[:3], "/" + SID):
        assert state.resolve(ref) is web
    with pytest.raises(NotFound):
        state.resolve("5" * 12 + "b")


def test_a_rescheduled_pair_resolves_to_the_newer_copy():
    old = Container(id="1" * 64, name="web", node_id="n1", created=100.0,
                    labels={SWARM_ID_LABEL: SID})
    new = Container(id="2" * 64, name="web", node_id="n2", created=200.0,
                    labels={SWARM_ID_LABEL: SID})
    assert state_with(old, new).resolve(SID) is new


def test_a_prefix_of_two_containers_ids_is_ambiguous():
    one = Container(id="ab" + "0" * 62, name="x", node_id="n1")
    two = Container(id="cd" + "0" * 62, name="y", node_id="n1", labels={SWARM_ID_LABEL: "ab1"})
    with pytest.raises(Ambiguous):
        state_with(one, two).resolve("ab")


def test_is_task_is_the_presence_of_the_task_label():
    task = {"com.docker.swarm.task": ""}
    assert _is_task_matches(["true"], task) and not _is_task_matches(["true"], {})
    assert _is_task_matches(["false"], {}) and not _is_task_matches(["false"], task)


NODES = [Node(id=n, name=n, addr=n) for n in ("a", "b", "c")]


def label(*rules: str) -> dict[str, str]:
    return {"com.docker.swarm.whitelists": str(list(rules)).replace("'", '"')}


def test_whitelists_keep_the_named_nodes_and_intersect():
    assert parse_whitelists({"other": "x"}) is None
    assert [n.name for n in whitelisted(NODES, parse_whitelists(label("node==a|c")))] == [
        "a", "c"]
    rules = parse_whitelists(label("node==a|b|c", "node==b|c|z"))
    assert [n.name for n in whitelisted(NODES, rules)] == ["b", "c"]
    assert [n.name for n in whitelisted(NODES, parse_whitelists(label("node==~z")))] == [
        "a", "b", "c"]  # a soft whitelist naming no node is dropped
    with pytest.raises(NotWhitelisted, match="satisfies the whitelist node==z$"):
        whitelisted(NODES, parse_whitelists(label("node==z")))


@pytest.mark.parametrize("labels", [
    {"com.docker.swarm.whitelists": "node==a"}, {"com.docker.swarm.whitelists": 3},
    label("node!=a"), label("==a")])
def test_bad_whitelists_are_refused(labels):
    with pytest.raises(RuleError):
        parse_whitelists(labels)


def test_until_alone_asks_the_nodes_from_now_on():
    query, over = classic_until("until=200.5&filters=%7B%7D", 100.25)
    assert not over
    assert dict(urllib.parse.parse_qsl(query)) == {
        "until": "200.5", "filters": "{}", "since": "100.250000000"}
    assert classic_until("until=50", 100.0) == ("until=50", True)
    assert classic_until("since=1&until=50", 100.0) == ("since=1&until=50", False)
    assert classic_until("until=soon", 100.0) == ("until=soon", False)
    assert classic_until("", 100.0) == ("", False)

"""ClusterState: the existing lookups and reservations, and the scheduler's indexes
kept incrementally (checked against a from-scratch recomputation)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from flock.manager.cluster.model import HEALTHY, PENDING, UNHEALTHY, Container, Node
from flock.manager.cluster.state import Ambiguous, ClusterState, NotFound, image_aliases


def node(nid: str, health: str = HEALTHY, **kw) -> Node:
    return Node(nid, kw.pop("name", f"name-{nid}"), f"{nid}:4001", health=health, **kw)


def ctr(cid: str, nid: str, **kw) -> Container:
    return Container(cid, kw.pop("name", f"c-{cid}"), nid, **kw)


def test_resolve_by_id_name_prefix_and_node_name():
    state = ClusterState()
    state.upsert_node(node("n1", name="alpha"))
    state.upsert_container(ctr("abc123", "n1", name="web"))
    state.upsert_container(ctr("abd456", "n1", name="db"))
    assert state.resolve("abc123").name == "web"
    assert state.resolve("/web").id == "abc123"
    assert state.resolve("alpha/db").id == "abd456"
    assert state.resolve("abc").id == "abc123"
    with pytest.raises(Ambiguous):
        state.resolve("ab")
    with pytest.raises(NotFound):
        state.resolve("beta/db")
    with pytest.raises(NotFound):
        state.resolve("zzz")


def test_find_node_by_id_name_or_address():
    state = ClusterState()
    state.upsert_node(node("n1", name="alpha"))
    assert state.find_node("n1").name == "alpha"
    assert state.find_node("alpha").id == "n1"
    assert state.find_node("n1:4001").id == "n1"
    with pytest.raises(NotFound, match="No such node: nope"):
        state.find_node("nope")


def test_usage_counts_every_container_and_pending_reservations():
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_container(
        ctr("a", "n1", reserved_cpus=1, reserved_memory=100, state="exited", ports=[(80, "tcp")])
    )
    token = state.reserve("n1", "new", 0.5, 50, [(81, "udp")])
    usage = state.usage("n1")
    assert (usage.cpus, usage.memory, usage.containers) == (1.5, 150, 2)
    assert usage.ports == {(80, "tcp"): 1, (81, "udp"): 1}
    assert state.name_taken("new") and state.name_taken("c-a")
    assert state.container_node("new") == "n1"
    state.release(token)
    assert (usage.cpus, usage.memory, usage.containers) == (1, 100, 1)
    assert not state.name_taken("new")
    assert state.container_node("new") is None
    state.release(token)  # twice: no-op
    assert usage.containers == 1


def test_port_index_follows_containers_and_reservations():
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_node(node("n2"))
    state.upsert_container(ctr("a", "n1", ports=[(80, "tcp")]))
    token = state.reserve("n2", "", 0, 0, [(80, "tcp")])
    assert state.nodes_using_port(80) == {"n1", "n2"}
    assert state.nodes_using_port(80, "udp") == set()
    state.upsert_container(ctr("b", "n1", ports=[(80, "tcp")]))
    state.remove_container("a")
    assert state.nodes_using_port(80) == {"n1", "n2"}  # b still holds it on n1
    state.remove_container("b")
    state.release(token)
    assert state.nodes_using_port(80) == set()


def test_label_index_follows_upserts_even_when_mutated_in_place():
    state = ClusterState()
    n1 = node("n1", labels={"region": "eu", "size": "xl"})
    state.upsert_node(n1)
    state.upsert_node(node("n2", labels={"region": "eu"}))
    assert state.label_values("region") == {"eu": {"n1", "n2"}}
    n1.labels = {"region": "us"}  # the same object, changed, upserted again
    state.upsert_node(n1)
    assert state.label_values("region") == {"eu": {"n2"}, "us": {"n1"}}
    assert state.label_values("size") == {}
    state.remove_node("n2")
    assert state.label_values("region") == {"us": {"n1"}}


def test_health_indexes():
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_node(node("n2", health=PENDING))
    assert state.healthy_node_ids() == {"n1"} and state.unhealthy_node_ids() == {"n2"}
    state.set_health("n1", UNHEALTHY, "timeout")
    state.set_health("n2", HEALTHY)
    assert state.healthy_node_ids() == {"n2"} and state.unhealthy_node_ids() == {"n1"}
    assert state.node("n1").error == "timeout"
    state.remove_node("n1")
    assert state.unhealthy_node_ids() == set()


def test_image_aliases():
    assert image_aliases("redis:7") == ("redis:7", "redis")
    assert image_aliases("redis") == ("redis", "redis:latest")
    assert image_aliases("localhost:5000/app") == (
        "localhost:5000/app",
        "localhost:5000/app:latest",
    )
    assert image_aliases("localhost:5000/app:1") == ("localhost:5000/app:1", "localhost:5000/app")
    assert image_aliases("app@sha256:ff") == ("app@sha256:ff", "app")
    digest = "sha256:" + "ab" * 32
    assert image_aliases(digest) == (digest, "ab" * 32, "ab" * 6)
    assert image_aliases("") == ()


def test_image_index_from_node_images_and_containers():
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_node(node("n2"))
    state.set_node_images("n1", ["redis:7", "busybox:latest"])
    state.upsert_container(ctr("a", "n2", image="redis:7"))
    assert state.nodes_with_image("redis") == {"n1", "n2"}
    assert state.nodes_with_image("busybox") == {"n1"}
    assert state.node_images("n1") >= {"redis:7", "redis"}
    state.set_node_images("n1", ["busybox:latest"])
    assert state.nodes_with_image("redis") == {"n2"}
    state.remove_container("a")
    assert state.nodes_with_image("redis") == set()
    state.remove_node("n1")
    assert state.image_index() == {}


def test_container_label_index():
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_container(ctr("a", "n1", labels={"app": "web"}))
    state.upsert_container(ctr("b", "n1", labels={"app": "web"}))
    assert state.container_label_values("app") == {"web": {"n1": 2}}
    state.upsert_container(ctr("a", "n1", labels={"app": "db"}))  # relabelled
    assert state.container_label_values("app") == {"web": {"n1": 1}, "db": {"n1": 1}}
    state.remove_container("a")
    state.remove_container("b")
    assert state.container_label_values("app") == {}


def test_remove_node_drops_everything_it_held():
    state = ClusterState()
    state.upsert_node(node("n1", cpus=2, memory=10))
    state.upsert_container(ctr("a", "n1", ports=[(80, "tcp")], reserved_cpus=1))
    state.reserve("n1", "pending", 1, 1, [(81, "tcp")])
    dropped = state.remove_node("n1")
    assert [c.id for c in dropped] == ["a"]
    assert state.nodes_using_port(80) == set() and state.nodes_using_port(81) == set()
    assert state.nodes_by_container_count() == {}
    assert state.nodes_by_resource_class() == {}
    assert not state.name_taken("pending")
    assert state.usage_map().get("n1") is None


def test_in_place_mutation_of_a_container_is_accounted_right():
    state = ClusterState()
    state.upsert_node(node("n1"))
    c = ctr("a", "n1", reserved_memory=100, ports=[(80, "tcp")])
    state.upsert_container(c)
    c.reserved_memory = 300
    c.ports = [(81, "tcp")]
    state.upsert_container(c)
    usage = state.usage("n1")
    assert usage.memory == 300 and usage.ports == {(81, "tcp"): 1}
    assert state.nodes_using_port(80) == set()


class _Heard:
    """A listener that writes down what the state tells it about containers."""

    def __init__(self, state: ClusterState) -> None:
        self.said: list[tuple] = []

    def node_changed(self, node_id, node, usage) -> None:
        self.said.append(("node", node_id))

    def container_changed(self, container_id, name, node_id, added) -> None:
        self.said.append(("changed", container_id, added))

    def container_rewritten(self, container_id, node_id) -> None:
        self.said.append(("rewritten", container_id))


def test_a_record_that_accounts_the_same_is_a_rewrite_not_a_change():
    """A start's read-back changes the state and list entry of a record, not what it
    reserves: the indexes stay, and listeners hear a rewrite (ps and info re-render
    the record), not a removal and an addition (which pattern counts would double)."""
    state = ClusterState()
    state.upsert_node(node("n1"))
    created = ctr("a", "n1", image="busybox", image_id="sha256:" + "1" * 64,
                  reserved_memory=100, ports=[(80, "tcp")], labels={"k": "v"})
    state.upsert_container(created)
    heard = state.attach("heard", _Heard)
    usage_before = (state.usage("n1").memory, dict(state.usage("n1").ports))
    generation = state.generation
    running = ctr("a", "n1", image="busybox", image_id="sha256:" + "1" * 64,
                  reserved_memory=100, ports=[(80, "tcp")], labels={"k": "v"},
                  state="running", summary={"State": "running"})
    state.upsert_container(running)
    assert heard.said == [("rewritten", "a")]
    assert state.container("a") is running and state.generation == generation + 1
    assert (state.usage("n1").memory, dict(state.usage("n1").ports)) == usage_before
    assert state.resolve("c-a") is running
    # Any accounted field that differs takes the whole way: out, then in again.
    for changed in ({"reserved_memory": 200}, {"ports": [(81, "tcp")]},
                    {"labels": {"k": "w"}}, {"image_id": "sha256:" + "2" * 64},
                    {"name": "other"}):
        heard.said.clear()
        fields = {"image": "busybox", "image_id": "sha256:" + "1" * 64,
                  "reserved_memory": 100, "ports": [(80, "tcp")], "labels": {"k": "v"},
                  **changed}
        state.upsert_container(ctr("a", "n1", **fields))
        said = [s for s in heard.said if s[0] != "node"]
        assert said == [("changed", "a", False), ("changed", "a", True)], changed
        state.upsert_container(ctr("a", "n1", image="busybox",
                                   image_id="sha256:" + "1" * 64, reserved_memory=100,
                                   ports=[(80, "tcp")], labels={"k": "v"}))
    assert (state.usage("n1").memory, dict(state.usage("n1").ports)) == usage_before
    assert {v: dict(n) for v, n in state.container_label_values("k").items()} == {"v": {"n1": 1}}


def _expected_buckets(state: ClusterState):
    counts, classes = {}, {}
    for n in state.nodes():
        used = state.usage_map().get(n.id)
        count = used.containers if used else 0
        counts.setdefault(count, set()).add(n.id)
        key = (n.cpus, n.memory, round(used.cpus, 9) if used else 0.0, used.memory if used else 0)
        classes.setdefault(key, set()).add(n.id)
    return counts, classes


def test_count_and_resource_buckets_match_a_recomputation_after_random_changes():
    rng = random.Random(3)
    state = ClusterState()
    tokens = []
    for step in range(600):
        op = rng.random()
        nid = f"n{rng.randrange(8)}"
        if op < 0.15:
            state.upsert_node(node(nid, cpus=rng.choice([1, 2]), memory=rng.choice([10, 20])))
        elif op < 0.2:
            state.remove_node(nid)
        elif op < 0.55:
            state.upsert_container(
                ctr(
                    f"c{rng.randrange(30)}",
                    nid,
                    reserved_cpus=rng.choice([0, 0.5]),
                    reserved_memory=rng.choice([0, 3]),
                    ports=[(rng.randrange(3), "tcp")],
                )
            )
        elif op < 0.62:  # the same record in another state: a rewrite, when it exists
            known = state.container(f"c{rng.randrange(30)}")
            if known is not None:
                state.upsert_container(replace(known, state=rng.choice(["running", "exited"]),
                                               ports=list(known.ports)))
        elif op < 0.7:
            state.remove_container(f"c{rng.randrange(30)}")
        elif op < 0.85:
            tokens.append(state.reserve(nid, "", 0.5, 1, [(rng.randrange(3), "tcp")]))
        elif tokens:
            state.release(tokens.pop(rng.randrange(len(tokens))))
        counts, classes = _expected_buckets(state)
        assert dict(state.nodes_by_container_count()) == counts, step
        assert {tuple(k): v for k, v in state.nodes_by_resource_class().items()} == classes
        for port in range(3):
            users = {nid for nid, u in state.usage_map().items() if u.ports.get((port, "tcp"))}
            assert state.nodes_using_port(port) == users

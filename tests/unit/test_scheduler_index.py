"""The scheduler's incremental views of a ClusterState (index.py, buckets.py) and the
state hooks they rely on: after any sequence of changes they equal a recomputation."""

from __future__ import annotations

import contextlib
import random

from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState, NodeNameTaken
from flock.manager.scheduler import Scheduler, parse_rule, spec_from_create
from flock.manager.scheduler.buckets import IdSet, key_of
from flock.manager.scheduler.index import index_for

GIB = 1024**3


def test_id_set_adds_discards_and_stays_indexable():
    ids = IdSet()
    for x in "abcde":
        ids.add(x)
    ids.add("a")
    ids.discard("b")
    ids.discard("zz")
    assert sorted(ids) == ["a", "c", "d", "e"] and len(ids) == 4 and "b" not in ids
    assert sorted(ids.items) == sorted(ids)
    ids.discard("e")  # the last one
    assert sorted(ids.items) == ["a", "c", "d"]


def _random_changes(state: ClusterState, rng: random.Random, steps: int) -> None:
    tokens: list[int] = []
    for step in range(steps):
        action = rng.randrange(7)
        node_id = f"n{rng.randrange(6)}"
        if action == 0:
            labels = {"containerslots": str(rng.randrange(4))} if rng.random() < 0.5 else {}
            # A name another node has is refused (and changes nothing): node names are unique.
            with contextlib.suppress(NodeNameTaken):
                state.upsert_node(Node(node_id, f"name-{rng.randrange(8)}", "x:1",
                                       cpus=rng.choice([0, 2, 4]), memory=rng.choice([0, GIB]),
                                       labels=labels, health=rng.choice([HEALTHY, UNHEALTHY])))
        elif action == 1:
            state.remove_node(node_id)
        elif action in (2, 3) and state.node(node_id):
            state.upsert_container(Container(
                f"c{rng.randrange(20)}", rng.choice(["web-1", "web-2", "db", "x"]) + str(step),
                node_id, reserved_cpus=rng.choice([0, 0.5]),
                reserved_memory=rng.choice([0, GIB // 4])))
        elif action == 4:
            state.remove_container(f"c{rng.randrange(20)}")
        elif action == 5 and state.node(node_id):
            tokens.append(state.reserve(node_id, "", rng.choice([0, 1]), 0))
        elif action == 6 and tokens:
            state.release(tokens.pop(rng.randrange(len(tokens))))


def test_rank_buckets_and_name_patterns_match_a_recomputation_after_random_changes():
    for seed in range(30):
        rng = random.Random(seed)
        state = ClusterState()
        index = index_for(state)  # attached to an empty state: everything arrives as changes
        web = parse_rule("container==web-*", "affinity")
        index.container_hits(web)
        _random_changes(state, rng, 150)
        usage = state.usage_map()
        expected = {n.id: key_of(n, usage.get(n.id)) for n in state.nodes()}
        assert index.buckets.key_of == expected, seed
        assert sorted(index.buckets.all) == sorted(expected)
        hits: dict[str, int] = {}
        for c in state.containers():
            if web.matches(c.name):
                hits[c.node_id] = hits.get(c.node_id, 0) + 1
        assert index.container_hits(web) == hits, seed
        full = {n.id for n in state.nodes()
                if n.labels.get("containerslots", "").isdigit()
                and state.usage(n.id).containers >= int(n.labels["containerslots"])}
        assert state.slot_full_node_ids() == full, seed


def test_attach_builds_once_and_hears_every_change():
    state = ClusterState()
    state.upsert_node(Node("a", "a", "x:1", cpus=2, memory=GIB, health=HEALTHY))
    first = index_for(state)
    assert index_for(state) is first
    assert first.buckets.key_of == {"a": (2, GIB, 0.0, 0, 0)}
    token = state.reserve("a", "p", 1, GIB // 2)
    assert first.buckets.key_of["a"] == (2, GIB, 1.0, GIB // 2, 1)
    state.release(token)
    state.remove_node("a")
    assert first.buckets.key_of == {}


def test_node_generation_moves_only_with_names_labels_and_membership():
    state = ClusterState()
    node = Node("a", "a", "x:1", labels={"zone": "1"}, health=HEALTHY)
    state.upsert_node(node)
    gen = state.node_generation
    state.upsert_node(node)  # a heartbeat refresh with nothing new
    state.set_health("a", UNHEALTHY)
    state.reserve("a", "", 1, 0)
    assert state.node_generation == gen
    node.labels["zone"] = "2"  # mutated in place, then upserted
    state.upsert_node(node)
    assert state.node_generation > gen
    gen = state.node_generation
    node.name = "renamed"
    state.upsert_node(node)
    assert state.node_generation > gen and state.node_by_name("a") is None
    assert state.node_by_name("renamed") is node


def test_label_glob_answers_follow_label_changes():
    state = ClusterState()
    for n, zone in enumerate(["eu-1", "eu-2", "us-1"]):
        state.upsert_node(Node(f"n{n}", f"n{n}", "x:1", labels={"zone": zone}, health=HEALTHY))
    scheduler = Scheduler(rng=random.Random(0))
    spec = spec_from_create({"Image": "x", "Env": ["constraint:zone==us-*"]})
    assert scheduler.place(state, spec).node.id == "n2"
    state.upsert_node(Node("n2", "n2", "x:1", labels={"zone": "eu-3"}, health=HEALTHY))
    state.upsert_node(Node("n0", "n0", "x:1", labels={"zone": "us-9"}, health=HEALTHY))
    assert scheduler.place(state, spec).node.id == "n0"


def test_container_glob_answers_follow_containers():
    state = ClusterState()
    for n in range(2):
        state.upsert_node(Node(f"n{n}", f"n{n}", "x:1", health=HEALTHY))
    state.upsert_container(Container("c1", "web-1", "n0"))
    scheduler = Scheduler(rng=random.Random(0))
    spec = spec_from_create({"Image": "x", "Env": ["affinity:container!=web-*"]})
    assert scheduler.place(state, spec).node.id == "n1"
    state.remove_container("c1")
    state.upsert_container(Container("c2", "web-2", "n1"))
    assert scheduler.place(state, spec).node.id == "n0"

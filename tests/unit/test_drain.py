"""Drained nodes take no new containers, in both the fast path and the filter chain."""

from __future__ import annotations

import pytest

from manager.cluster.model import HEALTHY, Node
from manager.cluster.state import ClusterState
from manager.scheduler import NoNodeAvailable, Scheduler, spec_from_create
from manager.scheduler.drain import CONDITION, drained, set_drained


def state_of(*names: str) -> ClusterState:
    state = ClusterState()
    for name in names:
        state.upsert_node(Node(name, name, f"{name}:1", cpus=4, memory=1 << 30, health=HEALTHY))
    return state


def test_a_drained_node_is_never_chosen_and_activate_restores_it():
    state = state_of("a", "b")
    scheduler = Scheduler("spread")
    spec = spec_from_create({"Image": "busybox"})
    assert set_drained(state, "a", True)
    assert not set_drained(state, "a", True)  # already drained: no change
    for i in range(6):
        decision = scheduler.place(state, spec)
        assert decision.node.id == "b"
        assert scheduler.place_by_chain(state, spec).node.id == "b"
        state.reserve("b", f"c{i}", 0, 0)
    explained = scheduler.explain(state, spec)
    assert [(r.condition, r.removed) for r in explained.removals] == [(CONDITION, {"a"})]
    assert set_drained(state, "a", False)
    assert scheduler.place(state, spec).node.id == "a"  # spread: the empty node again


def test_draining_every_node_says_so():
    state = state_of("a")
    set_drained(state, "a", True)
    with pytest.raises(NoNodeAvailable, match=r"\[active node \(not drained\)\] \(removed 1"):
        Scheduler().place(state, spec_from_create({"Image": "busybox"}))


def test_drain_outlives_a_refresh_of_the_node_record():
    state = state_of("a", "b")
    set_drained(state, "a", True)
    state.upsert_node(Node("a", "a", "a:1", cpus=8, memory=1 << 30, health=HEALTHY))
    assert drained(state).ids == {"a"}
    assert Scheduler().place(state, spec_from_create({"Image": "busybox"})).node.id == "b"

"""Drained nodes take no new containers, in both the fast path and the filter chain."""

from __future__ import annotations

import pytest

from flock.manager.cluster.model import HEALTHY, Node
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler import NoNodeAvailable, Scheduler, spec_from_create
from flock.manager.scheduler.drain import CONDITION, drained, set_drained


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


def test_drain_follows_what_the_agent_reports_in_each_refresh():
    """The agent keeps the drain (UpdateNode) and reports it; the record says so."""
    state = state_of("a", "b")
    set_drained(state, "a", True)
    state.upsert_node(Node("a", "a", "a:1", cpus=8, memory=1 << 30, health=HEALTHY,
                           availability="drain"))
    assert drained(state).ids == {"a"}
    assert Scheduler().place(state, spec_from_create({"Image": "busybox"})).node.id == "b"
    state.remove_node("a")  # gone for a while: the drain waits for its return
    assert drained(state).ids == {"a"}
    state.upsert_node(Node("a", "a", "a:1", cpus=8, memory=1 << 30, health=HEALTHY,
                           availability="active"))  # activated while the manager was away
    assert drained(state).ids == set()


def test_a_state_loaded_with_drained_nodes_knows_them_from_the_start():
    state = ClusterState()
    state.upsert_node(Node("a", "a", "a:1", cpus=1, memory=1, health=HEALTHY,
                           availability="drain"))
    assert drained(state).ids == {"a"}

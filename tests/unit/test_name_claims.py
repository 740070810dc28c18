"""Container and node names in ClusterState: the claim a create, rename or reschedule
takes (checked and taken in one step), its release, holding it across a caller's
cancellation, names two containers share anyway, and node names kept unique."""

from __future__ import annotations

import asyncio

import pytest

from flock.manager.cluster.holding import hold_until_done
from flock.manager.cluster.model import HEALTHY, Container, Node
from flock.manager.cluster.state import (
    Ambiguous,
    ClusterState,
    NameTaken,
    NodeNameTaken,
    NotFound,
)


def two_nodes() -> ClusterState:
    state = ClusterState()
    state.upsert_node(Node("A|1", "alpha", "a:1", cpus=4, memory=100, health=HEALTHY))
    state.upsert_node(Node("B|2", "beta", "b:2", cpus=4, memory=100, health=HEALTHY))
    return state


def test_a_second_reservation_of_a_name_is_refused_and_holds_nothing():
    state = two_nodes()
    first = state.reserve("A|1", "web", 1, 10, [(80, "tcp")])
    with pytest.raises(NameTaken) as taken:
        state.reserve("B|2", "web", 1, 10, [(80, "tcp")])
    assert taken.value.name == "web" and taken.value.holder == ""
    usage = state.usage("B|2")
    assert (usage.cpus, usage.memory, usage.containers, usage.ports) == (0, 0, 0, {})
    assert state.nodes_using_port(80) == {"A|1"}
    assert state.container_node("web") == "A|1"
    state.release(first)
    assert not state.name_taken("web")
    state.release(state.reserve("B|2", "web", 0, 0))  # free again


def test_a_name_held_by_a_container_is_refused_with_its_id():
    state = two_nodes()
    state.upsert_container(Container("c1", "web", "A|1"))
    for claim in (lambda: state.reserve("B|2", "web", 0, 0), lambda: state.claim_name("web")):
        with pytest.raises(NameTaken) as taken:
            claim()
        assert taken.value.holder == "c1"
    state.remove_container("c1")
    state.release(state.claim_name("web"))


def test_a_rename_claim_blocks_creates_until_released_and_a_stale_release_frees_nothing():
    state = two_nodes()
    rename = state.claim_name("db")
    assert state.name_taken("db") and state.usage("A|1").containers == 0
    with pytest.raises(NameTaken):
        state.reserve("A|1", "db", 0, 0)
    state.release(rename)
    create = state.reserve("A|1", "db", 0, 0)
    state.release(rename)  # the old token again: the create's claim stays
    assert state.name_taken("db")
    with pytest.raises(NameTaken):
        state.claim_name("db")
    state.release(create)
    assert not state.name_taken("db")


def test_a_reschedule_may_claim_the_name_its_old_copy_still_holds():
    state = two_nodes()
    state.upsert_container(Container("old", "job", "A|1"))
    token = state.reserve("B|2", "job", 0, 0, replacing="old")
    with pytest.raises(NameTaken):  # nobody else gets it meanwhile
        state.reserve("A|1", "job", 0, 0, replacing="other")
    state.upsert_container(Container("new", "job", "B|2"))
    state.release(token)
    state.remove_container("old")
    assert state.resolve("job").id == "new"


def test_the_record_landing_before_the_release_keeps_the_name_taken_throughout():
    state = two_nodes()
    token = state.reserve("A|1", "web", 0, 0)
    state.upsert_container(Container("c1", "web", "A|1"))
    state.release(token)
    with pytest.raises(NameTaken) as taken:
        state.reserve("B|2", "web", 0, 0)
    assert taken.value.holder == "c1"


def test_two_containers_sharing_a_name_are_each_found_by_node_and_survive_a_removal():
    """Made directly on two engines, behind the manager's back. Classic Swarm answers a
    name two containers share with neither (cluster/container.go, Containers.Get)."""
    state = two_nodes()
    state.upsert_container(Container("c-a", "x", "A|1"))
    state.upsert_container(Container("c-b", "x", "B|2"))
    with pytest.raises(Ambiguous, match="give it as NODE/NAME"):
        state.resolve("x")
    assert state.resolve("alpha/x").id == "c-a" and state.resolve("beta/x").id == "c-b"
    assert state.resolve("/beta/x").id == "c-b"
    state.remove_container("c-a")  # the first indexed goes: the other keeps its name
    assert state.resolve("x").id == "c-b" and state.resolve("beta/x").id == "c-b"
    assert state.container_names()["x"] == "c-b"
    with pytest.raises(NotFound):
        state.resolve("alpha/x")
    state.upsert_container(Container("c-a", "x", "A|1"))
    state.remove_container("c-b")  # the other one goes this time
    assert state.resolve("x").id == "c-a" and state.resolve("alpha/x").id == "c-a"
    state.remove_container("c-a")
    assert not state.name_taken("x") and "x" not in state.container_names()


def test_a_renamed_container_moves_between_names():
    state = two_nodes()
    state.upsert_container(Container("c1", "old", "A|1"))
    state.upsert_container(Container("c1", "new", "A|1"))
    assert not state.name_taken("old") and state.resolve("alpha/new").id == "c1"


def test_a_second_node_with_a_taken_name_is_refused_and_changes_nothing():
    state = two_nodes()
    generation = state.generation
    with pytest.raises(NodeNameTaken) as refused:
        state.upsert_node(Node("C|3", "alpha", "c:3", health=HEALTHY))
    message = str(refused.value)
    assert 'node name "alpha" is already taken by the node at a:1' in message
    assert "flock join --name NAME" in message and "c:3" in message
    assert state.node("C|3") is None and state.node_by_name("alpha").id == "A|1"
    assert state.generation == generation
    # Renaming a known node onto a taken name is refused the same way.
    with pytest.raises(NodeNameTaken):
        state.upsert_node(Node("B|2", "alpha", "b:2", health=HEALTHY))
    assert state.node_by_name("beta").id == "B|2"


def test_a_node_that_comes_back_with_its_id_keeps_its_name_and_a_freed_name_is_reusable():
    state = two_nodes()
    state.upsert_node(Node("A|1", "alpha", "a:1", cpus=8, health=HEALTHY))  # a restart
    assert state.node_by_name("alpha").cpus == 8
    state.remove_node("A|1")
    state.upsert_node(Node("C|3", "alpha", "c:3", health=HEALTHY))
    assert state.node_by_name("alpha").id == "C|3"


def test_a_claim_is_held_until_the_work_ends_even_when_the_caller_is_cancelled():
    """A client that hangs up must not free the name while the node still makes the
    container (manager/cluster/holding.py)."""

    async def scenario() -> None:
        state = two_nodes()
        token = state.reserve("A|1", "web", 0, 0)
        node_answers = asyncio.Event()

        async def create_on_node() -> str:
            await node_answers.wait()
            state.upsert_container(Container("c1", "web", "A|1"))
            return "c1"

        caller = asyncio.ensure_future(hold_until_done(state, token, create_on_node()))
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        with pytest.raises(NameTaken):  # still claimed: the node has not answered
            state.reserve("B|2", "web", 0, 0)
        node_answers.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert state.usage("A|1").containers == 1  # the record, not the reservation too
        with pytest.raises(NameTaken) as taken:
            state.reserve("B|2", "web", 0, 0)
        assert taken.value.holder == "c1"

        failing = state.reserve("B|2", "db", 0, 0)

        async def refused() -> None:
            raise RuntimeError("the node said no")

        with pytest.raises(RuntimeError):
            await hold_until_done(state, failing, refused())
        assert not state.name_taken("db") and state.usage("B|2").containers == 0

    asyncio.run(scenario())

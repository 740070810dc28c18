"""The scheduler end to end (pure): strategies' arithmetic, soft rules, the error text."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler import NoNodeAvailable, Scheduler, spec_from_create
from flock.manager.scheduler.drain import set_drained
from flock.manager.scheduler.scheduler import HEADER, NO_HEALTHY, NO_RESOURCES

MIB = 1024**2
GIB = 1024**3


def cluster(*nodes: Node) -> ClusterState:
    state = ClusterState()
    for n in nodes:
        state.upsert_node(n)
    return state


def node(nid: str, cpus: int = 1, memory: int = GIB, health: str = HEALTHY, **labels) -> Node:
    return Node(
        nid, f"node-{nid}", f"{nid}:1", cpus=cpus, memory=memory, labels=labels, health=health
    )


def body(*env: str, cpus: float = 0, memory: int = 0, ports: tuple = (), **host) -> dict:
    host_config = dict(host)
    if cpus:
        host_config["CpuShares"] = cpus
    if memory:
        host_config["Memory"] = memory
    if ports:
        host_config["PortBindings"] = {f"{p}/tcp": [{"HostPort": str(p)}] for p in ports}
    return {"Image": "busybox", "Env": list(env), "HostConfig": host_config}


def place_and_reserve(scheduler: Scheduler, state: ClusterState, create: dict, n: int) -> list:
    spec = spec_from_create(create)
    picks = []
    for i in range(n):
        decision = scheduler.place(state, spec)
        state.reserve(decision.node.id, f"c{len(picks)}-{i}", spec.cpus, spec.memory, spec.ports)
        picks.append(decision.node.id)
    return picks


# ------------------------------------------------------------ construction
def test_defaults_and_names():
    s = Scheduler()
    assert s.strategy_name == "spread"
    assert s.filter_names == [
        "health",
        "port",
        "containerslots",
        "dependency",
        "affinity",
        "constraint",
    ]
    assert Scheduler("binpack", ["constraint", "health"]).filter_names == ["constraint", "health"]
    assert Scheduler("binpacking").strategy_name == "binpack"
    assert Scheduler("random", []).filter_names == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "fastest"}, 'unknown strategy "fastest"'),
        ({"filters": ["health", "colour"]}, 'unknown filter "colour"'),
        ({"overcommit": -1}, "overcommit must be a number above -1"),
        ({"overcommit": "lots"}, "overcommit must be a number above -1"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Scheduler(**kwargs)


# ---------------------------------------------------------------- spread
def test_spread_two_nodes_four_containers_two_each():
    state = cluster(node("a"), node("b"))
    picks = place_and_reserve(Scheduler(rng=random.Random(1)), state, body(), 4)
    assert Counter(picks) == {"a": 2, "b": 2}


def test_spread_evenly_over_three_nodes_with_existing_stopped_containers():
    state = cluster(node("a"), node("b"), node("c"))
    for i in range(3):
        state.upsert_container(Container(f"x{i}", f"old{i}", "a", state="exited"))
    picks = place_and_reserve(Scheduler(rng=random.Random(2)), state, body(), 9)
    assert Counter(picks) == {"a": 1, "b": 4, "c": 4}


def test_spread_lowest_weight_exact_arithmetic():
    # a: 2 CPUs, 1 reserved -> (1 + 1) * 100 / 2 = 100 (+100 memory) = 200
    # b: 4 CPUs, none reserved -> (0 + 1) * 100 / 4 = 25 (+100) = 125
    state = cluster(node("a", cpus=2), node("b", cpus=4))
    state.upsert_container(Container("x", "x", "a", reserved_cpus=1))
    s = Scheduler(overcommit=0)
    spec = spec_from_create(body(cpus=1))
    assert s.place(state, spec).node.id == "b"
    ranking = [(n.id, w, c) for n, w, c in s.explain(state, spec).ranking]
    assert ranking == [("b", 125.0, 0), ("a", 200.0, 1)]


def test_spread_weights_cpu_and_memory_together():
    # a: cpu (0+1)*100/4 = 25, mem (512+256)*100/1024 = 75 -> 100
    # b: cpu (2+1)*100/4 = 75, mem (0+256)*100/1024 = 25 -> 100
    # c: cpu (1+1)*100/4 = 50, mem (256+256)*100/1024 = 50 -> 100, but 2 containers
    state = cluster(
        node("a", cpus=4, memory=1024 * MIB),
        node("b", cpus=4, memory=1024 * MIB),
        node("c", cpus=4, memory=1024 * MIB),
    )
    state.upsert_container(Container("1", "1", "a", reserved_memory=512 * MIB))
    state.upsert_container(Container("2", "2", "b", reserved_cpus=2))
    state.upsert_container(Container("3", "3", "c", reserved_cpus=1, reserved_memory=256 * MIB))
    state.upsert_container(Container("4", "4", "c"))
    s = Scheduler(overcommit=0)
    spec = spec_from_create(body(cpus=1, memory=256 * MIB))
    weights = {n.id: (w, c) for n, w, c in s.explain(state, spec).ranking}
    assert weights == {"a": (100.0, 1), "b": (100.0, 1), "c": (100.0, 2)}
    # equal weights: fewer containers wins, then a coin toss between a and b
    chosen = {
        Scheduler(overcommit=0, rng=random.Random(i)).place(state, spec).node.id for i in range(30)
    }
    assert chosen == {"a", "b"}


def test_nothing_requested_scores_100_even_on_a_full_node():
    state = cluster(node("a", cpus=1, memory=100), node("b", cpus=1, memory=100))
    state.upsert_container(Container("x", "x", "a", reserved_cpus=5, reserved_memory=500))
    state.upsert_container(Container("y", "y", "b"))
    spec = spec_from_create(body())
    # both weigh 200: the tie goes to whichever has fewer containers... they have 1 each
    chosen = {Scheduler(rng=random.Random(i)).place(state, spec).node.id for i in range(30)}
    assert chosen == {"a", "b"}


# --------------------------------------------------------------- binpack
def test_binpack_fills_one_node_first_with_memory_reservations():
    state = cluster(node("a", memory=GIB), node("b", memory=GIB))
    picks = place_and_reserve(
        Scheduler("binpack", rng=random.Random(3)), state, body(memory=256 * MIB), 8
    )
    first = picks[0]
    other = "b" if first == "a" else "a"
    # 4 x 256 MiB = 1 GiB fits in 1.05 GiB; the fifth (1.25 GiB) does not
    assert picks == [first] * 4 + [other] * 4
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler("binpack").place(state, spec_from_create(body(memory=256 * MIB)))
    # Filters passed, resources did not: classic's own sentence first
    # (scheduler/strategy/strategy.go ErrNoResourcesAvailable), then what was short.
    assert str(err.value) == (
        f"{NO_RESOURCES}\n[available Memory] (removed 2 nodes; 256 MiB requested)")


def test_binpack_ties_go_to_more_containers():
    state = cluster(node("a"), node("b"), node("c"))
    state.upsert_container(Container("1", "1", "b"))
    state.upsert_container(Container("2", "2", "b"))
    state.upsert_container(Container("3", "3", "c"))
    assert Scheduler("binpack").place(state, spec_from_create(body())).node.id == "b"


def test_binpack_highest_weight_that_still_fits():
    state = cluster(node("a", cpus=2), node("b", cpus=4))
    state.upsert_container(Container("x", "x", "b", reserved_cpus=3))
    # a: (0+1)*100/2 = 50; b: (3+1)*100/4 = 100 -> b (exactly full still fits)
    s = Scheduler("binpack", overcommit=0)
    assert s.place(state, spec_from_create(body(cpus=1))).node.id == "b"


# ----------------------------------------------------------------- random
def test_random_is_uniform_among_nodes_with_resources():
    state = cluster(node("a", cpus=1), node("b", cpus=1), node("c", cpus=1), node("d", cpus=1))
    state.upsert_container(Container("x", "x", "d", reserved_cpus=1, state="exited"))
    s = Scheduler("random", rng=random.Random(5))
    spec = spec_from_create(body(cpus=1))
    counts = Counter(s.place(state, spec).node.id for _ in range(3000))
    assert set(counts) == {"a", "b", "c"}
    assert all(900 < n < 1100 for n in counts.values())


# -------------------------------------------------------- overcommit edge
@pytest.mark.parametrize(
    ("overcommit", "memory", "fits"),
    [
        (0.05, 1050, True),
        (0.05, 1051, False),
        (0, 1000, True),
        (0, 1001, False),
        (0.5, 1500, True),
        (0.5, 1501, False),
    ],
)
def test_overcommit_boundary_memory(overcommit, memory, fits):
    state = cluster(node("a", memory=1000))
    s = Scheduler(overcommit=overcommit)
    spec = spec_from_create(body(memory=memory))
    if fits:
        assert s.place(state, spec).node.id == "a"
    else:
        with pytest.raises(NoNodeAvailable, match=r"\[available Memory\]"):
            s.place(state, spec)


def test_overcommit_boundary_cpus_and_classic_cpu_shares():
    state = cluster(node("a", cpus=20))
    s = Scheduler()  # 20 CPUs * 1.05 = 21
    spec = spec_from_create(body(cpus=21))
    assert s.place(state, spec).node.id == "a"
    with pytest.raises(NoNodeAvailable) as err:
        s.place(state, spec_from_create(body(cpus=22)))
    assert str(err.value) == f"{NO_RESOURCES}\n[available CPUs] (removed 1 node; 22 requested)"


def test_node_without_cpus_takes_only_containers_that_ask_for_none():
    state = cluster(node("a", cpus=0, memory=0))
    assert Scheduler().place(state, spec_from_create(body())).node.id == "a"
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body(cpus=1, memory=1)))
    assert str(err.value) == (
        f"{NO_RESOURCES}\n[available CPUs] (removed 1 node; 1 requested)\n"
        "[available Memory] (removed 1 node; 1 B requested)"
    )


def test_stopped_containers_and_pending_creates_count_toward_reservations():
    state = cluster(node("a", cpus=2), node("b", cpus=2))
    state.upsert_container(Container("x", "x", "a", reserved_cpus=2, state="exited"))
    state.reserve("b", "creating", 2, 0)
    with pytest.raises(NoNodeAvailable, match=r"\[available CPUs\] \(removed 2 nodes"):
        Scheduler().place(state, spec_from_create(body(cpus=1)))


# ------------------------------------------------------------- soft rules
def _zones() -> ClusterState:
    return cluster(
        node("a", zone="1", disk="ssd"),
        node("b", zone="2", disk="hdd"),
        node("c", zone="2", disk="ssd"),
    )


def test_soft_rule_that_can_be_met_is_applied():
    d = Scheduler().place(_zones(), spec_from_create(body("constraint:zone==~2")))
    assert d.node.id in {"b", "c"} and d.dropped_soft == []


def test_soft_rule_that_cannot_be_met_is_dropped_and_reported():
    d = Scheduler().place(
        _zones(), spec_from_create(body("constraint:zone==~9", "constraint:disk==ssd"))
    )
    assert d.node.id in {"a", "c"}
    assert d.dropped_soft == ["constraint:zone==~9"]


def test_only_the_soft_rules_that_cannot_be_met_are_dropped_in_order():
    spec = spec_from_create(
        body("constraint:zone==~1", "constraint:disk==~hdd", "affinity:container!=~nothing")
    )
    for seed in range(10):
        d = Scheduler(rng=random.Random(seed)).place(_zones(), spec)
        # zone==1 leaves a; disk==hdd would then leave nothing: dropped, zone kept
        assert d.node.id == "a"
        assert d.dropped_soft == ["constraint:disk==~hdd"]


def test_a_dropped_soft_rule_does_not_hold_back_the_next_one():
    spec = spec_from_create(body("constraint:zone==~9", "constraint:disk==~hdd"))
    for seed in range(5):
        d = Scheduler(rng=random.Random(seed)).place(_zones(), spec)
        assert d.node.id == "b"
        assert d.dropped_soft == ["constraint:zone==~9"]


def test_soft_affinities_come_before_soft_constraints_in_chain_order():
    state = _zones()
    state.upsert_container(Container("w", "web", "b"))
    spec = spec_from_create(body("constraint:zone==~1", "affinity:container==~web"))
    d = Scheduler().place(state, spec)
    assert d.node.id == "b" and d.dropped_soft == ["constraint:zone==~1"]


def test_soft_rule_dropped_when_its_nodes_lack_resources():
    state = cluster(node("a", cpus=1, zone="1"), node("b", cpus=8, zone="2"))
    d = Scheduler().place(state, spec_from_create(body("constraint:zone==~1", cpus=4)))
    assert d.node.id == "b" and d.dropped_soft == ["constraint:zone==~1"]


def test_soft_negative_rule():
    d = Scheduler().place(_zones(), spec_from_create(body("constraint:disk!=~ssd")))
    assert d.node.id == "b" and d.dropped_soft == []


# ------------------------------------------------------------ the errors
def test_full_error_message_names_every_condition_that_removed_nodes():
    state = cluster(
        node("a", size="xl"),
        node("b", size="xl", containerslots="1"),
        node("c", size="s"),
        node("d", size="xl", health=UNHEALTHY),
        node("e", size="xl"),
    )
    state.upsert_container(Container("x", "x", "a", ports=[(80, "tcp")]))
    state.upsert_container(Container("y", "y", "b"))
    state.upsert_container(Container("z", "z", "e", labels={"tier": "db"}))
    spec = spec_from_create(
        body("constraint:size==xl", "affinity:tier!=db", "constraint:region==~eu", ports=(80,))
    )
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec)
    assert str(err.value) == (
        "Unable to find a node that satisfies the following conditions\n"
        "[healthy node] (removed 1 node)\n"
        "[port 80 (Bridge mode)] (removed 1 node)\n"
        "[available container slots] (removed 1 node)\n"
        "[tier!=db (soft=false)] (removed 1 node)\n"
        "[size==xl] (removed 1 node)"
    )
    assert [r.condition for r in err.value.removals][-1] == "size==xl"


def test_error_for_a_constraint_nobody_meets():
    state = cluster(node("a", size="s"), node("b", size="m"), node("c", size="l"))
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body("constraint:size==xxl")))
    assert str(err.value) == f"{HEADER}\n[size==xxl] (removed 3 nodes)"


def test_error_for_dependencies_on_different_nodes():
    state = cluster(node("a"), node("b"))
    state.upsert_container(Container("1", "db", "a"))
    state.upsert_container(Container("2", "cache", "b"))
    spec = spec_from_create(body(Links=["db:db", "cache:c"]))
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec)
    assert str(err.value) == (
        f"{HEADER}\n[--link=db:db] (removed 1 node)\n"
        "[--link=cache:c] (removed 1 node; dependencies are on different nodes: "
        "cache on node-b, db on node-a)"
    )


def test_error_when_no_node_is_healthy_or_there_are_none():
    state = cluster(node("a", health=UNHEALTHY))
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body()))
    # classic's health filter says this one itself (scheduler/filter/health.go)
    assert str(err.value) == f"{NO_HEALTHY}\n[healthy node] (removed 1 node)"
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(ClusterState(), spec_from_create(body()))
    assert str(err.value) == f"{NO_HEALTHY}\n[no nodes in the cluster]"


def test_first_line_is_classics_for_the_step_that_left_nothing():
    """Classic answers a filter that removed every node with the list header
    (scheduler/filter/filter.go), and nodes that passed every filter but lack the CPUs
    or memory with "no resources available to schedule container" alone
    (scheduler/strategy/weighted_node.go weighNodes): scripts look for either. Flock's
    lines after it still say which conditions removed which nodes."""
    state = cluster(node("a", size="s", memory=GIB), node("b", size="l", memory=GIB))
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body("constraint:size==l", memory=2 * GIB)))
    assert str(err.value) == (
        f"{NO_RESOURCES}\n[size==l] (removed 1 node)\n"
        "[available Memory] (removed 1 node; 2 GiB requested)")
    assert err.value.header == NO_RESOURCES
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body("constraint:size==xl", memory=2 * GIB)))
    assert str(err.value) == f"{HEADER}\n[size==xl] (removed 2 nodes)"


def test_every_node_drained_keeps_the_list_header():
    """Drain is Flock's: "No healthy node" would send the user looking at health."""
    state = cluster(node("a"))
    set_drained(state, "a", True)
    with pytest.raises(NoNodeAvailable) as err:
        Scheduler().place(state, spec_from_create(body()))
    assert str(err.value).startswith(f"{HEADER}\n[active node (not drained)]")


def test_without_the_health_filter_unhealthy_nodes_are_candidates():
    state = cluster(node("a", health=UNHEALTHY))
    assert Scheduler(filters=["constraint"]).place(state, spec_from_create(body())).node.id == "a"


def test_decision_reports_removals_and_candidate_count():
    state = cluster(node("a", size="xl"), node("b", size="xl"), node("c"))
    d = Scheduler().place(state, spec_from_create(body("constraint:size==xl")))
    assert d.candidates == 2
    assert [(r.condition, r.removed) for r in d.removals] == [("size==xl", {"c"})]


def test_explain_on_failure_carries_the_message():
    state = cluster(node("a", size="s"))
    explanation = Scheduler().explain(state, spec_from_create(body("constraint:size==xl")))
    assert explanation.error == f"{HEADER}\n[size==xl] (removed 1 node)"
    assert explanation.ranking == []


def test_place_does_not_change_the_state():
    state = cluster(node("a"), node("b"))
    before = state.generation
    Scheduler().place(state, spec_from_create(body("constraint:node==~a", cpus=1, ports=(80,))))
    assert state.generation == before
    assert state.nodes_using_port(80) == set()

"""Properties of the scheduler on generated clusters (hypothesis).

- the chosen node satisfies every hard rule and has the resources, checked by an oracle
  written here from SPEC §3 (independent of the scheduler's indexes); when nothing is
  chosen, the oracle finds no such node either;
- the chosen node ranks best by the filter chain's exhaustive ranking (the fast path
  walks buckets instead: it must lose nothing);
- spread never leaves one node with two more containers than another among equal
  candidates; binpack uses the fewest nodes on a uniform workload.
"""

from __future__ import annotations

import math
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState, image_aliases
from flock.manager.scheduler import NoNodeAvailable, Scheduler, spec_from_create
from flock.manager.scheduler.spec import ContainerSpec

GIB = 1024**3
NAMES = ["web-1", "web-2", "db-1", "cache", "api-7"]
IMAGES = ["busybox", "redis:7", "nginx:1.25"]
CONSTRAINTS = [
    "size==s", "size!=s", "size==l", "zone==a*", "zone!=/b|c/", "zone==~a", "size!=~m",
    "node==n1", "node!=n2", "node==/n[0-3]/", "ghost==x", "ghost!=x", "health==healthy",
]
AFFINITIES = [
    "container==web-1", "container!=web-*", "container==db-?", "container==~cache",
    "image==busybox", "image!=redis:7", "image==~nginx:1.25", "tier==front", "tier!=/b.*/",
    "tier==~back",
]
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw) -> ClusterState:
    state = ClusterState()
    count = draw(st.integers(1, 8))
    for n in range(count):
        labels = {"size": draw(st.sampled_from("sml")), "zone": draw(st.sampled_from("abc"))}
        if draw(st.booleans()):
            labels["containerslots"] = str(draw(st.integers(0, 4)))
        state.upsert_node(Node(
            f"n{n}", f"node-{n}", "x:1", cpus=draw(st.integers(0, 4)),
            memory=draw(st.integers(0, 4)) * GIB, labels=labels,
            health=draw(st.sampled_from([HEALTHY, HEALTHY, HEALTHY, UNHEALTHY]))))
        state.set_node_images(f"n{n}", draw(st.lists(st.sampled_from(IMAGES), max_size=2)))
    for c in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(NAMES)) + (f"-{c}" if draw(st.booleans()) else "")
        if state.name_taken(name):
            continue
        state.upsert_container(Container(
            f"{c:04x}" + "f" * 60, name, f"n{draw(st.integers(0, count - 1))}",
            image=draw(st.sampled_from(IMAGES)),
            labels={"tier": draw(st.sampled_from(["front", "back"]))},
            reserved_cpus=draw(st.sampled_from([0, 0.5, 1])),
            reserved_memory=draw(st.sampled_from([0, GIB // 2, GIB])),
            ports=draw(st.sampled_from([[], [(80, "tcp")], [(53, "udp")]]))))
    for p in range(draw(st.integers(0, 2))):
        state.reserve(f"n{draw(st.integers(0, count - 1))}", f"pending-{p}", 0.5, 0,
                      [(80, "tcp")] if draw(st.booleans()) else [])
    return state


@st.composite
def creates(draw) -> dict:
    env = ["constraint:" + r for r in draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=3))]
    env += ["affinity:" + r for r in draw(st.lists(st.sampled_from(AFFINITIES), max_size=2))]
    host: dict = {"CpuShares": draw(st.sampled_from([0, 0, 0.5, 1, 2])),
                  "Memory": draw(st.sampled_from([0, 0, GIB // 2, GIB, 3 * GIB]))}
    if draw(st.booleans()):
        host["PortBindings"] = {"80/tcp": [{"HostPort": "80"}]}
    if draw(st.integers(0, 4)) == 0:
        host["Links"] = [draw(st.sampled_from(NAMES)) + ":x"]
    return {"Image": "busybox", "Env": env, "HostConfig": host}


# ----------------------------------------------------------------- the oracle
def satisfies_hard_rules(state: ClusterState, spec: ContainerSpec, node: Node) -> bool:
    """SPEC §3 read literally, node by node, with no index."""
    usage = state.usage(node.id)
    slots = node.labels.get("containerslots", "")
    checks = [
        node.health == HEALTHY,
        not any(port in usage.ports for port in spec.ports),
        not slots.isdigit() or usage.containers < int(slots),
        all(state.container_node(ref) == node.id for ref in spec.dependencies),
        _fits(spec.cpus, usage.cpus, node.cpus) and _fits(spec.memory, usage.memory, node.memory),
    ]
    for rule in spec.constraints:
        if rule.soft:
            continue
        if rule.key == "node":
            hit = rule.matches(node.name) or rule.matches(node.id)
        elif rule.key == "health":
            hit = rule.matches(node.health)
        else:
            hit = rule.matches(node.labels.get(rule.key, ""))
        checks.append(hit == rule.positive)
    here = state.containers(node.id)
    for rule in spec.affinities:
        if rule.soft:
            continue
        if rule.key == "container":
            hit = any(rule.matches(c.name) or rule.matches(c.id) for c in here)
        elif rule.key == "image":
            refs = {a for c in here for a in image_aliases(c.image)} | state.node_images(node.id)
            hit = any(rule.matches(ref) for ref in refs)
        else:
            hit = any(rule.matches(c.labels.get(rule.key, "\0")) for c in here)
        checks.append(hit == rule.positive)
    return all(checks)


def _fits(requested: float, used: float, total: float) -> bool:
    if not requested:
        return True
    return total > 0 and (used + requested) * 100 / (total * 1.05) <= 100 + 1e-9


def scheduler_for(strategy: str, seed: int, path: str) -> Scheduler:
    """A scheduler forced down one path of the fast search: scoring the smallest
    required set one by one (the default on clusters this small), walking the rank
    buckets, or starting the walk and running out of budget."""
    scheduler = Scheduler(strategy, rng=random.Random(seed))
    if path != "direct":
        scheduler.fast.direct = 0
    if path == "over budget":
        scheduler.fast.budget = 3
    return scheduler


PATHS = st.sampled_from(["direct", "walk", "walk", "over budget"])


# ----------------------------------------------------------------- properties
@SETTINGS
@given(clusters(), creates(), st.sampled_from(["spread", "binpack", "random"]), st.integers(),
       PATHS)
def test_chosen_node_satisfies_every_hard_rule(state, create, strategy, seed, path):
    spec = spec_from_create(create)
    scheduler = scheduler_for(strategy, seed, path)
    fitting = [n.id for n in state.nodes() if satisfies_hard_rules(state, spec, n)]
    # the fast path alone (place() would fall back to the chain when it finds nothing)
    assert (scheduler.fast.place(state, spec) is None) == (fitting == [])
    try:
        decision = scheduler.place(state, spec)
    except NoNodeAvailable:
        assert fitting == []
        return
    assert decision.node.id in fitting


@SETTINGS
@given(clusters(), creates(), st.sampled_from(["spread", "binpack"]), st.integers(), PATHS)
def test_chosen_node_ranks_best_by_the_exhaustive_ranking(state, create, strategy, seed, path):
    spec = spec_from_create(create)
    scheduler = scheduler_for(strategy, seed, path)
    try:
        decision = scheduler.place(state, spec)
    except NoNodeAvailable:
        return
    reference = scheduler.place_by_chain(state, spec)
    assert decision.dropped_soft == reference.dropped_soft
    ranking = scheduler.explain(state, spec, limit=100).ranking
    best = ranking[0][1:]
    assert (decision.node.id, *best) in [(n.id, w, c) for n, w, c in ranking]


@SETTINGS
@given(
    st.integers(2, 12),
    st.lists(st.sampled_from([None, "zone==a", "zone!=a"]), min_size=1, max_size=60),
    st.integers(),
    PATHS,
)
def test_spread_keeps_equal_candidates_within_one_container(nodes, rules, seed, path):
    state = ClusterState()
    for n in range(nodes):
        state.upsert_node(Node(f"n{n}", f"n{n}", "x:1", cpus=4, memory=4 * GIB,
                               labels={"zone": "ab"[n % 2]}, health=HEALTHY))
    scheduler = scheduler_for("spread", seed, path)
    for i, rule in enumerate(rules):
        spec = spec_from_create({"Image": "x", "Env": [f"constraint:{rule}"] if rule else []})
        node = scheduler.place(state, spec).node
        state.reserve(node.id, f"c{i}", 0, 0)
        # the nodes of one zone were equal candidates at every step (each decision
        # either saw all of them or none), so they stay within one container
        for zone in "ab":
            counts = [state.usage(n.id).containers for n in state.nodes()
                      if n.labels["zone"] == zone]
            assert not counts or max(counts) - min(counts) <= 1
        if all(r is None for r in rules[: i + 1]):
            counts = [state.usage(n.id).containers for n in state.nodes()]
            assert max(counts) - min(counts) <= 1


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 8), st.integers(0, 120), st.integers(),
       st.sampled_from(["cpu", "memory", "both"]), PATHS)
def test_binpack_uses_the_fewest_nodes_on_a_uniform_workload(nodes, size, decisions, seed,
                                                             resource, path):
    state = ClusterState()
    for n in range(nodes):
        state.upsert_node(Node(f"n{n}", f"n{n}", "x:1", cpus=size, memory=size * GIB,
                               health=HEALTHY))
    per_node = math.floor(size * 1.05)  # 1 CPU / 1 GiB each, 5% overcommit
    decisions = min(decisions, nodes * per_node)
    host = {"cpu": {"CpuShares": 1}, "memory": {"Memory": GIB},
            "both": {"CpuShares": 1, "Memory": GIB}}[resource]
    spec = spec_from_create({"Image": "x", "HostConfig": host})
    scheduler = scheduler_for("binpack", seed, path)
    for i in range(decisions):
        state.reserve(scheduler.place(state, spec).node.id, f"c{i}", spec.cpus, spec.memory)
    used = sum(1 for n in state.nodes() if state.usage(n.id).containers)
    assert used == math.ceil(decisions / per_node)

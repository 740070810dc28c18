"""Each filter on its own: what survives, and the reason given for what it removed."""

from __future__ import annotations

from flock.manager.cluster.model import HEALTHY, PENDING, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters import DEFAULT_FILTERS, FILTERS
from flock.manager.scheduler.filters.affinity import AffinityFilter
from flock.manager.scheduler.filters.constraint import ConstraintFilter
from flock.manager.scheduler.filters.dependency import DependencyFilter
from flock.manager.scheduler.filters.health import HealthFilter
from flock.manager.scheduler.filters.port import PortFilter
from flock.manager.scheduler.filters.slots import SlotsFilter
from flock.manager.scheduler.spec import spec_from_create


def cluster(*nodes: Node) -> ClusterState:
    state = ClusterState()
    for n in nodes:
        state.upsert_node(n)
    return state


def node(nid: str, health: str = HEALTHY, **labels: str) -> Node:
    return Node(nid, f"node-{nid}", f"{nid}:1", cpus=1, memory=1024, labels=labels, health=health)


def env(*rules: str) -> dict:
    return {"Image": "busybox", "Env": list(rules)}


def run(flt, state, body, candidates=None):
    spec = spec_from_create(body)
    cands = set(state.node_map()) if candidates is None else candidates
    result = flt.apply(state, spec, cands)
    return set(result.survivors), [(r.condition, set(r.removed), r.detail) for r in result.removals]


def test_default_chain_order():
    assert DEFAULT_FILTERS == [
        "health",
        "port",
        "containerslots",
        "dependency",
        "affinity",
        "constraint",
    ]
    assert set(FILTERS) == set(DEFAULT_FILTERS)


# ---------------------------------------------------------------- health
def test_health_keeps_only_healthy_nodes():
    state = cluster(node("a"), node("b", UNHEALTHY), node("c", PENDING))
    assert run(HealthFilter(), state, {}) == ({"a"}, [("healthy node", {"b", "c"}, "")])


def test_health_on_a_narrowed_set_and_nothing_removed():
    state = cluster(node("a"), node("b", UNHEALTHY), node("c"))
    assert run(HealthFilter(), state, {}, {"a", "b"}) == ({"a"}, [("healthy node", {"b"}, "")])
    assert run(HealthFilter(), state, {}, {"a", "c"}) == ({"a", "c"}, [])


def test_health_follows_set_health():
    state = cluster(node("a"), node("b"))
    state.set_health("a", UNHEALTHY)
    assert run(HealthFilter(), state, {})[0] == {"b"}


# ------------------------------------------------------------------ port
def _with_ports(state: ClusterState) -> ClusterState:
    state.upsert_container(Container("c1", "web", "a", ports=[(80, "tcp")], state="exited"))
    state.upsert_container(Container("c2", "dns", "b", ports=[(53, "udp")]))
    return state


def test_port_removes_nodes_using_the_host_port_per_protocol():
    state = _with_ports(cluster(node("a"), node("b"), node("c")))
    body = {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}}
    assert run(PortFilter(), state, body) == ({"b", "c"}, [("port 80 (Bridge mode)", {"a"}, "")])
    udp = {"HostConfig": {"PortBindings": {"80/udp": [{"HostPort": "80"}]}}}
    assert run(PortFilter(), state, udp) == ({"a", "b", "c"}, [])


def test_port_host_mode_text_and_pending_reservations():
    state = _with_ports(cluster(node("a"), node("b"), node("c")))
    state.reserve("c", "new", 0, 0, [(53, "udp")])
    body = {"HostConfig": {"NetworkMode": "host"}, "ExposedPorts": {"53/udp": {}}}
    assert run(PortFilter(), state, body) == ({"a"}, [("port 53/udp (Host mode)", {"b", "c"}, "")])


def test_port_host_network_container_blocks_bridge_binding():
    state = cluster(node("a"), node("b"))
    # a --net=host container's exposed ports are recorded as its ports
    state.upsert_container(Container("h", "host", "a", ports=[(8080, "tcp")], network_mode="host"))
    body = {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "8080"}]}}}
    assert run(PortFilter(), state, body)[0] == {"b"}


def test_port_dynamic_binding_is_no_constraint():
    state = _with_ports(cluster(node("a")))
    body = {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": ""}]}, "PublishAllPorts": True}}
    assert run(PortFilter(), state, body) == ({"a"}, [])


def test_port_each_port_is_its_own_condition():
    state = _with_ports(cluster(node("a"), node("b"), node("c")))
    body = {
        "HostConfig": {
            "PortBindings": {"80/tcp": [{"HostPort": "80"}], "53/udp": [{"HostPort": "53"}]}
        }
    }
    survivors, removals = run(PortFilter(), state, body)
    assert survivors == {"c"}
    assert removals == [
        ("port 80 (Bridge mode)", {"a"}, ""),
        ("port 53 (Bridge mode)", {"b"}, ""),
    ]


# ---------------------------------------------------------- containerslots
def test_slots_caps_containers_pending_and_stopped_included():
    state = cluster(node("a", containerslots="2"), node("b", containerslots="3"), node("c"))
    state.upsert_container(Container("1", "one", "a", state="exited"))
    state.reserve("a", "two", 0, 0)
    state.upsert_container(Container("2", "x", "b"))
    state.upsert_container(Container("3", "y", "b"))
    assert run(SlotsFilter(), state, {}) == (
        {"b", "c"},
        [("available container slots", {"a"}, "")],
    )
    state.upsert_container(Container("4", "z", "b"))
    assert run(SlotsFilter(), state, {})[0] == {"c"}


def test_slots_ignores_a_non_integer_label_and_zero_means_full():
    state = cluster(node("a", containerslots="many"), node("b", containerslots="0"))
    assert run(SlotsFilter(), state, {})[0] == {"a"}


# ------------------------------------------------------------ dependency
def _deps_state() -> ClusterState:
    state = cluster(node("a"), node("b"), node("c"))
    state.upsert_container(Container("id-db", "db", "a"))
    state.upsert_container(Container("id-data", "data", "a"))
    state.upsert_container(Container("id-cache", "cache", "b"))
    return state


def test_dependency_pins_to_the_node_of_links_volumes_and_net():
    state = _deps_state()
    body = {
        "HostConfig": {
            "Links": ["db:database"],
            "VolumesFrom": ["data:ro"],
            "NetworkMode": "container:id-db",
        }
    }
    assert run(DependencyFilter(), state, body) == (
        {"a"},
        [("--volumes-from=data:ro", {"b", "c"}, "")],
    )


def test_dependency_on_a_pending_container():
    state = _deps_state()
    state.reserve("c", "creating", 0, 0)
    body = {"HostConfig": {"Links": ["creating:x"]}}
    assert run(DependencyFilter(), state, body)[0] == {"c"}


def test_dependencies_on_different_nodes_is_a_clear_error():
    state = _deps_state()
    body = {"HostConfig": {"Links": ["db:db", "cache:cache"]}}
    survivors, removals = run(DependencyFilter(), state, body)
    assert survivors == set()
    assert removals[1] == (
        "--link=cache:cache",
        {"a"},
        "dependencies are on different nodes: cache on node-b, db on node-a",
    )


def test_dependency_missing_container():
    state = _deps_state()
    body = {"HostConfig": {"Links": ["nope:x"]}}
    assert run(DependencyFilter(), state, body) == (
        set(),
        [("--link=nope:x", {"a", "b", "c"}, "no such container: nope")],
    )


def test_dependency_on_a_node_that_is_not_a_candidate():
    state = _deps_state()
    body = {"HostConfig": {"VolumesFrom": ["cache"]}}
    assert run(DependencyFilter(), state, body, {"a", "c"}) == (
        set(),
        [("--volumes-from=cache", {"a", "c"}, "cache is on node-b, which is not a candidate")],
    )


# ------------------------------------------------------------ constraint
def _labelled() -> ClusterState:
    return cluster(
        node("a", region="eu-west", size="xl", storagedriver="overlay2"),
        node("b", region="eu-central", size="s", storagedriver="btrfs"),
        node("c", region="us-east", storagedriver="overlay2"),
        node("d", UNHEALTHY),
    )


def test_constraint_plain_glob_regex_and_negation():
    state = _labelled()
    c = ConstraintFilter()
    assert run(c, state, env("constraint:region==eu-west"))[0] == {"a"}
    assert run(c, state, env("constraint:region==eu-*"))[0] == {"a", "b"}
    assert run(c, state, env("constraint:region==/(eu|us)-.*t/"))[0] == {"a", "c"}
    assert run(c, state, env("constraint:region!=eu-*"))[0] == {"c", "d"}
    assert run(c, state, env("constraint:storagedriver==overlay?"))[0] == {"a", "c"}


def test_constraint_missing_label_is_the_empty_string():
    state = _labelled()
    c = ConstraintFilter()
    assert run(c, state, env("constraint:size!=xl"))[0] == {"b", "c", "d"}
    assert run(c, state, env("constraint:size==*"))[0] == {"a", "b", "c", "d"}
    assert run(c, state, env("constraint:size!=*"))[0] == set()
    assert run(c, state, env("constraint:size==/x?l?/"))[0] == {"a", "c", "d"}
    assert run(c, state, env("constraint:nosuchlabel==x"))[0] == set()


def test_constraint_node_by_name_or_id_and_health():
    state = _labelled()
    c = ConstraintFilter()
    assert run(c, state, env("constraint:node==node-b"))[0] == {"b"}
    assert run(c, state, env("constraint:node==c"))[0] == {"c"}
    assert run(c, state, env("constraint:node!=node-b"))[0] == {"a", "c", "d"}
    assert run(c, state, env("constraint:node==node-[ab]"))[0] == set()  # a glob, not a class
    assert run(c, state, env("constraint:node==/node-[ab]/"))[0] == {"a", "b"}
    assert run(c, state, env("constraint:health==unhealthy"))[0] == {"d"}
    assert run(c, state, env("constraint:health!=healthy"))[0] == {"d"}


def test_constraint_each_hard_rule_is_a_condition_and_soft_rules_are_left_out():
    state = _labelled()
    body = env("constraint:region==eu-*", "constraint:size==~s", "constraint:size!=s")
    survivors, removals = run(ConstraintFilter(), state, body)
    assert survivors == {"a"}
    assert removals == [("region==eu-*", {"c", "d"}, ""), ("size!=s", {"b"}, "")]
    spec = spec_from_create(body)
    assert [str(r) for r in ConstraintFilter().soft_rules(spec)] == ["size==~s"]


# -------------------------------------------------------------- affinity
def _populated() -> ClusterState:
    state = cluster(node("a"), node("b"), node("c"))
    state.upsert_container(
        Container("f00d" * 16, "frontend", "a", image="nginx:1.25", labels={"app": "web"})
    )
    state.upsert_container(Container("beef" * 16, "redis-1", "b", image="redis", labels={}))
    state.set_node_images("c", ["postgres:16", "sha256:" + "12" * 32])
    return state


def test_affinity_container_by_name_id_prefix_and_glob():
    state = _populated()
    a = AffinityFilter()
    assert run(a, state, env("affinity:container==frontend"))[0] == {"a"}
    assert run(a, state, env("affinity:container==" + "beef" * 16))[0] == {"b"}
    assert run(a, state, env("affinity:container==beefbeef"))[0] == {"b"}
    assert run(a, state, env("affinity:container==redis-*"))[0] == {"b"}
    assert run(a, state, env("affinity:container==/f00d.*/"))[0] == {"a"}
    assert run(a, state, env("affinity:container!=frontend"))[0] == {"b", "c"}
    assert run(a, state, env("affinity:container==ghost"))[0] == set()


def test_affinity_container_being_created():
    state = _populated()
    state.reserve("c", "soon", 0, 0)
    assert run(AffinityFilter(), state, env("affinity:container==soon"))[0] == {"c"}


def test_affinity_image_from_node_images_and_containers():
    state = _populated()
    a = AffinityFilter()
    assert run(a, state, env("affinity:image==nginx"))[0] == {"a"}
    assert run(a, state, env("affinity:image==nginx:1.25"))[0] == {"a"}
    assert run(a, state, env("affinity:image==redis:latest"))[0] == {"b"}
    assert run(a, state, env("affinity:image==postgres"))[0] == {"c"}
    assert run(a, state, env("affinity:image==" + "12" * 6))[0] == {"c"}
    assert run(a, state, env("affinity:image==*:1*"))[0] == {"a", "c"}
    assert run(a, state, env("affinity:image!=redis"))[0] == {"a", "c"}


def test_affinity_container_label():
    state = _populated()
    a = AffinityFilter()
    assert run(a, state, env("affinity:app==web"))[0] == {"a"}
    assert run(a, state, env("affinity:app==w*"))[0] == {"a"}
    assert run(a, state, env("affinity:app!=web"))[0] == {"b", "c"}
    assert run(a, state, env("affinity:app==db"))[0] == set()


def test_affinity_condition_text_is_classic():
    state = _populated()
    survivors, removals = run(AffinityFilter(), state, env("affinity:container==frontend"))
    assert removals == [("container==frontend (soft=false)", {"b", "c"}, "")]


def test_filters_narrow_only_the_candidates_given():
    state = _labelled()
    assert run(ConstraintFilter(), state, env("constraint:region==eu-*"), {"b", "c"}) == (
        {"b"},
        [("region==eu-*", {"c"}, "")],
    )

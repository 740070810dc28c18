"""Classic Swarm's scheduling examples through the real docker CLI: two real engines
labelled `size=small` and `size=large` (dockerd --label), an agent in front of each
(node-small, node-large) and a manager, all started once for the module."""

from __future__ import annotations

import contextlib
import json

import pytest

from tests.conftest import free_port
from tests.support import engines
from tests.support.cluster import Cluster

pytestmark = pytest.mark.docker
HEADER = "Unable to find a node that satisfies the following conditions"
ONLY_SMALL = "flocktest/only-small:1"  # busybox under a tag imported on node-small only


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Engines of its own (labelled), so not the shared `cluster` of the conftest."""
    engines.need_dockerd()
    with contextlib.ExitStack() as stack:
        started = []
        for size in ("small", "large"):
            engine = engines.start_engine(tmp_path_factory.mktemp(f"engine-{size}"),
                                          labels={"size": size})
            stack.callback(engine.stop)
            started.append(engine)
            engine.import_busybox()
        started[0].import_busybox(ONLY_SMALL)
        yield stack.enter_context(Cluster(started, tmp_path_factory.mktemp("cluster"),
                                          ["node-small", "node-large"]))


def run(cluster: Cluster, *args: str, check: bool = True):
    return cluster.docker("run", "-d", *args, check=check)


# ------------------------------------------------------------------ constraints
def test_constraint_no_node_meets_is_the_classic_error_and_creates_nothing(cluster, name):
    before = cluster.container_ids()
    proc = run(cluster, "--name", name(), "-e", "constraint:size==xxl", "busybox", "true",
               check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert HEADER in err
    assert "[size==xxl] (removed 2 nodes)" in err
    assert cluster.container_ids() == before


def test_constraint_lands_on_the_labelled_node(cluster, name):
    for _ in range(3):
        ref = name()
        run(cluster, "--name", ref, "-e", "constraint:size==small", "busybox", "sleep", "60")
        assert cluster.node_of(ref) == "node-small"
    ref = name()
    run(cluster, "--name", ref, "-e", "constraint:size!=/sm.*/", "busybox", "sleep", "60")
    assert cluster.node_of(ref) == "node-large"


def test_rules_are_written_as_labels_and_not_seen_by_the_container(cluster, name):
    ref = name()
    run(cluster, "--name", ref, "-e", "constraint:size==~large", "-e", "A=1", "busybox",
        "sleep", "60")
    config = json.loads(cluster.docker("inspect", "-f", "{{json .Config}}", ref).stdout)
    assert json.loads(config["Labels"]["com.docker.swarm.constraints"]) == ["size==~large"]
    assert "A=1" in config["Env"]
    assert not any(e.startswith("constraint:") for e in config["Env"])


def test_soft_constraint_no_node_meets_is_dropped(cluster, name):
    ref = name()
    proc = run(cluster, "--name", ref, "-e", "constraint:size==~xxl", "busybox", "sleep", "60")
    assert proc.returncode == 0
    assert cluster.node_of(ref) in ("node-small", "node-large")


# ------------------------------------------------------------------ affinities
def test_image_affinity_goes_where_the_image_is(cluster, name):
    for _ in range(3):
        ref = name()
        run(cluster, "--name", ref, "-e", f"affinity:image=={ONLY_SMALL}", "busybox",
            "sleep", "60")
        assert cluster.node_of(ref) == "node-small"


def test_container_anti_affinity_avoids_the_node_with_web(cluster, name):
    web = name("web")
    run(cluster, "--name", web, "-e", "constraint:node==node-small", "busybox", "sleep", "60")
    for _ in range(3):
        ref = name()
        run(cluster, "--name", ref, "-e", "affinity:container!=web-*", "busybox", "sleep", "60")
        assert cluster.node_of(ref) == "node-large"
    ref = name()
    run(cluster, "--name", ref, "-e", f"affinity:container=={web}", "busybox", "sleep", "60")
    assert cluster.node_of(ref) == "node-small"


def test_link_lands_beside_its_dependency(cluster, name):
    db = name("db")
    run(cluster, "--name", db, "busybox", "sleep", "60")
    home = cluster.node_of(db)
    for _ in range(3):
        ref = name()
        run(cluster, "--name", ref, "--link", f"{db}:db", "busybox", "sleep", "60")
        assert cluster.node_of(ref) == home


# ------------------------------------------------------------------ host ports
def test_host_port_once_per_node_then_the_port_condition(cluster, name):
    # Both engines share this machine's network: only the first container binds the
    # port for real (docker run); the others are created, which reserves it as well.
    port = free_port()
    first, second = name(), name()
    run(cluster, "--name", first, "-p", f"{port}:80", "busybox", "sleep", "60")
    cluster.docker("create", "--name", second, "-p", f"{port}:80", "busybox", "sleep", "60")
    assert {cluster.node_of(first), cluster.node_of(second)} == {"node-small", "node-large"}
    before = cluster.container_ids()
    proc = cluster.docker("create", "--name", name(), "-p", f"{port}:80", "busybox",
                          check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert HEADER in err and f"[port {port} (Bridge mode)] (removed 2 nodes)" in err
    assert cluster.container_ids() == before


# ------------------------------------------------------------------ bad rules
@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("constraint:1size==small", 'key "1size" is invalid'),
        ("constraint:size=small", "expected an operator"),
        ("constraint:size==", "the value after == is missing"),
        ("affinity:container==~", "the value after == is missing"),
        ("constraint:node==/[/", "bad regular expression /[/"),
        ("constraint:node==/node-.*", "the regular expression /node-.* is not closed"),
    ],
)
def test_bad_rule_is_a_400_that_quotes_it(cluster, rule, problem):
    kind, _, text = rule.partition(":")
    body = json.dumps({"Image": "busybox", "Env": [rule]}).encode()
    status, answer, _ = cluster.api("POST", "/v1.41/containers/create", body,
                                    {"Content-Type": "application/json"})
    assert status == 400
    assert f'invalid {kind} "{text}"' in answer["message"] and problem in answer["message"]
    before = cluster.container_ids()
    proc = run(cluster, "-e", rule, "busybox", "true", check=False)
    assert proc.returncode != 0 and f'invalid {kind} "{text}"' in proc.stderr.decode()
    assert cluster.container_ids() == before


def test_bad_rule_in_the_classic_label_is_a_400(cluster):
    body = json.dumps({"Image": "busybox",
                       "Labels": {"com.docker.swarm.affinities": '["image==/(/"]'}}).encode()
    status, answer, _ = cluster.api("POST", "/v1.41/containers/create", body,
                                    {"Content-Type": "application/json"})
    assert status == 400 and 'invalid affinity "image==/(/"' in answer["message"]


def test_constraint_on_a_label_no_node_has_is_the_no_node_error(cluster):
    proc = run(cluster, "-e", "constraint:gpu==yes", "busybox", "true", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert HEADER in err and "[gpu==yes] (removed 2 nodes)" in err

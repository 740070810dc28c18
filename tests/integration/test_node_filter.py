"""The `node` filter of classic Swarm on `docker network ls`, `docker volume ls` and
`docker images`, and where a network made without a node goes, with the real docker CLI
against two real engines through the manager.

Classic's rules (docker-archive/classicswarm, api/handlers.go getNetworks, getVolumes,
getImagesJSON; cluster/network.go Networks.Filter and Networks.Get): a `node` value is a
node's exact name (images: or its ID); the manager answers it, the engines never see it
(they refuse the key).
"""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.docker
BUILTIN = {"bridge", "host", "none"}


def engine_of(cluster, node: str):
    return cluster.engines[cluster.names.index(node)]


def lines(proc) -> list[str]:
    return proc.stdout.decode().split()


def node_id(cluster, node: str) -> str:
    return cluster.manager.state.node_by_name(node).id


@pytest.fixture
def unique(cluster):
    """Unique names; the networks and volumes a test made are removed on every engine."""
    made: list[str] = []

    def name(prefix: str) -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:6]}")
        return made[-1]

    yield name
    for engine in cluster.engines:
        for item in made:
            engine.docker("network", "rm", item, check=False)
            engine.docker("volume", "rm", "-f", item, check=False)
            engine.docker("rmi", f"{item}:1", check=False)


def test_engines_refuse_the_node_filter_so_the_manager_must_answer_it(cluster):
    """Why the key is the manager's: passed on, every listing would be a 400."""
    engine = cluster.engines[0]
    for args in (("network", "ls"), ("volume", "ls"), ("images",)):
        proc = engine.docker(*args, "--filter", "node=node-a", check=False)
        assert proc.returncode != 0 and b"nvalid filter 'node'" in proc.stderr, args


def test_network_ls_node_filter_lists_that_nodes_networks(cluster, unique):
    here, everywhere = unique("nfa"), unique("nfall")
    cluster.docker("network", "create", f"node-a/{here}")
    cluster.docker("network", "create", everywhere)
    for node in ("node-a", "node-b"):
        listed = lines(cluster.docker("network", "ls", "--filter", f"node={node}",
                                      "--format", "{{.Name}}"))
        own = lines(engine_of(cluster, node).docker("network", "ls", "--format", "{{.Name}}"))
        assert sorted(listed) == sorted(f"{node}/{name}" for name in own)
    listed = lines(cluster.docker("network", "ls", "--filter", "node=node-a", "--format",
                                  "{{.Name}}"))
    assert {f"node-a/{here}", f"node-a/{everywhere}", "node-a/bridge"} <= set(listed)
    # By the node's ID too, and several values select several nodes (classic ANDs them
    # in Networks.Filter, which can never match: a network is on one engine).
    by_id = lines(cluster.docker("network", "ls", "--filter", f"node={node_id(cluster, 'node-b')}",
                                 "--filter", f"name={everywhere}", "--format", "{{.Name}}"))
    assert by_id == [f"node-b/{everywhere}"]
    both = lines(cluster.docker("network", "ls", "--filter", "node=node-a", "--filter",
                                "node=node-b", "--filter", f"name={everywhere}", "--format",
                                "{{.Name}}"))
    assert sorted(both) == [f"node-a/{everywhere}", f"node-b/{everywhere}"]


def test_node_values_are_exact_names_not_patterns(cluster):
    """classic compares `volume.Engine.Name == node` (getVolumes): no prefix, glob or
    regex; a node that does not exist lists nothing, without an error."""
    for value in ("node", "node-*", "node-.", "mars"):
        for args in (("network", "ls", "-q"), ("volume", "ls", "-q"), ("images", "-q")):
            proc = cluster.docker(*args, "--filter", f"node={value}")
            assert lines(proc) == [], (value, args)


def test_network_ls_name_filter_as_classic(cluster, unique):
    """cluster/network.go Networks.Filter: a name value matches the plain name as the
    Engine does (substring / regex), or is exactly `node/name` (Networks.Get)."""
    net = unique("nfname")
    cluster.docker("network", "create", net)
    names = lines(cluster.docker("network", "ls", "--filter", f"name={net}", "--format",
                                 "{{.Name}}"))
    assert sorted(names) == [f"node-a/{net}", f"node-b/{net}"]
    qualified = lines(cluster.docker("network", "ls", "--filter", f"name=node-b/{net}",
                                     "--format", "{{.Name}}"))
    assert qualified == [f"node-b/{net}"]
    regex = lines(cluster.docker("network", "ls", "--filter", f"name=^{net}$",
                                 "--format", "{{.Name}}"))
    assert sorted(regex) == [f"node-a/{net}", f"node-b/{net}"]
    # By a copy's short ID: that copy only.
    short = engine_of(cluster, "node-a").docker("network", "inspect", "-f", "{{.Id}}", net
                                                ).stdout.decode().strip()[:12]
    assert lines(cluster.docker("network", "ls", "--filter", f"name={short}", "--format",
                                "{{.Name}}")) == [f"node-a/{net}"]


def test_network_ls_type_filter_with_node(cluster, unique):
    net = unique("nftype")
    cluster.docker("network", "create", net)
    custom = lines(cluster.docker("network", "ls", "--filter", "type=custom", "--filter",
                                  "node=node-b", "--format", "{{.Name}}"))
    assert f"node-b/{net}" in custom and not BUILTIN & {n.split("/")[1] for n in custom}
    builtin = lines(cluster.docker("network", "ls", "--filter", "type=builtin", "--filter",
                                   "node=node-a", "--format", "{{.Name}}"))
    assert sorted(builtin) == ["node-a/bridge", "node-a/host", "node-a/none"]
    # classic (api/handlers.go getNetworks) and the Engine refuse another type with a 400.
    status, body, _ = cluster.api("GET", "/networks?filters=" + json.dumps(
        {"type": {"bogus": True}, "node": {"node-a": True}}).replace(" ", ""))
    assert (status, body) == (400, {"message": "Invalid filter: 'type'='bogus'"})


def test_volume_ls_node_filter(cluster, unique):
    here, everywhere = unique("nvb"), unique("nvall")
    cluster.docker("volume", "create", f"node-b/{here}")
    cluster.docker("volume", "create", everywhere)
    for node in ("node-a", "node-b"):
        listed = lines(cluster.docker("volume", "ls", "--filter", f"node={node}", "--format",
                                      "{{.Name}}"))
        own = lines(engine_of(cluster, node).docker("volume", "ls", "--format", "{{.Name}}"))
        assert sorted(listed) == sorted(f"{node}/{name}" for name in own)
    listed = lines(cluster.docker("volume", "ls", "--filter", "node=node-b", "--filter",
                                  f"name={here}", "--format", "{{.Name}}"))
    assert listed == [f"node-b/{here}"]
    assert lines(cluster.docker("volume", "ls", "--filter", "node=node-a", "--filter",
                                f"name={here}", "-q")) == []
    both = lines(cluster.docker("volume", "ls", "-q", "--filter", "node=node-a", "--filter",
                                f"node={node_id(cluster, 'node-b')}", "--filter",
                                f"name={everywhere}"))
    assert sorted(both) == [f"node-a/{everywhere}", f"node-b/{everywhere}"]


def test_images_node_filter_by_name_or_id(cluster, unique):
    """getImagesJSON keeps an image when a value is its engine's Name or ID."""
    tag = unique("nfimg")
    engine_of(cluster, "node-b").docker("tag", "busybox:latest", f"{tag}:1")
    for node in ("node-a", "node-b"):
        for value in (node, node_id(cluster, node)):
            listed = lines(cluster.docker("images", "-q", "--no-trunc", "--filter",
                                          f"node={value}"))
            own = lines(engine_of(cluster, node).docker("images", "-q", "--no-trunc"))
            assert sorted(set(listed)) == sorted(set(own)), value
    tags = cluster.docker("images", "--filter", "node=node-a", "--format",
                          "{{.Repository}}:{{.Tag}}").stdout.decode()
    assert f"{tag}:1" not in tags and "busybox:latest" in tags
    mine = lines(cluster.docker("images", "--filter", "node=node-b", "--filter",
                                f"reference={tag}:*", "--format", "{{.Repository}}:{{.Tag}}"))
    assert mine == [f"{tag}:1"]


# ------------------------------------------------------------------ networks without a node
def test_network_without_a_node_answers_ls_inspect_and_rm_as_one_network(cluster, unique):
    """Made on every healthy node (docs/swarm-compat.md says why, not on one node as
    classic's CreateNetwork in cluster/swarm/cluster.go does); inspect by the plain name
    answers, `rm node/name` removes that node's copy only, `rm name` every copy."""
    net = unique("nfeach")
    made_id = cluster.docker("network", "create", net).stdout.decode().strip()
    ids = {node: engine_of(cluster, node).docker("network", "inspect", "-f", "{{.Id}}", net
                                                 ).stdout.decode().strip()
           for node in ("node-a", "node-b")}
    assert made_id in ids.values()
    inspected = json.loads(cluster.docker("network", "inspect", net).stdout)
    assert len(inspected) == 1 and inspected[0]["Name"] == net
    assert inspected[0]["Id"] in ids.values()
    again = cluster.docker("network", "create", net, check=False)
    assert again.returncode != 0
    assert f"network with name {net} already exists".encode() in again.stderr
    cluster.docker("network", "rm", f"node-a/{net}")
    listed = lines(cluster.docker("network", "ls", "--filter", f"name={net}", "--format",
                                  "{{.Name}}"))
    assert listed == [f"node-b/{net}"]
    cluster.docker("network", "rm", net)
    assert lines(cluster.docker("network", "ls", "-q", "--filter", f"name={net}")) == []
    for node in ("node-a", "node-b"):
        assert engine_of(cluster, node).docker("network", "inspect", net,
                                               check=False).returncode != 0


def test_bad_filters_are_a_400_and_list_nothing(cluster):
    for path in ("/networks", "/volumes", "/images/json"):
        status, body, _ = cluster.api("GET", f"{path}?filters=%7Bnode")
        assert status == 400 and "invalid character" in body["message"], path
        status, body, _ = cluster.api("GET", f"{path}?filters=%7B%22node%22%3A%5B1%5D%7D")
        assert (status, body) == (400, {"message": "invalid filter 'node': values must be "
                                                   "strings"}), path

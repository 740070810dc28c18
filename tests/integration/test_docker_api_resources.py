"""Networks, volumes and API versions through the manager, with the real docker CLI
against two real engines (node-a with a bridge, node-b with --bridge=none)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid

import pytest

from tests.support.cluster import wait_for

pytestmark = pytest.mark.docker
BUILTIN = {"bridge", "host", "none"}


def _networks(engine) -> set[str]:
    out = engine.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
    return set(out) - BUILTIN


def _volumes(engine) -> set[str]:
    return set(engine.docker("volume", "ls", "-q").stdout.decode().split())


@pytest.fixture
def clean(cluster):
    """Unique names; containers, networks and volumes a test made are removed after."""
    before = cluster.container_ids()
    nets = {e.socket: _networks(e) for e in cluster.engines}
    vols = {e.socket: _volumes(e) for e in cluster.engines}
    yield lambda prefix="r": f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.remove_new_containers(before)
    for engine in cluster.engines:
        for net in _networks(engine) - nets[engine.socket]:
            engine.docker("network", "rm", net, check=False)
        for vol in _volumes(engine) - vols[engine.socket]:
            engine.docker("volume", "rm", "-f", vol, check=False)


def on_engine(cluster, node: str, *args: str) -> subprocess.CompletedProcess:
    engine = cluster.engines[cluster.names.index(node)]
    return engine.docker(*args, check=False)


def post(cluster, path: str, body: object) -> tuple[int, object]:
    status, answer, _ = cluster.api("POST", path, json.dumps(body).encode(),
                                    {"Content-Type": "application/json"})
    return status, answer


# ------------------------------------------------------------------ networks
def test_network_without_a_node_is_made_on_every_node_and_replicas_spread(cluster, clean):
    net = clean("net")
    cluster.docker("network", "create", net)
    listed = cluster.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
    assert {f"node-a/{net}", f"node-b/{net}", "node-a/bridge", "node-b/host"} <= set(listed)
    assert cluster.docker("network", "inspect", "-f", "{{.Name}} {{.Driver}}", net
                          ).stdout.decode().strip() == f"{net} bridge"
    made = [clean("on") for _ in range(2)]
    for name in made:
        cluster.docker("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300")
    assert sorted(cluster.node_of(n) for n in made) == ["node-a", "node-b"]
    cluster.docker("rm", "-f", *made)
    cluster.docker("network", "rm", net)
    for node in ("node-a", "node-b"):
        assert on_engine(cluster, node, "network", "inspect", net).returncode != 0


def test_network_on_a_chosen_node_pins_its_containers(cluster, clean):
    net = clean("pin")
    cluster.docker("network", "create", f"node-b/{net}")
    assert on_engine(cluster, "node-b", "network", "inspect", net).returncode == 0
    assert on_engine(cluster, "node-a", "network", "inspect", net).returncode != 0
    first, second = clean("p1"), clean("p2")
    for name, ref in ((first, net), (second, f"node-b/{net}")):
        cluster.docker("run", "-d", "--name", name, "--network", ref, "busybox", "sleep", "300")
        assert cluster.node_of(name) == "node-b"
    mode = cluster.docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", second).stdout
    assert mode.decode().strip() == net
    # A rule that contradicts the network's node: nothing fits, and the error says why.
    proc = cluster.docker("run", "-d", "--network", net, "-e", "constraint:node==node-a",
                          "busybox", "true", check=False)
    assert proc.returncode != 0
    assert b"Unable to find a node that satisfies the following conditions" in proc.stderr


def test_network_by_constraint_label_lands_on_the_matching_node(cluster, clean):
    net = clean("lab")
    label = 'com.docker.swarm.constraints=["node==node-a"]'
    cluster.docker("network", "create", "--label", label, net)
    listed = cluster.docker("network", "ls", "-f", f"name={net}", "--format", "{{.Name}}")
    assert listed.stdout.decode().split() == [f"node-a/{net}"]


def test_connect_and_disconnect_go_to_the_containers_node(cluster, clean):
    net, name = clean("con"), clean("c")
    cluster.docker("network", "create", net)
    cluster.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    node = cluster.node_of(name)
    cluster.docker("network", "connect", "--alias", "buddy", net, name)
    nets = cluster.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).stdout
    assert net in json.loads(nets)
    assert "buddy" in json.loads(nets)[net]["Aliases"]
    ids = cluster.docker("ps", "-q", "-f", f"network={net}").stdout.decode().split()
    assert len(ids) == 1
    cluster.docker("network", "disconnect", net, name)
    nets = cluster.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).stdout
    assert net not in json.loads(nets)
    other = "node-b" if node == "node-a" else "node-a"
    proc = cluster.docker("network", "connect", f"{other}/{net}", name, check=False)
    assert proc.returncode != 0 and f"runs on {node}".encode() in proc.stderr


def test_connect_by_the_id_create_answered_reaches_every_nodes_copy(cluster, clean):
    """`docker network create` answers one copy's ID; connecting a container on any node
    by that ID (what the SDK does) uses that node's copy."""
    net = clean("byid")
    net_id = cluster.docker("network", "create", net).stdout.decode().strip()
    for node in ("node-a", "node-b"):
        name = clean(node)
        cluster.docker("run", "-d", "--name", name, "-e", f"constraint:node=={node}",
                       "busybox", "sleep", "300")
        cluster.docker("network", "connect", net_id, name)
        nets = cluster.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                              name).stdout
        assert net in json.loads(nets), f"{name} on {node} not on {net}"


def test_network_prune_fans_out(cluster, clean):
    net = clean("prn")
    cluster.docker("network", "create", net)
    out = cluster.docker("network", "prune", "-f").stdout.decode()
    assert f"node-a/{net}" in out and f"node-b/{net}" in out
    assert not any(net in _networks(e) for e in cluster.engines)


def test_network_bad_input(cluster, clean):
    status, body = post(cluster, "/v1.41/networks/create", {"Driver": "bridge"})
    assert status == 400 and "network name is required" in body["message"]
    status, body, _ = cluster.api("GET", "/networks/nosuch")
    assert (status, body) == (404, {"message": "network nosuch not found"})
    status, body, _ = cluster.api("GET", "/networks/mars/bridge")
    assert status == 404 and body["message"] == "No such node: mars (in mars/bridge)"
    status, body = post(cluster, "/networks/bridge/connect", {"Container": "nosuch"})
    assert status == 404 and body["message"] == "No such container: nosuch"
    status, body = post(cluster, "/networks/bridge/connect", {})
    assert status == 400 and "Container is required" in body["message"]
    proc = cluster.docker("network", "rm", "nosuch", check=False)
    assert proc.returncode != 0 and b"network nosuch not found" in proc.stderr
    # As with one engine: the create passes, the start names the missing network.
    proc = cluster.docker("run", "-d", "--network", "nonet", "busybox", "true", check=False)
    assert proc.returncode != 0 and b"network nonet not found" in proc.stderr


# ------------------------------------------------------------------ volumes
def test_volume_on_every_node_or_a_chosen_one(cluster, clean):
    everywhere, here = clean("vall"), clean("vone")
    cluster.docker("volume", "create", everywhere)
    cluster.docker("volume", "create", f"node-a/{here}")
    listed = cluster.docker("volume", "ls", "--format", "{{.Name}}").stdout.decode().split()
    assert {f"node-a/{everywhere}", f"node-b/{everywhere}", f"node-a/{here}"} <= set(listed)
    assert f"node-b/{here}" not in listed
    inspect = json.loads(cluster.docker("volume", "inspect", f"node-a/{here}").stdout)
    assert inspect[0]["Name"] == here and inspect[0]["Driver"] == "local"
    name = clean("vc")
    cluster.docker("run", "-d", "--name", name, "-v", f"node-a/{here}:/data", "busybox",
                   "sh", "-c", "echo kept > /data/f; sleep 300")
    assert cluster.node_of(name) == "node-a"
    wait_for(lambda: cluster.docker("exec", name, "cat", "/data/f").stdout == b"kept\n",
             what="the volume's file")
    cluster.docker("rm", "-f", name)
    cluster.docker("volume", "rm", everywhere, f"node-a/{here}")
    assert not any({everywhere, here} & _volumes(e) for e in cluster.engines)


def test_volume_prune_and_bad_input(cluster, clean):
    vol = clean("vp")
    cluster.docker("volume", "create", vol)
    out = cluster.docker("volume", "prune", "-f").stdout.decode()
    assert f"node-a/{vol}" in out and f"node-b/{vol}" in out
    status, body, _ = cluster.api("GET", "/volumes/nosuch")
    assert (status, body) == (404, {"message": "get nosuch: no such volume"})
    status, body = post(cluster, "/volumes/create", ["not", "an", "object"])
    assert status == 400
    status, body, _ = cluster.api("DELETE", "/volumes/mars/v")
    assert status == 404 and "No such node: mars" in body["message"]


# ------------------------------------------------------------------ API versions
def test_every_version_from_1_24_is_answered(cluster, clean):
    status, body, head = cluster.api("GET", "/v1.24/version")
    assert status == 200 and (body["ApiVersion"], body["MinAPIVersion"]) == ("1.41", "1.24")
    for version in ("1.24", "1.30", "1.41"):
        status, body, _ = cluster.api("GET", f"/v{version}/containers/json?all=1")
        assert status == 200 and isinstance(body, list), version
        status, body, _ = cluster.api("GET", f"/v{version}/networks")
        assert status == 200 and isinstance(body, list), version
    status, body, _ = cluster.api("GET", "/v1.23/containers/json")
    assert status == 400 and "Minimum supported API version is 1.24" in body["message"]


@pytest.mark.parametrize("version", ["1.24", "1.30", "1.41"])
def test_cli_at_an_older_api_version_runs_attached(cluster, clean, version):
    """`docker run` before 1.30 waits for container events, not `wait?condition`."""
    name = clean("old")
    proc = subprocess.run(["docker", "-H", cluster.url, "run", "--name", name, "busybox",
                           "echo", f"hi-{version}"], capture_output=True, timeout=30,
                          env={**os.environ, "DOCKER_API_VERSION": version})
    assert (proc.returncode, proc.stdout) == (0, f"hi-{version}\n".encode()), proc.stderr
    version_out = subprocess.run(["docker", "-H", cluster.url, "version", "--format",
                                  "{{.Client.APIVersion}}"], capture_output=True, timeout=30)
    assert version_out.stdout.strip() == b"1.41"  # CLI 28 negotiated down


def test_events_head_comes_before_any_event(cluster):
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1.24/events HTTP/1.1\r\nHost: flock\r\n\r\n")
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert time.monotonic() - started < 3

"""Classic Swarm 1.2.9's words where scripts look for them, and a Server Version that
tools which detect classic Swarm recognise: the real docker CLI and SDK against a
manager over two real engines (node-a with a bridge, node-b with --bridge=none).

Each expected text is cited from docker-archive/classicswarm (v1.2.9)."""

from __future__ import annotations

import re
import tarfile
import uuid

import docker
import pytest

from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.docker

# An image ID no node has: classic's test/integration/api/run.bats "docker run".
ABSENT_ID = "4e8aa3148a132f19ec560952231c4d39522043994df7d2dc239942c0f9424ebd"


def ids(cluster) -> list[set[str]]:
    return [set(found) for found in cluster.container_ids().values()]


# ------------------------------------------------------------------ item 4: identity
def test_version_and_info_start_with_classics_swarm_prefix_and_say_flock(cluster):
    # api/handlers.go getVersion and getInfo answer "swarm/" + version.VERSION (1.2.9);
    # test/integration/api/version.bats matches `^swarm/[0-9]+\.[0-9]+\.[0-9]+.*$`, and
    # tools test `client.version()["Version"].startswith("swarm")`.
    version = cluster.docker("version", "--format", "{{.Server.Version}}").stdout.decode()
    assert version.strip() == "swarm/1.2.9 flock/0.1.0"
    assert re.match(r"^swarm/[0-9]+\.[0-9]+\.[0-9]+.*$", version)
    info = cluster.docker("info", "--format", "{{.ServerVersion}}").stdout.decode().strip()
    assert info == "swarm/1.2.9 flock/0.1.0"
    client = docker.DockerClient(base_url=cluster.url)
    try:
        answer = client.version()
        assert answer["Version"].startswith("swarm") and "flock/" in answer["Version"]
        assert answer["Platform"]["Name"] == "Flock"
        assert client.info()["ServerVersion"].startswith("swarm/1.2.9 ")
    finally:
        client.close()


# ------------------------------------------------------------------ item 3: messages
def test_reservations_that_fit_nowhere_say_no_resources_available(cluster, names):
    before = ids(cluster)
    # Every filter passes, no node has the memory: scheduler/strategy/weighted_node.go
    # weighNodes returns strategy.ErrNoResourcesAvailable, whose text is this.
    proc = cluster.docker("run", "-d", "--name", names(), "-m", "100g", "busybox", "true",
                          check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "no resources available to schedule container" in err
    assert "[available Memory] (removed 2 nodes; 100 GiB requested)" in err
    assert "Unable to find a node" not in err
    # A filter that removes every node keeps classic's list (scheduler/filter/filter.go).
    proc = cluster.docker("run", "-d", "-m", "100g", "-e", "constraint:node==nowhere",
                          "busybox", "true", check=False)
    err = proc.stderr.decode()
    assert "Unable to find a node that satisfies the following conditions" in err
    assert "[node==nowhere] (removed 2 nodes)" in err
    assert ids(cluster) == before


def test_reschedule_policy_conflicts_in_classics_words(cluster, names):
    # test/integration/rescheduling.bats "reschedule conflict", same command lines; the
    # texts are cluster/config.go Validate's.
    before = ids(cluster)
    proc = cluster.docker("run", "--name", names(), "-dit", "--label",
                          'com.docker.swarm.reschedule-policies=["false"]', "busybox", "sh",
                          check=False)
    assert proc.returncode != 0
    assert "invalid reschedule policy: false" in proc.stderr.decode()
    proc = cluster.docker("run", "--name", names(), "-dit", "-e", "reschedule:off", "--label",
                          'com.docker.swarm.reschedule-policies=["on-node-failure"]', "-e",
                          "reschedule:off", "busybox", "sh", check=False)
    assert proc.returncode != 0
    assert "too many reschedule policies" in proc.stderr.decode()
    assert ids(cluster) == before


def test_save_of_images_on_different_nodes(cluster, tmp_path):
    # test/integration/api/save.bats "docker save multi-images"; the text and its 404
    # are api/handlers.go getImages'.
    tag = uuid.uuid4().hex[:6]
    first, second = f"only-a-{tag}", f"only-b-{tag}"
    cluster.engines[0].docker("tag", "busybox", first)
    cluster.engines[1].docker("tag", "busybox", second)
    try:
        out = tmp_path / "images.tar"
        proc = cluster.docker("save", "-o", str(out), "busybox", first, second, check=False)
        assert proc.returncode != 0
        assert (f"Unable to find an engine containing all images: [busybox {first} {second}]"
                in proc.stderr.decode())
        status, answer, _ = cluster.api(
            "GET", f"/images/get?names=busybox&names={first}&names={second}")
        assert status == 404
        assert answer["message"].startswith("Unable to find an engine containing all images")
        # Images that one node holds together are saved from it.
        cluster.docker("save", "-o", str(out), "busybox", first)
        with tarfile.open(out) as archive:
            assert "manifest.json" in archive.getnames()
    finally:
        cluster.engines[0].docker("rmi", first, check=False)
        cluster.engines[1].docker("rmi", second, check=False)


def test_run_of_an_image_id_no_node_has(cluster, names):
    # test/integration/api/run.bats "docker run": `docker run -d <64 hex>` says "cannot
    # specify 64-byte hexadecimal strings" (classic's CLI pulled after the 404 and the
    # pull refused the ID; distribution/reference ParseNormalizedNamed's words).
    before = ids(cluster)
    proc = cluster.docker("run", "-d", "--name", names(), ABSENT_ID, check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "No such image" in err
    assert f"invalid repository name ({ABSENT_ID}), cannot specify 64-byte hexadecimal " \
           "strings" in err
    assert ids(cluster) == before
    # The ID of an image a node has runs there, as with classic.
    image_id = cluster.engines[0].docker("inspect", "-f", "{{.Id}}", "busybox").stdout
    hex_id = image_id.decode().strip().removeprefix("sha256:")
    name = names()
    cluster.docker("run", "-d", "--name", name, hex_id, "sleep", "60")
    assert cluster.node_of(name) == "node-a"


def test_an_ambiguous_network_name_is_refused(cluster):
    # `host` is on every node, as `bridge` is in classic's test/integration/api/
    # network.bats "docker network inspect" (`network inspect bridge` must fail). The 404
    # "No such network: NAME" is api/handlers.go getNetwork's: cluster/network.go
    # Networks.Get gives nothing for a name with several matches.
    proc = cluster.docker("network", "inspect", "host", check=False)
    assert proc.returncode != 0 and "No such network: host" in proc.stderr.decode()
    # The reason is in the answer (docker CLI 20.10 prints its own text for any 404,
    # later CLIs the server's message), so it is read from the API.
    status, answer, _ = cluster.api("GET", "/networks/host")
    said = answer["message"]
    assert status == 404 and said.startswith("No such network: host")
    assert "ambiguous" in said and "node-a/host" in said and "node-b/host" in said
    # One node's is there for the asking, and a unique name answers.
    one = cluster.docker("network", "inspect", "-f", "{{.Name}}", "node-b/host")
    assert one.stdout.decode().strip() == "host"
    bridge = cluster.docker("network", "inspect", "-f", "{{.Name}}", "bridge")  # node-a's
    assert bridge.stdout.decode().strip() == "bridge"


def test_one_network_made_on_several_nodes_is_not_ambiguous(cluster):
    """Networks the manager made together (one create without a node) are one network:
    inspect by name answers, as classic answered for its one multi-host network."""
    name = f"one-{uuid.uuid4().hex[:6]}"
    cluster.docker("network", "create", name)
    try:
        out = cluster.docker("network", "inspect", "-f", "{{.Name}}", name).stdout
        assert out.decode().strip() == name
    finally:
        cluster.docker("network", "rm", name, check=False)
        for engine in cluster.engines:
            engine.docker("network", "rm", name, check=False)


def test_calls_to_a_container_on_an_unhealthy_node(engine_pair, tmp_path):
    """api/utils.go getContainerFromVars: a container whose engine is not healthy is
    answered "Container NAME running on unhealthy node NODE" with a 500, for logs and
    every call proxied to the container (api/handlers.go getContainerJSON too)."""
    made = Cluster(engine_pair, tmp_path, ["node-a", "node-b"])
    name = f"far-{uuid.uuid4().hex[:6]}"
    try:
        made.docker("run", "-d", "--name", name, "-e", "constraint:node==node-b",
                    "busybox", "sh", "-c", "echo hello; sleep 300")
        wait_for(lambda: b"hello" in made.docker("logs", name).stdout, what="logs")
        made.lt.loop.call_soon_threadsafe(made.stops[1].set)  # node-b's agent goes away
        state = made.manager.state
        wait_for(lambda: not state.node_by_name("node-b").healthy, 30, "node-b unhealthy")
        expected = f"Container {name} running on unhealthy node node-b"
        proc = made.docker("logs", name, check=False)
        assert proc.returncode != 0 and expected in proc.stderr.decode()
        why = state.node_by_name("node-b").error  # Flock adds why, when it knows
        assert why and f"{expected} ({why})" in proc.stderr.decode()
        for path in (f"/containers/{name}/logs?stdout=1", f"/containers/{name}/json",
                     f"/containers/{name}/top"):
            status, answer, _ = made.api("GET", path)
            assert status == 500 and answer["message"].startswith(expected), path
        proc = made.docker("stop", name, check=False)
        assert proc.returncode != 0 and expected in proc.stderr.decode()
    finally:
        made.close()
        engine_pair[1].docker("rm", "-f", name, check=False)

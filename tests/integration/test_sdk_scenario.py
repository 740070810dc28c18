"""The Docker SDK for Python through the manager: one scenario (run, logs, exec_run,
attach via socket, events, stats, pull, images, networks, volumes, remove, and the
errors on the way) run against the manager and against a single engine; every step
must succeed or fail the same way on both."""

from __future__ import annotations

import socket
import time
import uuid

import docker
import docker.errors
import pytest

from flock.docker_compat.stdcopy import demux

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def registry(registry, engine_pair):
    """The shared one (tests/integration/conftest.py), holding busybox as REG/sdk:1."""
    registry.push_busybox(engine_pair[0], "sdk:1")
    return registry


def outcome(step):
    """What a step did: its result, or the error class and status it failed with."""
    try:
        return ("ok", step())
    except docker.errors.APIError as exc:
        return ("error", type(exc).__name__, exc.status_code)
    except docker.errors.DockerException as exc:
        return ("error", type(exc).__name__)


def attach_round_trip(client: docker.DockerClient, name: str) -> list[tuple[int, bytes]]:
    api = client.api
    cid = api.create_container("busybox", ["sh", "-c", "cat; echo bye >&2"], stdin_open=True,
                               name=name)["Id"]
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = sock._sock
    api.start(cid)
    raw.sendall(b"hello\n")
    raw.shutdown(socket.SHUT_WR)
    raw.settimeout(20)
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    raw.close()
    api.wait(cid, timeout=20)
    return sorted(demux(data))  # the engine copies stdout and stderr independently


def scenario(client: docker.DockerClient, registry) -> dict[str, object]:
    tag = uuid.uuid4().hex[:6]
    name, net, vol = f"sdk-{tag}", f"sdknet-{tag}", f"sdkvol-{tag}"
    ref = registry.ref("sdk")
    seen: dict[str, object] = {}
    since = time.time() - 1
    box = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2; sleep 300"],
                                name=name, detach=True)
    try:
        deadline = time.monotonic() + 10
        while b"err" not in box.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen["logs"] = (box.logs(stdout=True, stderr=False), box.logs(stdout=False, stderr=True))
        seen["exec"] = tuple(box.exec_run(["echo", "from exec"]))
        seen["exec_fail"] = box.exec_run(["sh", "-c", "exit 3"]).exit_code
        seen["stats"] = sorted(k for k in ("cpu_stats", "memory_stats", "pids_stats")
                               if k in box.stats(stream=False))
        seen["attach"] = attach_round_trip(client, f"{name}-att")
        seen["pull"] = outcome(lambda: client.images.pull(ref, tag="1").tags)
        seen["images"] = sorted(t for i in client.images.list(name=ref) for t in i.tags)
        seen["pull_missing"] = outcome(lambda: client.images.pull(registry.ref("nosuch"), "1"))
        network = client.networks.create(net)
        seen["network"] = client.networks.get(net).name == net
        network.connect(box)
        box.reload()
        seen["connected"] = net in box.attrs["NetworkSettings"]["Networks"]
        network.disconnect(box)
        network.remove()
        seen["network_gone"] = outcome(lambda: client.networks.get(net))
        volume = client.volumes.create(vol)
        seen["volume"] = client.volumes.get(vol).name == vol
        volume.remove()
        seen["volume_gone"] = outcome(lambda: client.volumes.get(vol))
        seen["missing"] = [outcome(lambda: client.containers.get("sdk-nosuch")),
                           outcome(lambda: client.images.get("sdk-nosuch:1"))]
        seen["conflict"] = outcome(lambda: client.containers.create("busybox", name=name))
        seen["bad_name"] = outcome(lambda: client.containers.create("busybox", name="-bad"))
    finally:
        for leftover in (f"{name}-att", name):
            outcome(lambda n=leftover: client.containers.get(n).remove(force=True))
        outcome(lambda: client.images.remove(f"{ref}:1", force=True))
    seen["removed"] = outcome(lambda: client.containers.get(name))
    events = client.events(since=since, until=time.time() + 1, decode=True,
                           filters={"container": name})
    seen["events"] = sorted({e["Action"] for e in events} & {"create", "start", "destroy"})
    return seen


def test_the_sdk_sees_the_manager_as_one_engine(cluster, registry):
    direct = docker.DockerClient(base_url=cluster.engines[0].url)
    through = docker.DockerClient(base_url=cluster.url)
    try:
        expected = scenario(direct, registry)
        got = scenario(through, registry)
    finally:
        direct.close()
        through.close()
    assert expected["logs"] == (b"out\n", b"err\n")
    assert expected["attach"] == [(1, b"hello\n"), (2, b"bye\n")]
    assert expected["events"] == ["create", "destroy", "start"]
    assert got == expected

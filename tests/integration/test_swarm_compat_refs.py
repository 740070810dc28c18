"""Reservations and references as classic Swarm 1.2.9 has them, through the manager with
the real docker CLI over real engines: `-c N` reserves N CPUs and reaches the engine as
that node's shares; the Swarm ID is a container reference; `ps --filter is-task`; the
`com.docker.swarm.whitelists` label of a volume create; `events --until` without replay.
The expected rules and texts are classic's, cited where each is checked."""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid

import pytest

from flock.manager.app import Manager, ManagerConfig
from tests.conftest import free_port
from tests.support.cluster import wait_for

pytestmark = pytest.mark.docker

WHITELISTS = "com.docker.swarm.whitelists"


def engine_of(cluster, node: str):
    return cluster.engines[cluster.names.index(node)]


def reserved_cpus(port: int, node: str) -> str:
    """The `Reserved CPUs` row of `node` in the manager's `docker info` (SystemStatus)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=30) as answer:
        pairs = json.loads(answer.read())["SystemStatus"]
    start = next(i for i, pair in enumerate(pairs) if pair[0] == " " + node)
    return dict(pairs[start + 1: start + 10])["  └ Reserved CPUs"]


# ---------------------------------------------------------------- item 5: -c N
def test_c_1_reserves_one_cpu_sent_as_the_nodes_shares_and_kept_after_a_restart(
        cluster, names):
    name = names("cpu")
    cluster.docker("run", "-d", "-c", "1", "--name", name, "busybox", "sleep", "300")
    node = cluster.node_of(name)
    engine = engine_of(cluster, node)
    ncpu = int(engine.docker("info", "-f", "{{.NCPU}}").stdout)
    # classic cluster/engine.go CreateContainer: ceil(CpuShares*1024 / e.Cpus).
    shares = engine.docker("inspect", "-f", "{{.HostConfig.CpuShares}}", name).stdout
    assert int(shares) == math.ceil(1024 / ncpu)
    assert reserved_cpus(cluster.port, node).startswith("1 / ")
    # A manager started now knows only what the engines say (classic updateContainer:
    # CpuShares * e.Cpus / 1024): it must read the same one CPU back.
    port = free_port()
    fresh = Manager(ManagerConfig(discovery="nodes://" + ",".join(cluster.addrs),
                                  hosts=[f"tcp://127.0.0.1:{port}"], heartbeat=2.0,
                                  failure_retry=1))
    cluster.lt.run(fresh.start())
    try:
        wait_for(lambda: len(fresh.state.healthy_nodes()) == 2, 30, "the new manager's nodes")
        assert reserved_cpus(port, node).startswith("1 / ")
    finally:
        cluster.lt.run(fresh.stop())


def test_update_c_n_is_n_cpus_too(cluster, names):
    name = names("upd")
    cluster.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    node = cluster.node_of(name)
    engine = engine_of(cluster, node)
    ncpu = int(engine.docker("info", "-f", "{{.NCPU}}").stdout)
    cluster.docker("update", "--cpu-shares", "1", name)
    shares = engine.docker("inspect", "-f", "{{.HostConfig.CpuShares}}", name).stdout
    assert int(shares) == math.ceil(1024 / ncpu)
    wait_for(lambda: reserved_cpus(cluster.port, node).startswith("1 / "), what="1 CPU")


# ------------------------------------------------------- item 7: references
def test_the_swarm_id_is_a_container_reference(cluster, names):
    name = names("sid")
    cid = cluster.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                         "echo hello; sleep 300").stdout.decode().strip()
    swarm_id = cluster.docker("inspect", "-f", '{{index .Config.Labels "com.docker.swarm.id"}}',
                              name).stdout.decode().strip()
    assert len(swarm_id) == 64 and swarm_id != cid
    # classic cluster/container.go Get: exact or 12-character Swarm ID, then a prefix.
    for ref in (swarm_id, swarm_id[:12], swarm_id[:20]):
        assert cluster.docker("inspect", "-f", "{{.Id}}", ref).stdout.decode().strip() == cid
    assert b"hello" in cluster.docker("logs", swarm_id).stdout
    cluster.docker("stop", "-t", "1", swarm_id)
    assert cluster.docker("inspect", "-f", "{{.State.Running}}", name).stdout == b"false\n"
    cluster.docker("start", swarm_id[:12])
    assert cluster.docker("inspect", "-f", "{{.State.Running}}", name).stdout == b"true\n"
    cluster.docker("rm", "-f", swarm_id)
    gone = cluster.docker("container", "inspect", swarm_id, check=False)
    assert gone.returncode != 0 and b"No such container" in gone.stderr


def test_ps_is_task_means_the_swarm_task_label(cluster, names):
    task, plain = names("task"), names("plain")
    # A swarm-mode engine labels its task containers com.docker.swarm.task (empty value).
    cluster.docker("create", "--name", task, "--label", "com.docker.swarm.task=", "busybox")
    cluster.docker("create", "--name", plain, "busybox")

    def listed(value: str) -> set[str]:
        out = cluster.docker("ps", "-a", "--filter", f"is-task={value}", "--format",
                             "{{.Names}}").stdout.decode().split()
        return {n.rsplit("/", 1)[-1] for n in out}

    # classic api/handlers.go getContainersJSON: is-task=true keeps the containers with
    # the label, is-task=false the others.
    assert task in listed("true") and plain not in listed("true")
    assert plain in listed("false") and task not in listed("false")
    bad = cluster.docker("ps", "--filter", "is-task=maybe", check=False)
    assert bad.returncode != 0 and b"Invalid filter 'is-task=maybe'" in bad.stderr


def volume_nodes(cluster, name: str) -> list[str]:
    return [node for node in cluster.names if engine_of(cluster, node).docker(
        "volume", "inspect", name, check=False).returncode == 0]


def test_volume_create_honours_the_whitelists_label(cluster):
    tag = uuid.uuid4().hex[:6]
    one, both, none = f"wl1-{tag}", f"wl2-{tag}", f"wl0-{tag}"
    try:
        # classic cluster/swarm/cluster.go CreateVolume + scheduler/filter/whitelist.go:
        # the volume goes to every node the whitelist names, `|` between names.
        cluster.docker("volume", "create", "--label", f'{WHITELISTS}=["node==node-b"]', one)
        assert volume_nodes(cluster, one) == ["node-b"]
        labels = engine_of(cluster, "node-b").docker(
            "volume", "inspect", "-f", "{{json .Labels}}", one).stdout
        assert json.loads(labels)[WHITELISTS] == '["node==node-b"]'  # kept, as classic
        cluster.docker("volume", "create", "--label",
                       f'{WHITELISTS}=["node==node-a|node-b"]', both)
        assert volume_nodes(cluster, both) == ["node-a", "node-b"]
        # The text classic's whitelist filter gives when no node is named.
        refused = cluster.docker("volume", "create", "--label",
                                 f'{WHITELISTS}=["node==nowhere"]', none, check=False)
        assert refused.returncode != 0 and (
            b"unable to find a node that satisfies the whitelist node==nowhere" in refused.stderr)
        assert volume_nodes(cluster, none) == []
        # Classic ignored these silently (a malformed label, `!=` read as `==`).
        for label, why in (("not json", b"expected a JSON list of strings"),
                           ('["node!=node-a"]', b"a whitelist names the nodes to use")):
            refused = cluster.docker("volume", "create", "--label", f"{WHITELISTS}={label}",
                                     none, check=False)
            assert refused.returncode != 0 and why in refused.stderr, refused.stderr
        assert volume_nodes(cluster, none) == []
    finally:
        for engine in cluster.engines:
            engine.docker("volume", "rm", one, both, none, check=False)


def events(cluster, query: str) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.port}/events?{query}",
                                timeout=60) as answer:
        return [json.loads(line) for line in answer.read().splitlines() if line.strip()]


def test_events_until_streams_live_events_only_as_classic(cluster, names):
    before = time.time() - 1
    past = names("past")
    cluster.docker("create", "--name", past, "busybox")
    # classic api/handlers.go getEvents: no replay, the stream just ends at `until`.
    assert events(cluster, f"until={time.time() - 0.5:.9f}") == []
    until = time.time() + 6
    live = names("live")
    request = urllib.request.urlopen(
        f"http://127.0.0.1:{cluster.port}/events?until={until:.9f}", timeout=60)
    with request as answer:  # the head comes once every node's stream is open
        cluster.docker("create", "--name", live, "busybox")
        seen = [json.loads(line) for line in answer.read().splitlines() if line.strip()]
    named = {e.get("Actor", {}).get("Attributes", {}).get("name") for e in seen}
    assert live in named and past not in named
    # With `since`, the engines' replay is kept (classic ignored `since`).
    replayed = events(cluster, f"since={before:.9f}&until={time.time():.9f}")
    assert past in {e.get("Actor", {}).get("Attributes", {}).get("name") for e in replayed}

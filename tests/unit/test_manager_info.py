"""`docker info`'s classic Swarm layout, built from the cluster state."""

from __future__ import annotations

import pytest

from flock.docker_compat.humanize import bytes_size
from flock.manager.api.docker.system import system_status
from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState

GIB = 1 << 30


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (512, "512 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
    (int(1.0213 * GIB), "1.021 GiB"), (512 << 20, "512 MiB"), (1000 * GIB, "1000 GiB"),
    (2048 * GIB, "2 TiB"),
])
def test_bytes_size_is_go_units(size, text):
    assert bytes_size(size) == text


def test_system_status_pairs():
    state = ClusterState()
    state.upsert_node(Node(id="B|2", name="beta", addr="10.0.0.2:4000", cpus=2,
                           memory=2 * GIB, labels={"ostype": "linux", "zone": "b"},
                           health=UNHEALTHY, error="Cannot reach agent 10.0.0.2:4000",
                           server_version="20.10.24", updated_at=1795428000))
    state.upsert_node(Node(id="A|1", name="alpha", addr="10.0.0.1:4000", cpus=4,
                           memory=GIB, labels={"storagedriver": "overlay2", "ostype": "linux"},
                           health=HEALTHY, server_version="20.10.24", updated_at=1795428000))
    for cid, st, cpus, mem in (("c1", "running", 1.0, 256 << 20), ("c2", "exited", 0.5, 0),
                               ("c3", "paused", 0, 0)):
        state.upsert_container(Container(id=cid, name=cid, node_id="A|1", state=st,
                                         reserved_cpus=cpus, reserved_memory=mem))
    rows = system_status(state, "spread", ["health", "port"])
    assert rows == [
        ["Role", "primary"], ["Strategy", "spread"], ["Filters", "health, port"],
        ["Nodes", "2"],
        [" alpha", "10.0.0.1:4000"],
        ["  └ ID", "A|1"],
        ["  └ Status", "Healthy"],
        ["  └ Containers", "3 (1 Running, 1 Paused, 1 Stopped)"],
        ["  └ Reserved CPUs", "1.5 / 4"],
        ["  └ Reserved Memory", "256 MiB / 1 GiB"],
        ["  └ Labels", "ostype=linux, storagedriver=overlay2"],
        ["  └ UpdatedAt", "2026-11-23T10:00:00Z"],
        ["  └ ServerVersion", "20.10.24"],
        [" beta", "10.0.0.2:4000"],
        ["  └ ID", "B|2"],
        ["  └ Status", "Unhealthy"],
        ["  └ Containers", "0 (0 Running, 0 Paused, 0 Stopped)"],
        ["  └ Reserved CPUs", "0 / 2"],
        ["  └ Reserved Memory", "0 B / 2 GiB"],
        ["  └ Labels", "ostype=linux, zone=b"],
        ["  └ Error", "Cannot reach agent 10.0.0.2:4000"],
        ["  └ UpdatedAt", "2026-11-23T10:00:00Z"],
        ["  └ ServerVersion", "20.10.24"],
    ]


def test_pending_reservations_count_in_reserved_figures():
    state = ClusterState()
    state.upsert_node(Node(id="A|1", name="alpha", addr="a:1", cpus=2, memory=GIB,
                           health=HEALTHY))
    state.reserve("A|1", "web", 1.0, 512 << 20)
    rows = dict(tuple(r) for r in system_status(state, "binpack", [])[4:])
    assert rows["  └ Reserved CPUs"] == "1 / 2"
    assert rows["  └ Reserved Memory"] == "512 MiB / 1 GiB"


def test_rows_kept_between_calls_follow_every_change():
    """The per-node rows are kept between calls (system.NodeRows); each kind of change
    must still show on the next one."""
    from dataclasses import replace

    state = ClusterState()
    state.upsert_node(Node(id="A|1", name="alpha", addr="a:1", cpus=2, memory=GIB,
                           health=HEALTHY, updated_at=1795428000))
    state.upsert_node(Node(id="B|2", name="beta", addr="b:2", cpus=2, memory=GIB,
                           health=HEALTHY, updated_at=1795428000))

    def alpha() -> dict[str, str]:
        rows = system_status(state, "spread", [])
        return dict(tuple(r) for r in rows[rows.index([" alpha", "a:1"]):][:9])

    assert alpha()["  └ Containers"] == "0 (0 Running, 0 Paused, 0 Stopped)"
    state.upsert_container(Container(id="c1", name="c1", node_id="A|1", state="running",
                                     reserved_cpus=1.0))
    assert alpha()["  └ Containers"] == "1 (1 Running, 0 Paused, 0 Stopped)"
    assert alpha()["  └ Reserved CPUs"] == "1 / 2"
    state.upsert_container(Container(id="c1", name="c1", node_id="A|1", state="exited",
                                     reserved_cpus=1.0))
    assert alpha()["  └ Containers"] == "1 (0 Running, 0 Paused, 1 Stopped)"
    token = state.reserve("A|1", "", 0.5, 0)
    assert alpha()["  └ Reserved CPUs"] == "1.5 / 2"
    state.release(token)
    state.set_health("A|1", UNHEALTHY, "gone")  # changed in place by the sync loop
    assert alpha()["  └ Status"] == "Unhealthy" and alpha()["  └ Error"] == "gone"
    state.set_health("A|1", HEALTHY)
    state.node("A|1").updated_at = 1795428061  # a heartbeat, in place
    assert alpha()["  └ UpdatedAt"] == "2026-11-23T10:01:01Z"
    state.upsert_node(replace(state.node("A|1"), labels={"zone": "a"}))
    assert alpha()["  └ Labels"] == "zone=a"
    state.remove_container("c1")
    assert alpha()["  └ Containers"] == "0 (0 Running, 0 Paused, 0 Stopped)"
    state.remove_node("B|2")
    assert [r for r in system_status(state, "spread", []) if r[0] == "Nodes"] == [["Nodes", "1"]]

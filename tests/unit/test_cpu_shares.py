"""`-c N` as classic Swarm means it: N CPUs, sent to the engine as the node's shares for
them and read back from those shares (classic: cluster/engine.go, CreateContainer
`ceil(CpuShares*1024 / e.Cpus)` and updateContainer `CpuShares * e.Cpus / 1024`)."""

from __future__ import annotations

from flock.manager.cluster.convert import create_body
from flock.manager.cluster.cpu_shares import engine_shares, reserved_cpus
from flock.manager.scheduler.spec import prepare_create_body, spec_from_create


def test_shares_are_classic_ceil_of_the_nodes_part():
    assert engine_shares(1, 2) == 512
    assert engine_shares(1, 3) == 342  # 341.33 rounded up, as classic's math.Ceil
    assert engine_shares(2, 1) == 2048
    assert engine_shares(1, 0) == 1024  # a node that reports no CPUs counts as one


def test_every_reservation_reads_back_as_itself():
    for node_cpus in (1, 2, 3, 7, 64, 1023):
        for cpus in range(0, node_cpus + 2):
            assert reserved_cpus(engine_shares(cpus, node_cpus), node_cpus) == cpus


def test_prepare_sends_the_nodes_shares_and_keeps_the_input():
    body = {"Image": "x", "HostConfig": {"CpuShares": 1, "Memory": 8}}
    out = prepare_create_body(body, spec_from_create(body), 2)
    assert out["HostConfig"] == {"CpuShares": 512, "Memory": 8}
    assert body["HostConfig"]["CpuShares"] == 1
    old = {"Image": "x", "CpuShares": 3}  # the pre-1.19 top-level field
    out = prepare_create_body(old, spec_from_create(old), 4)
    assert out["CpuShares"] == 768 and out["HostConfig"]["CpuShares"] == 768
    none = {"Image": "x", "HostConfig": {"NanoCpus": 10**9}}
    assert prepare_create_body(none, spec_from_create(none), 2)["HostConfig"] == {
        "NanoCpus": 10**9}


def test_a_rescheduled_body_asks_for_cpus_again_not_the_old_nodes_shares():
    inspect = {"Id": "a" * 64, "Config": {"Image": "x"}, "HostConfig": {"CpuShares": 342}}
    body = create_body(inspect, 3)
    assert body["HostConfig"]["CpuShares"] == 1
    assert spec_from_create(body).cpus == 1.0
    assert prepare_create_body(body, spec_from_create(body), 8)["HostConfig"]["CpuShares"] == 128

"""Replicated managers against a real etcd: one primary, replicas forward writes, and
a killed primary is replaced within the replication TTL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.etcd import have_etcd
from tests.support.procs import REPO, Manager, wait_for
from tests.support.replicated import ha_cluster

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]

TTL = 3.0


def roles(managers: list[Manager]) -> dict[str, dict[str, str]]:
    return {m.addr: m.role() for m in managers if m.alive}


def one_primary(managers: list[Manager]):
    seen = roles(managers)
    primaries = [addr for addr, role in seen.items() if role.get("Role") == "primary"]
    if len(primaries) != 1 or len(seen) != sum(m.alive for m in managers):
        return None
    if any(role.get("Primary") != primaries[0] for role in seen.values()):
        return None
    return primaries[0]


@pytest.fixture
def cluster(tmp_path):
    # request IDs in the logs: JSON, debug
    with ha_cluster(tmp_path, "/ha", f"{TTL:g}s",
                    options=("--log-format", "json", "-l", "debug")) as (etcd, _, managers):
        yield managers, etcd


def test_one_primary_replicas_forward_and_failover(cluster):
    managers, _ = cluster
    leader_addr = wait_for(lambda: one_primary(managers), 15, "exactly one primary")
    leader = next(m for m in managers if m.addr == leader_addr)
    replicas = [m for m in managers if m is not leader]
    assert replicas[0].role() == {"Role": "replica", "Primary": leader_addr}
    replicas[0].import_busybox()  # a write through a replica: done by the primary
    # The ID the replica gave a request (the client sent none) is the one the primary
    # logs it under, and the one the client gets back.
    create = urllib.request.Request(
        f"http://{replicas[0].addr}/containers/create?name=rid", method="POST",
        data=json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(create, timeout=30) as answer:
        assert answer.status == 201
        request_id = answer.headers["X-Request-ID"]

    def primary_lines() -> list[dict]:
        lines = [json.loads(line) for line in leader.output().splitlines()
                 if line.startswith("{")]
        return [e for e in lines if e.get("request_id") == request_id]

    assert any("POST /containers/create 201" in e["message"]
               for e in wait_for(primary_lines, 10, "the primary's line for the request"))
    replicas[1].docker("rm", "rid")
    for index in range(4):
        replicas[index % 2].docker("run", "-d", "--name", f"c{index}", "busybox",
                                   "sleep", "600")
    expected = [f"c{i}" for i in range(4)]

    def names(manager: Manager) -> list[str]:
        out = manager.docker("ps", "--format", "{{.Names}}")
        return sorted(line.split("/")[1] for line in out.splitlines())

    for manager in managers:
        wait_for(lambda m=manager: names(m) == expected, 10, f"{manager.name} to list all")
    # A name taken through one replica is refused through the other: one scheduler.
    result = subprocess.run(["docker", "-H", f"tcp://{replicas[1].addr}", "run", "-d",
                             "--name", "c0", "busybox", "true"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "already in use" in result.stderr

    leader.kill9()
    started = time.monotonic()
    new_leader = wait_for(lambda: one_primary(replicas), TTL + 2, "a new primary")
    elapsed = time.monotonic() - started
    assert new_leader in {m.addr for m in replicas} and elapsed <= TTL + 2
    for manager in replicas:
        assert names(manager) == expected  # every container, once
    survivor = next(m for m in replicas if m.addr != new_leader)
    survivor.docker("run", "-d", "--name", "after", "busybox", "sleep", "600")
    for manager in replicas:
        wait_for(lambda m=manager: "after" in names(m), 10, "the write after failover")
    survivor.docker("rm", "-f", *expected, "after")


def test_replication_needs_etcd_and_an_address(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flock", "manage", "--replication", "nodes://127.0.0.1:1"],
        capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 1
    assert "--replication needs etcd:// discovery" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "flock", "manage", "--replication", "etcd://127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 1 and "--replication needs --advertise" in result.stderr

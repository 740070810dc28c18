"""Node health and rescheduling with real agents (exec runtime), a real etcd and the
real docker CLI: a machine that dies is seen unhealthy within a few heartbeats, its
`reschedule:on-node-failure` containers come back elsewhere, and when it returns its
stale copies are removed."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import Agent, Manager, free_port, wait_for

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]


def ps(manager: Manager) -> dict[str, str]:
    """`docker ps -a` through the manager: NODE/NAME -> state."""
    out = manager.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")
    return dict(line.split() for line in out.splitlines())


def info_rows(manager: Manager) -> list[tuple[str, str]]:
    return [tuple(r) for r in manager.info().get("SystemStatus") or []]


@pytest.fixture
def cluster(tmp_path):
    etcd = Etcd(tmp_path / "etcd").start()
    url = etcd.url("/health")
    # TTL longer than the test: a dead agent stays listed (as unhealthy), as on a LAN
    # where the TTL is a minute or more.
    agents = {name: Agent(name, tmp_path, url, ttl="60s",
                          extra=["--label", f"zone={zone}"]).start()
              for name, zone in (("n1", "a"), ("n2", "a"), ("n3", "b"))}
    manager = Manager("manager", tmp_path, url, extra=["--engine-failure-retry", "3"])
    manager.start()
    try:
        wait_for(lambda: list(manager.nodes().values()).count("Healthy") == 3, 30,
                 "3 healthy nodes")
        manager.import_busybox()
        yield manager, agents
    finally:
        manager.stop()
        for agent in agents.values():
            agent.cleanup()
        etcd.stop()


def test_a_failed_node_turns_unhealthy_and_its_containers_move(cluster):
    manager, agents = cluster
    manager.docker("run", "-d", "--name", "web", "-e", "reschedule:on-node-failure",
                   "-e", "constraint:zone==a", "busybox", "sleep", "600")
    node = next(k for k in ps(manager) if k.endswith("/web")).split("/")[0]
    other = ({"n1", "n2"} - {node}).pop()
    manager.docker("run", "-d", "--name", "plain", "-e", f"constraint:node=={node}",
                   "busybox", "sleep", "600")
    victim = agents[node]
    victim.kill9()
    victim.kill_shims()  # the machine is gone, its containers with it
    started = time.monotonic()
    wait_for(lambda: manager.nodes().get(node) == "Unhealthy", 5, f"{node} unhealthy")
    assert time.monotonic() - started <= 3.5  # within 3 heartbeats of 1s (+ polling)
    rows = info_rows(manager)
    at = rows.index((f" {node}", victim.addr))
    assert ("  └ Status", "Unhealthy") in rows[at:at + 10]
    assert any(k == "  └ Error" and "Cannot reach agent" in v for k, v in rows[at:at + 10])
    wait_for(lambda: ps(manager).get(f"{other}/web") == "running", 10,
             f"web running again on {other} (zone a, never n3)")
    listed = ps(manager)
    assert f"{node}/plain" in listed  # no policy: stays, shown on the unhealthy node
    assert sum(1 for k in listed if k.endswith("/web")) == 1
    # The machine comes back with its old copy of web: removed, never two.
    victim.start()
    wait_for(lambda: manager.nodes().get(node) == "Healthy", 20, f"{node} healthy again")
    wait_for(lambda: not any(n.endswith("web") for n in subprocess.run(
        ["docker", "-H", f"unix://{victim.state_dir}/docker.sock", "ps", "-a", "--format",
         "{{.Names}}"], capture_output=True, text=True, timeout=30).stdout.split()),
        10, "the stale copy to be removed from the returning node")
    listed = ps(manager)
    assert [k for k in listed if k.endswith("/web")] == [f"{other}/web"]
    assert listed[f"{other}/web"] == "running"
    assert f"{node}/plain" in listed
    assert "rescheduled web from" in manager.output()
    manager.docker("rm", "-f", "web", "plain")


def test_health_goes_pending_to_healthy_when_the_agent_comes_late(tmp_path):
    """A node never reached stays Pending, with the error, however many refreshes fail
    (classic Swarm's pendingEngines, cluster/engine.go stateText; issue 21), and turns
    Healthy when its agent answers."""
    port = free_port()
    manager = Manager("manager", tmp_path, f"nodes://127.0.0.1:{port}",
                      extra=["--engine-failure-retry", "1"])
    agent = Agent("late", tmp_path, "")
    agent.args[agent.args.index("--advertise") + 1] = f"127.0.0.1:{port}"
    agent.args.remove("")  # no discovery: the manager's static list names it
    try:
        manager.start()
        seen = wait_for(lambda: manager.nodes().get(f"127.0.0.1:{port}"), 10, "the node")
        assert seen == "Pending"
        wait_for(lambda: any(k == "  └ Error" and f"Cannot reach agent 127.0.0.1:{port}" in v
                             for k, v in info_rows(manager)), 10, "the error")
        time.sleep(2.5)  # more failed refreshes than --engine-failure-retry (1s heartbeat)
        assert manager.nodes() == {f"127.0.0.1:{port}": "Pending"}
        agent.start()
        wait_for(lambda: manager.nodes() == {"late": "Healthy"}, 20, "healthy once it answers")
        assert not any(k == "  └ Error" for k, _ in info_rows(manager))
    finally:
        manager.stop()
        agent.cleanup()


def test_a_node_whose_lease_runs_out_first_is_still_rescheduled(tmp_path):
    """The agent's TTL (2s) is shorter than failure detection (3 missed 1s heartbeats):
    the node leaves discovery before it is seen unhealthy. Its containers must still
    move, and only then does the node go."""
    etcd = Etcd(tmp_path / "etcd").start()
    url = etcd.url("/lease")
    agents = {name: Agent(name, tmp_path, url, ttl="2s").start() for name in ("m1", "m2")}
    manager = Manager("manager", tmp_path, url, extra=["--engine-failure-retry", "3"])
    try:
        manager.start()
        wait_for(lambda: list(manager.nodes().values()).count("Healthy") == 2, 30,
                 "2 healthy nodes")
        manager.import_busybox()
        manager.docker("run", "-d", "--name", "mover", "-e", "reschedule:on-node-failure",
                       "busybox", "sleep", "600")
        node = next(k for k in ps(manager) if k.endswith("/mover")).split("/")[0]
        other = ({"m1", "m2"} - {node}).pop()
        agents[node].kill9()
        agents[node].kill_shims()
        wait_for(lambda: ps(manager).get(f"{other}/mover") == "running", 15,
                 f"mover running again on {other}")
        wait_for(lambda: node not in manager.nodes(), 15, f"{node} dropped after its grace")
        assert [k for k in ps(manager) if k.endswith("/mover")] == [f"{other}/mover"]
        manager.docker("rm", "-f", "mover")
    finally:
        manager.stop()
        for agent in agents.values():
            agent.cleanup()
        etcd.stop()

"""etcd discovery against a real etcd: agents register under leases, the manager
follows the prefix, `flock list` prints it, and outages cost no node."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import REPO, Agent, Manager, free_port, wait_for

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]


@pytest.fixture
def etcd(tmp_path):
    server = Etcd(tmp_path / "etcd").start()
    yield server
    server.stop()


@pytest.fixture
def procs():
    started: list = []
    yield started
    for proc in reversed(started):
        proc.cleanup() if isinstance(proc, Agent) else proc.stop()


def flock_list(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flock", "list", url], cwd=REPO,
                          capture_output=True, text=True, timeout=30)


def healthy(manager: Manager, count: int):
    nodes = manager.nodes()
    return nodes if list(nodes.values()).count("Healthy") == count else None


def test_agents_register_the_manager_follows_and_leaves_are_seen(etcd, procs, tmp_path):
    url = etcd.url("/reg")
    agents = [Agent(f"n{i}", tmp_path, url, ttl="3s").start() for i in (1, 2)]
    procs.extend(agents)
    listed = wait_for(lambda: sorted(flock_list(url).stdout.split()) == sorted(
        a.addr for a in agents), 20, "both agents in `flock list`")
    assert listed
    assert set(etcd.keys("/reg/")) == {f"/reg/{a.addr}" for a in agents}
    manager = Manager("manager", tmp_path, url)
    procs.append(manager.start())
    assert wait_for(lambda: healthy(manager, 2), 20, "2 healthy nodes") == {
        "n1": "Healthy", "n2": "Healthy"}
    # A clean stop keeps the key until its lease runs out (3s), then the node leaves:
    # about 6 s on an idle machine, past 12 s once under a full CI run's load.
    agents[1].stop()
    wait_for(lambda: list(manager.nodes()) == ["n1"], 30, "n2 to leave the cluster")
    assert flock_list(url).stdout.split() == [agents[0].addr]


def test_a_garbage_key_is_ignored_with_a_warning(etcd, procs, tmp_path):
    url = etcd.url("/junk")
    etcd.put("/junk/garbage", "this is not an address")
    etcd.put("/junk/127.0.0.1:1", "127.0.0.1:1")
    result = flock_list(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.1:1"]
    assert "ignoring etcd key /junk/garbage" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_etcd_at_start_is_retried_with_backoff(procs, tmp_path):
    port = free_port()
    url = f"etcd://127.0.0.1:{port}/late"
    result = flock_list(url)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"flock list: cannot reach etcd at 127.0.0.1:{port}: connection refused")
    agent = Agent("n1", tmp_path, url)
    manager = Manager("manager", tmp_path, url)
    procs.extend([agent.start(), manager.start()])
    wait_for(lambda: "cannot reach etcd" in agent.output()
             and "cannot reach etcd" in manager.output(), 20, "both to report etcd away")
    assert manager.info().get("SystemStatus") is not None  # serving all the same
    server = Etcd(tmp_path / "etcd", client_port=port).start()
    try:
        wait_for(lambda: healthy(manager, 1), 20, "the agent to join once etcd is up")
        assert "registered 127.0.0.1" in agent.output() and "again" in agent.output()
        assert "Traceback" not in agent.output() + manager.output()
    finally:
        server.stop()


def test_an_etcd_outage_drops_no_node_and_keeps_containers(etcd, procs, tmp_path):
    url = etcd.url("/outage")
    agents = [Agent(f"n{i}", tmp_path, url, ttl="3s").start() for i in (1, 2)]
    manager = Manager("manager", tmp_path, url)
    procs.extend([*agents, manager.start()])
    wait_for(lambda: healthy(manager, 2), 20, "2 healthy nodes")
    manager.import_busybox()
    status, _ = manager.api("POST", "/containers/create?name=keep",
                            {"Image": "busybox", "Cmd": ["sleep", "600"]})
    assert status == 201
    assert manager.api("POST", "/containers/keep/start")[0] == 204
    etcd.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the manager serves from its view meanwhile
        assert manager.nodes() == {"n1": "Healthy", "n2": "Healthy"}
        time.sleep(0.25)
    etcd.start()
    wait_for(lambda: set(etcd.keys("/outage/")) == {f"/outage/{a.addr}" for a in agents},
             15, "both agents registered again")
    time.sleep(4)  # longer than the agents' TTL: nothing expires after the blip
    assert manager.nodes() == {"n1": "Healthy", "n2": "Healthy"}
    assert sorted(flock_list(url).stdout.split()) == sorted(a.addr for a in agents)
    status, ps = manager.api("GET", "/containers/json")
    assert [c["State"] for c in ps] == ["running"]
    assert "Traceback" not in "".join(p.output() for p in procs)
    manager.api("DELETE", "/containers/keep?force=1")

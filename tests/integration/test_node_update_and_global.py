"""Node labels changed at run time, drains that outlive restarts, and global containers,
with real agents (exec runtime), a real etcd, a real manager and the `flock` CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from flock.protos import cluster_pb2 as pb
from flock.protos import cluster_pb2_grpc
from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import Agent, Manager, free_port, wait_for

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]


class Setup:
    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.etcd = Etcd(tmp_path / "etcd").start()
        self.url = self.etcd.url("/labels")
        self.agents: dict[str, Agent] = {}
        self.grpc_addr = f"127.0.0.1:{free_port()}"
        self.manager = Manager("manager", tmp_path, self.url,
                               extra=["--grpc-addr", self.grpc_addr])
        self.channel = grpc.insecure_channel(self.grpc_addr)
        self.service = cluster_pb2_grpc.ClusterServiceStub(self.channel)

    def agent(self, name: str, zone: str) -> Agent:
        agent = Agent(name, self.tmp, self.url, ttl="60s", extra=["--label", f"zone={zone}"])
        self.agents[name] = agent.start()
        return agent

    def healthy(self, count: int) -> None:
        wait_for(lambda: list(self.manager.nodes().values()).count("Healthy") == count, 40,
                 f"{count} healthy nodes")

    def nodes(self) -> dict[str, pb.NodeStatus]:
        return {n.name: n for n in self.service.ListNodes(pb.ListNodesRequest(),
                                                          timeout=10).nodes}

    def flock(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, FLOCK_HOST=self.grpc_addr)
        return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                              text=True, timeout=60, env=env)

    def close(self) -> None:
        self.channel.close()
        self.manager.stop()
        for agent in self.agents.values():
            agent.cleanup()
        self.etcd.stop()


@pytest.fixture
def setup(tmp_path):
    made = Setup(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_labels_set_at_run_time_steer_the_next_decision_and_outlive_restarts(setup):
    setup.agent("n1", "a")
    setup.agent("n2", "a")
    setup.manager.start()
    setup.healthy(2)
    setup.manager.import_busybox()

    done = setup.flock("node", "update", "--label-add", "disk=ssd", "--label-rm", "zone", "n2")
    assert done.returncode == 0, done.stderr
    assert "disk=ssd" in done.stdout and "n2" in done.stdout
    labels = setup.nodes()["n2"].labels
    assert labels["disk"] == "ssd" and "zone" not in labels

    spec = pb.ContainerSpec(image="busybox", cmd=["sleep", "60"], name="on-ssd",
                            env=["constraint:disk==ssd"])
    ran = setup.service.Run(pb.RunRequest(spec=spec), timeout=60)
    assert ran.container.node == "n2"
    spec = pb.ContainerSpec(image="busybox", env=["constraint:zone==a"])
    found = setup.service.Explain(spec, timeout=30)
    assert [r.node for r in found.ranking] == ["n1"]

    # The agent keeps the words: a restart of the agent, then of the manager, keeps them.
    setup.agents["n2"].stop()
    setup.agents["n2"].start()
    setup.manager.stop()
    setup.manager.start()
    setup.healthy(2)
    labels = setup.nodes()["n2"].labels
    assert labels["disk"] == "ssd" and "zone" not in labels

    # Putting the label back undoes the removal.
    done = setup.flock("node", "update", "--label-add", "zone=b", "n2")
    assert done.returncode == 0, done.stderr
    assert setup.nodes()["n2"].labels["zone"] == "b"


def test_node_update_bad_input(setup):
    setup.agent("n1", "a")
    setup.manager.start()
    setup.healthy(1)
    before = dict(setup.nodes()["n1"].labels)

    unknown = setup.flock("node", "update", "--label-add", "a=b", "nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    malformed = setup.flock("node", "update", "--label-add", "novalue", "n1")
    assert malformed.returncode == 1 and "KEY=VALUE" in malformed.stderr
    nothing = setup.flock("node", "update", "n1")
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr
    with pytest.raises(grpc.RpcError) as err:
        setup.service.UpdateNode(pb.UpdateNodeRequest(ref="n1", labels_add={"a=b": "c"}),
                                 timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert setup.nodes()["n1"].labels == before  # nothing half-applied


def test_drain_outlives_a_manager_restart(setup):
    setup.agent("n1", "a")
    setup.agent("n2", "a")
    setup.manager.start()
    setup.healthy(2)
    assert setup.flock("drain", "n1").returncode == 0
    setup.manager.stop()
    setup.manager.start()
    setup.healthy(2)
    nodes = setup.nodes()
    assert nodes["n1"].drained and not nodes["n2"].drained
    assert setup.flock("activate", "n1").returncode == 0
    assert not setup.nodes()["n1"].drained


def test_global_run_puts_one_copy_on_each_eligible_node_and_on_late_joiners(setup):
    setup.agent("g1", "a")
    setup.agent("g2", "b")
    setup.manager.start()
    setup.healthy(2)
    setup.manager.import_busybox()

    done = setup.flock("run", "--global", "--name", "web", "-e", "constraint:zone==a",
                       "busybox", "sleep", "300")
    assert done.returncode == 0, done.stderr
    assert "web.g1" in done.stdout and "g2" in done.stderr  # g2 left out, and why
    reply = setup.service.ListContainers(pb.ListContainersRequest(), timeout=10)
    assert {(c.name, c.node) for c in reply.containers} == {("web.g1", "g1")}

    again = setup.flock("run", "--global", "--name", "web", "busybox", "sleep", "300")
    assert again.returncode == 1 and "already exists" in again.stderr
    unnamed = setup.flock("run", "--global", "busybox")
    assert unnamed.returncode == 1 and "needs a name" in unnamed.stderr

    # A node that joins later gets its copy once it has the image (no registry here:
    # the import reaches it after it joined; the sweep picks it up). An Events stream
    # opened before it joined follows it too.
    stream = setup.service.Events(pb.EventsRequest(), timeout=120)
    setup.agent("g3", "a")
    setup.healthy(3)
    setup.manager.import_busybox()

    def copies() -> set[tuple[str, str]]:
        reply = setup.service.ListContainers(pb.ListContainersRequest(), timeout=10)
        return {(c.name, c.node) for c in reply.containers if c.state == "running"}

    wait_for(lambda: ("web.g3", "g3") in copies(), 60, "a copy on the late node")
    assert copies() == {("web.g1", "g1"), ("web.g3", "g3")}
    for event in stream:
        if (event.kind, event.action, event.node) == ("container", "start", "g3"):
            break
    stream.cancel()
    # A label change that makes g2 eligible gives it a copy too.
    assert setup.flock("node", "update", "--label-add", "zone=a", "g2").returncode == 0
    wait_for(lambda: ("web.g2", "g2") in copies(), 30, "a copy on the relabelled node")

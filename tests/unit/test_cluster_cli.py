"""The pure parts of the `flock` cluster commands and of ClusterService's Run body."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from flock import client
from flock.cluster_cli import node_errors, node_row, verdicts
from flock.manager.api.grpc import ClusterService, Failure, create_body
from flock.manager.app import Manager, ManagerConfig
from flock.protos import cluster_pb2 as pb


@pytest.mark.parametrize("text,size", [("0", 0), ("512", 512), ("64m", 64 << 20),
                                       ("1g", 1 << 30), ("1.5GiB", 3 << 29), ("2k", 2048)])
def test_sizes_as_docker_takes_them(text, size):
    assert client.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1x", "-1g"])
def test_bad_sizes_are_named(text):
    with pytest.raises(client.ClientError, match="invalid size"):
        client.parse_size(text)


def test_host_from_flag_then_flock_host_then_docker_host_then_the_default(monkeypatch):
    for name in ("FLOCK_HOST", "DOCKER_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert client.target(None) == client.Target("127.0.0.1:2375", client.DEFAULT_HOST,
                                                "the default")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/flock.sock")
    assert client.target(None) == client.Target("unix:/run/flock.sock",
                                                "unix:///run/flock.sock", "DOCKER_HOST")
    monkeypatch.setenv("FLOCK_HOST", "tcp://10.0.0.1:2377")
    assert client.target(None) == client.Target("10.0.0.1:2377", "tcp://10.0.0.1:2377",
                                                "FLOCK_HOST")
    assert client.target("h:1") == client.Target("h:1", "h:1", "-H")
    for bad in ("h", "unix://x.sock", "h:port", "http://h:1", "tcp://h:1/path"):
        with pytest.raises(client.ClientError, match=f"invalid host '{bad}' \\(-H\\)"):
            client.target(bad)


def test_the_default_is_where_flock_manage_listens():
    assert ManagerConfig(discovery="nodes://h:1").hosts == [client.DEFAULT_HOST]


def test_tls_from_the_flag_or_either_variable_set_to_anything(monkeypatch):
    for name in ("FLOCK_TLS_VERIFY", "DOCKER_TLS_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    args = client.argparse.Namespace(tlsverify=False)
    assert not client.wants_tls(args)
    assert client.wants_tls(client.argparse.Namespace(tlsverify=True))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "0")  # the docker CLI's rule: set is on
    assert client.wants_tls(args)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "")
    assert not client.wants_tls(args)


def test_a_missing_cert_file_is_named(tmp_path):
    args = client.argparse.Namespace(host="h:1", tlsverify=True, tlscacert=str(tmp_path / "ca"),
                                     tlscert=None, tlskey=None)
    with pytest.raises(client.ClientError, match=f"cannot read {tmp_path / 'ca'}"):
        client.channel(args)


def test_node_row_shows_reservations_as_percentages():
    node = pb.NodeStatus(name="n1", address="h:1", health="healthy", drained=True, cpus=4,
                         reserved_cpus=1, memory=8 << 30, reserved_memory=2 << 30,
                         containers=3, labels={"zone": "a", "ostype": "linux"})
    assert node_row(node) == ["n1", "h:1", "healthy (drained)", "3", "1/4 25%",
                              "2.0/8.0 GiB 25%", "zone=a"]


def test_node_errors_say_why_a_node_is_not_healthy():
    nodes = [pb.NodeStatus(name="vm", health="healthy", error="a blip, recovered"),
             pb.NodeStatus(name="10.0.0.2:4001", health="pending",
                           error='node name "vm" is already taken'),
             pb.NodeStatus(name="n3", health="unhealthy")]
    assert node_errors(nodes) == ['10.0.0.2:4001: node name "vm" is already taken']


def test_verdicts_say_chosen_ranked_or_what_removed_a_node():
    nodes = [pb.NodeStatus(name=n) for n in ("a", "b", "c", "d")]
    found = pb.Explanation(
        removals=[pb.Removal(condition="port 80 (Bridge mode)", nodes=["c"]),
                  pb.Removal(condition="healthy node", nodes=["d"], detail="x")],
        ranking=[pb.RankedNode(node="b", weight=1, containers=0),
                 pb.RankedNode(node="a", weight=2, containers=1)])
    assert [row[:2] for row in verdicts(nodes, found)] == [
        ["b", "chosen"], ["a", "ranked 2"], ["c", "removed by [port 80 (Bridge mode)]"],
        ["d", "removed by [healthy node] (x)"]]


def test_run_body_is_what_docker_run_sends():
    body = create_body(pb.ContainerSpec(image="busybox", cmd=["top"], env=["a=1"],
                                        memory=64 << 20, cpus=1.5, ports=["8080:80/udp"]))
    assert body == {
        "Image": "busybox", "Cmd": ["top"], "Env": ["a=1"], "Labels": {},
        "ExposedPorts": {"80/udp": {}},
        "HostConfig": {"Memory": 64 << 20, "NanoCpus": 1_500_000_000,
                       "PortBindings": {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}}}


@pytest.mark.parametrize("spec,message", [
    (pb.ContainerSpec(), "an image is required"),
    (pb.ContainerSpec(image="b", memory=-1), "must not be negative"),
    (pb.ContainerSpec(image="b", ports=["80"]), 'invalid port "80"'),
    (pb.ContainerSpec(image="b", ports=["1:2/sctp"]), 'invalid port "1:2/sctp"'),
])
def test_bad_run_bodies_are_invalid_arguments(spec, message):
    with pytest.raises(Failure, match=message) as err:
        create_body(spec)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_replica_refuses_changes_and_says_where_to_go():
    manager = Manager(ManagerConfig(discovery="etcd://127.0.0.1:1/flock", replication=True,
                                    advertise="127.0.0.1:2375"))
    manager.ha.leader = "10.0.0.9:2375"  # what an election would have set
    service = ClusterService(manager.cluster)
    for work in (service._drain("n", True), service._remove("c", False),
                 service._run(pb.ContainerSpec(image="busybox"))):
        with pytest.raises(Failure, match=r"replica: send changes to the primary \(Docker "
                                          r"API 10.0.0.9:2375\)") as err:
            asyncio.run(work)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION

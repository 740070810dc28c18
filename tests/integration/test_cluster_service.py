"""ClusterService over gRPC and the `flock` commands on it, against a real local cluster
(two exec-runtime agents and a manager started with --grpc-addr): the typed calls on
--grpc-addr's port, the commands through DOCKER_HOST, the Docker API's port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import grpc
import pytest

from flock.certs import issue, make_ca, write_identity
from flock.demo import import_image
from flock.local_cluster import LocalCluster, free_port
from flock.manager.app import ConfigError, Manager, ManagerConfig
from flock.protos import cluster_pb2 as pb

MIB = 1 << 20


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(agents=2, runtime="exec") as running:
        import_image(running)
        yield running


@pytest.fixture
def cleanup(service):
    """Containers a test ran, removed even when it fails."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        try:
            service.Remove(pb.RemoveRequest(ref=ref, force=True), timeout=30)
        except grpc.RpcError:
            pass


def run(service, cleanup, *env: str, name: str = "", **fields) -> pb.RunReply:
    spec = pb.ContainerSpec(image="busybox", cmd=["sleep", "60"], env=env, name=name, **fields)
    reply = service.Run(pb.RunRequest(spec=spec), timeout=30)
    cleanup.append(reply.container.id)
    return reply


def flock(cluster, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOCK_HOST", "DOCKER_HOST")}
    env["DOCKER_HOST"] = cluster.url  # what docker uses: the commands need nothing else
    return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=30, env=env)


def nodes_usage(service) -> dict[str, tuple[int, int]]:
    return {n.name: (n.containers, n.reserved_memory)
            for n in service.ListNodes(pb.ListNodesRequest(), timeout=10).nodes}


def test_list_nodes(service):
    nodes = service.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
    assert [n.name for n in nodes] == ["node-1", "node-2"]
    for node in nodes:
        assert (node.health, node.drained, node.runtime) == ("healthy", False, "exec")
        assert node.cpus > 0 and node.memory > 0 and node.labels["ostype"] == "linux"


def test_run_list_stop_remove(service, cleanup):
    reply = run(service, cleanup, "constraint:node==node-2", name="grpc-web",
                memory=64 * MIB)
    made = reply.container
    assert (made.name, made.node, made.state, made.reserved_memory) == (
        "grpc-web", "node-2", "running", 64 * MIB)
    listed = service.ListContainers(pb.ListContainersRequest(), timeout=10).containers
    assert made.id in [c.id for c in listed]
    assert nodes_usage(service)["node-2"][1] >= 64 * MIB
    inspected = service.InspectContainer(pb.ContainerRef(ref="grpc-web"), timeout=10)
    assert inspected.id == made.id
    stopped = service.Stop(pb.StopRequest(ref="grpc-web", timeout=1), timeout=30)
    assert stopped.state == "exited"
    assert made.id not in [c.id for c in service.ListContainers(
        pb.ListContainersRequest(), timeout=10).containers]
    assert service.Remove(pb.RemoveRequest(ref="grpc-web"), timeout=30).id == made.id
    with pytest.raises(grpc.RpcError) as err:
        service.InspectContainer(pb.ContainerRef(ref="grpc-web"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "No such container: grpc-web" in err.value.details()


def test_run_with_a_taken_name_or_no_fit_is_refused(service, cleanup):
    run(service, cleanup, name="grpc-taken")
    with pytest.raises(grpc.RpcError) as err:
        run(service, cleanup, name="grpc-taken")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        run(service, cleanup, "constraint:region==mars")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Unable to find a node" in err.value.details() and "region==mars" in \
        err.value.details()


def test_explain_names_filters_and_nodes_and_changes_nothing(service, cleanup):
    run(service, cleanup, "constraint:node==node-1", ports=["18080:80"])
    before = nodes_usage(service)
    port = service.Explain(pb.ContainerSpec(image="busybox", ports=["18080:80"]), timeout=10)
    assert [(r.condition, list(r.nodes)) for r in port.removals] == [
        ("port 18080 (Bridge mode)", ["node-1"])]
    assert [r.node for r in port.ranking] == ["node-2"] and not port.error
    label = service.Explain(pb.ContainerSpec(image="busybox", env=["constraint:region==east"]),
                            timeout=10)
    assert [(r.condition, list(r.nodes)) for r in label.removals] == [
        ("region==east", ["node-1", "node-2"])]
    assert label.error.startswith("Unable to find a node") and not label.ranking
    soft = service.Explain(pb.ContainerSpec(image="busybox", env=["constraint:region==~east"]),
                           timeout=10)
    assert list(soft.dropped_soft) == ["constraint:region==~east"]
    assert [r.node for r in soft.ranking] == ["node-2", "node-1"]  # spread: emptiest first
    assert "constraint" in soft.filters and soft.strategy == "spread"
    assert nodes_usage(service) == before


def test_explain_with_a_bad_rule_says_what_the_docker_api_says(cluster, service):
    status, answer = cluster.api("POST", "/containers/create",
                                 {"Image": "busybox", "Env": ["constraint:node==/[/"]})
    assert status == 400
    with pytest.raises(grpc.RpcError) as err:
        service.Explain(pb.ContainerSpec(image="busybox", env=["constraint:node==/[/"]),
                        timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == answer["message"]


def test_drain_sends_containers_elsewhere_and_activate_restores(service, cleanup):
    drained = service.Drain(pb.DrainRequest(ref="node-1"), timeout=10)
    try:
        assert drained.node.drained and drained.node.name == "node-1"
        assert not drained.moved
        placed = [run(service, cleanup).container.node for _ in range(3)]
        assert placed == ["node-2"] * 3
        found = service.Explain(pb.ContainerSpec(image="busybox"), timeout=10)
        assert [(r.condition, list(r.nodes)) for r in found.removals] == [
            ("active node (not drained)", ["node-1"])]
    finally:
        active = service.Activate(pb.NodeRef(ref="node-1"), timeout=10)
    assert not active.drained
    assert run(service, cleanup).container.node == "node-1"  # spread: the emptier node


def test_drain_with_reschedule_moves_the_containers_that_allow_it(service, cleanup):
    mobile = run(service, cleanup, "reschedule:on-node-failure", name="grpc-mobile").container
    source = mobile.node
    fixed = run(service, cleanup, f"constraint:node=={source}", name="grpc-fixed").container
    try:
        reply = service.Drain(pb.DrainRequest(ref=source, reschedule=True), timeout=60)
    finally:
        service.Activate(pb.NodeRef(ref=source), timeout=10)
    assert (list(reply.moved), list(reply.stayed)) == (["grpc-mobile"], [])
    moved = service.InspectContainer(pb.ContainerRef(ref="grpc-mobile"), timeout=10)
    cleanup.append(moved.id)
    assert (moved.node, moved.state) == (
        "node-2" if source == "node-1" else "node-1", "running")
    assert moved.id != mobile.id
    kept = service.InspectContainer(pb.ContainerRef(ref="grpc-fixed"), timeout=10)
    assert (kept.id, kept.node) == (fixed.id, source)


def test_drain_of_an_unknown_node_is_not_found(service):
    for call, request in ((service.Drain, pb.DrainRequest(ref="no-such-node")),
                          (service.Activate, pb.NodeRef(ref="no-such-node"))):
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "No such node: no-such-node"


def test_events_stream_drain_and_container_events(service, cleanup):
    stream = service.Events(pb.EventsRequest(), timeout=30)
    time.sleep(0.5)  # the stream subscribes to the nodes
    service.Drain(pb.DrainRequest(ref="node-2"), timeout=10)
    service.Activate(pb.NodeRef(ref="node-2"), timeout=10)
    made = run(service, cleanup, "constraint:node==node-1").container
    seen = []
    for event in stream:
        seen.append((event.kind, event.action, event.node))
        if event.kind == "container" and event.action == "start" and event.id == made.id:
            break
    stream.cancel()
    assert [s for s in seen if s[0] == "node"] == [
        ("node", "drain", "node-2"), ("node", "activate", "node-2")]
    assert ("container", "create", "node-1") in seen


def test_cli_nodes_ps_explain_drain(cluster, service, cleanup):
    made = run(service, cleanup, "constraint:node==node-1", name="grpc-cli").container
    table = flock(cluster, "nodes")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ADDRESS", "HEALTH", "CONTAINERS"]
    assert [line.split()[0] for line in lines[1:]] == ["node-1", "node-2"]
    listed = json.loads(flock(cluster, "nodes", "--format", "json").stdout)
    assert {n["name"] for n in listed} == {"node-1", "node-2"}
    ps = flock(cluster, "ps")
    assert "grpc-cli" in ps.stdout and made.id[:12] in ps.stdout
    assert made.id in [c["id"] for c in json.loads(flock(cluster, "ps", "--format",
                                                         "json").stdout)]
    explained = flock(cluster, "explain", "-e", "constraint:node==node-2", "-m", "64m", "busybox")
    assert explained.returncode == 0, explained.stderr
    rows = {line.split()[0]: line for line in explained.stdout.splitlines()[2:]}
    assert rows["node-2"].split()[1] == "chosen"
    assert "removed by [node==node-2]" in rows["node-1"]
    nothing = flock(cluster, "explain", "-e", "constraint:region==east", "busybox")
    assert nothing.returncode == 1 and "Unable to find a node" in nothing.stdout
    drained = flock(cluster, "drain", "--reschedule", "node-1")
    assert (drained.returncode, drained.stdout) == (0, "node-1: drained\n")
    assert "healthy (drained)" in flock(cluster, "nodes").stdout
    assert flock(cluster, "activate", "node-1").stdout == "node-1: active\n"


def test_cli_bad_input(cluster):
    unknown = flock(cluster, "drain", "no-such-node")
    assert (unknown.returncode, unknown.stderr) == (1, "flock drain: No such node: no-such-node\n")
    bad = flock(cluster, "explain", "-e", "constraint:node==/[/", "busybox")
    assert bad.returncode == 1 and 'invalid constraint "node==/[/"' in bad.stderr
    size = flock(cluster, "explain", "-m", "lots", "busybox")
    assert size.returncode == 1 and "invalid size 'lots'" in size.stderr
    away = flock(cluster, "nodes", "-H", f"127.0.0.1:{free_port()}")
    assert away.returncode == 1 and "cannot reach the manager at 127.0.0.1:" in away.stderr
    assert "(from -H): nothing listens there" in away.stderr


def test_tls_like_the_docker_front_and_no_plaintext_on_a_reachable_address(tmp_path):
    ca = make_ca("Flock test CA")
    server = write_identity(tmp_path / "manager", issue(ca, "manager", ips=["127.0.0.1"],
                                                        server=True, role="manager"), ca.cert)
    admin = write_identity(tmp_path / "client", issue(ca, "client", role="admin"), ca.cert)
    (tmp_path / "agents").write_text("")
    discovery = f"file://{tmp_path / 'agents'}"

    async def scenario() -> None:
        manager = Manager(ManagerConfig(
            discovery=discovery, hosts=[f"tcp://127.0.0.1:{free_port()}"], tlsverify=True,
            tls_files=server, grpc_addr="127.0.0.1:0"))
        await manager.start()
        try:
            tls = ["-H", manager.grpc_address, "--tlsverify", f"--tlscacert={admin.ca}",
                   f"--tlscert={admin.cert}", f"--tlskey={admin.key}"]
            good = await flock_async("nodes", *tls)
            assert (good[0], good[1].splitlines()[0].split()[0]) == (0, "NAME")
            plain = await flock_async("nodes", "-H", manager.grpc_address)
            assert plain[0] == 1 and plain[2] == (
                f"flock nodes: cannot reach the manager at {manager.grpc_address} (from -H): it "
                "speaks TLS there; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder "
                "of ca.pem, cert.pem and key.pem (or pass --tlsverify)\n")
        finally:
            await manager.stop()
        exposed = Manager(ManagerConfig(discovery=discovery, grpc_addr="0.0.0.0:0",
                                       hosts=[f"tcp://127.0.0.1:{free_port()}"]))
        with pytest.raises(ConfigError, match=r"refusing to listen on 0.0.0.0:0 \(--grpc-addr\)"):
            await exposed.start()

    asyncio.run(scenario())


async def flock_async(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flock", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()

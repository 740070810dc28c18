"""A node whose agent is down is refused in one text through both fronts: the Docker
API's 503 and the ClusterService's UNAVAILABLE (manager/cluster/clients.py). Before,
the same fact was worded five ways, and a call reached for the dead agent first.

Real engines, real agents and manager (tests/support/cluster.py), the real docker CLI
and a real gRPC channel. The module's cluster loses an agent: its one test runs last.
"""

from __future__ import annotations

import grpc
import pytest

from flock.protos import cluster_pb2 as pb
from flock.protos import cluster_pb2_grpc
from tests.support.cluster import engine_container_ids, wait_for

pytestmark = pytest.mark.timeout(120)

CLUSTER = dict(names=["node-a", "node-b"],
               manager_options={"grpc_addr": "127.0.0.1:0"})  # its own port: the channel


def test_a_node_whose_agent_is_down_is_refused_in_one_text(cluster):
    before = cluster.container_ids()
    try:
        check_one_text(cluster)
    finally:  # the engines are the session's; the manager cannot see node-b's any more
        for engine in cluster.engines:
            made = [c for c in engine_container_ids(engine) if c not in before[engine.socket]]
            if made:
                engine.docker("rm", "-f", *made, check=False)


def check_one_text(cluster) -> None:
    cluster.docker("run", "-d", "--name", "stays", "-e", "constraint:node==node-b",
                   "busybox", "sleep", "600")
    state = cluster.manager.state
    node = state.node_by_name("node-b")
    cluster.lt.loop.call_soon_threadsafe(cluster.stops[1].set)  # node-b's agent stops
    wait_for(lambda: state.node(node.id).health == "unhealthy", 30, "node-b unhealthy")

    status, answer, _ = cluster.api("DELETE", "/containers/stays?force=1")
    assert status == 503
    text = answer["message"]
    assert text.startswith(f"node node-b ({node.addr}) is not connected: Cannot reach agent "
                           f"{node.addr}: ")
    assert "(flock join)" in text and text.endswith("Retry once the node is healthy again.")

    channel = grpc.insecure_channel(cluster.grpc_addr)
    service = cluster_pb2_grpc.ClusterServiceStub(channel)
    try:
        for call, request in ((service.Remove, pb.RemoveRequest(ref="stays", force=True)),
                              (service.UpdateNode, pb.UpdateNodeRequest(
                                  ref="node-b", labels_add={"disk": "ssd"}))):
            with pytest.raises(grpc.RpcError) as err:
                call(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert err.value.details() == text
    finally:
        channel.close()
    proc = cluster.docker("rm", "-f", "stays", check=False)  # the docker CLI shows it as is
    assert proc.returncode != 0 and text in proc.stderr.decode()

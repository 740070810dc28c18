"""How the manager turns what agents say into its records (pure conversions)."""

from __future__ import annotations

from flock.manager.api.docker.images import merge_images, tag_progress
from flock.manager.cluster.convert import (
    STATE_KEY,
    container_from_engine,
    event_target,
    host_ports,
    image_refs,
    node_from_info,
    reserved_cpus,
)
from flock.protos import agent_pb2

INSPECT = {
    "Id": "f" * 64, "Name": "/web", "Image": "sha256:" + "a" * 64,
    "Created": "2026-11-23T10:00:00.123456789Z",
    "Config": {"Image": "busybox", "Labels": {"com.docker.swarm.id": "x"},
               "ExposedPorts": {"80/tcp": {}}},
    "HostConfig": {"CpuShares": 0, "NanoCpus": 1_500_000_000, "Memory": 64 << 20,
                   "NetworkMode": "default",
                   "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"},
                                               {"HostIp": "", "HostPort": ""}],
                                    "53/udp": [{"HostPort": "5353"}]}},
    "State": {"Status": "exited", "StartedAt": "2026-11-23T10:00:01Z",
              "FinishedAt": "2026-11-23T10:00:02.5Z", "ExitCode": 3},
}


def test_container_from_engine():
    summary = {"Id": "f" * 64, "Names": ["/web"], "Created": 1795428000}
    container = container_from_engine("N|1", summary, INSPECT, 4)
    assert (container.name, container.node_id, container.image) == ("web", "N|1", "busybox")
    assert container.reserved_cpus == 1.5 and container.reserved_memory == 64 << 20
    assert sorted(container.ports) == [(5353, "udp"), (8080, "tcp")]
    assert container.state == "exited" and container.created == 1795428000
    times = container.summary[STATE_KEY]
    assert times["ExitCode"] == 3 and times["FinishedAt"] - times["StartedAt"] == 1.5
    assert STATE_KEY not in summary  # the engine's entry is not changed in place


def test_classic_cpu_shares_and_host_network_ports():
    assert reserved_cpus({"CpuShares": 2048}, 2) == 4.0
    assert reserved_cpus({"CpuShares": 0, "NanoCpus": 0}, 2) == 0.0
    assert host_ports({"ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
                      {"NetworkMode": "host"}) == [(80, "tcp"), (53, "udp")]
    assert host_ports({}, {"PortBindings": None}) == []


def test_node_from_info_keeps_the_address_in_the_id():
    info = agent_pb2.NodeInfo(id="ENGINE", name="n1", cpus=2, memory=1 << 30,
                              labels={"zone": "a"}, kernel_version="6.1", ostype="linux",
                              storage_driver="overlay2", api_version="1.41")
    node = node_from_info(info, "10.0.0.1:4000")
    assert node.id == "ENGINE|10.0.0.1:4000" and node.addr == "10.0.0.1:4000"
    assert node.labels == {"zone": "a", "kernelversion": "6.1", "ostype": "linux",
                           "storagedriver": "overlay2"}
    assert node.health == "pending"


def test_event_target_new_and_old_shapes():
    assert event_target({"Type": "container", "Action": "exec_start: sh",
                         "Actor": {"ID": "abc"}}) == ("container", "exec_start", "abc")
    assert event_target({"status": "die", "id": "abc", "from": "busybox"}) == (
        "container", "die", "abc")
    assert event_target({"Type": "image", "Action": "tag", "Actor": {"ID": "sha256:1"}}) == (
        "image", "tag", "sha256:1")


def test_image_refs_skip_none_tags():
    refs = image_refs([{"Id": "sha256:1", "RepoTags": ["<none>:<none>"],
                        "RepoDigests": ["<none>@<none>"]},
                       {"Id": "sha256:2", "RepoTags": ["busybox:latest"]}])
    assert refs == ["sha256:1", "busybox:latest", "sha256:2"]


def test_progress_lines_name_their_node():
    assert tag_progress({"status": "sha256:1"}, "n1") == {"status": "n1: sha256:1"}
    assert tag_progress({"status": "Pulling", "id": "abc"}, "n1") == {
        "status": "Pulling", "id": "n1: abc"}
    assert tag_progress({"error": "boom", "errorDetail": {"message": "boom"}}, "n1") == {
        "error": "n1: boom", "errorDetail": {"message": "n1: boom"}}


def test_merge_images_dedupes_by_id():
    merged = merge_images([[{"Id": "1", "RepoTags": ["a:1"], "Created": 1}],
                           [{"Id": "1", "RepoTags": ["a:2"], "Created": 1},
                            {"Id": "2", "RepoTags": ["b:1"], "Created": 2}]])
    assert [(m["Id"], m["RepoTags"]) for m in merged] == [("2", ["b:1"]), ("1", ["a:1", "a:2"])]


def test_implicit_image_affinity_only_when_some_node_has_the_image():
    from flock.manager.cluster.model import Node
    from flock.manager.cluster.state import ClusterState
    from flock.manager.placement.create import with_image_affinity
    from flock.manager.scheduler.spec import spec_from_create

    state = ClusterState()
    state.upsert_node(Node(id="A|1", name="a", addr="a:1"))
    state.upsert_node(Node(id="B|2", name="b", addr="b:2"))
    state.set_node_images("A|1", ["built:1", "everywhere:1"])
    state.set_node_images("B|2", ["everywhere:1"])
    spec, rule = with_image_affinity(state, spec_from_create({"Image": "built:1"}))
    assert rule == "affinity:image==~built:1"
    assert [str(r) for r in spec.affinities] == ["image==~built:1"]
    for body in ({"Image": "elsewhere:1"},
                 {"Image": "everywhere:1"},  # every node has it: the rule changes nothing
                 {"Image": "built:1", "Env": ["constraint:node==a"]},
                 {"Image": "built:1", "Env": ["affinity:image==other"]}):
        spec = spec_from_create(body)
        assert with_image_affinity(state, spec) == (spec, "")


def test_heartbeats_are_stretched_to_the_cluster_wide_cap_for_healthy_nodes_only():
    from flock.manager.cluster.state import ClusterState
    from flock.manager.cluster.sync import NodeWatcher

    watcher = NodeWatcher(ClusterState(), backend=None, heartbeat=5.0, max_beats=50)
    watcher._syncs = dict.fromkeys(f"10.0.0.{i}:4000" for i in range(100))  # 100 nodes
    for _ in range(200):
        assert 4.0 <= watcher.beat_delay() <= 6.0  # 100 nodes / 50 per s = 2 s < 5 s
    watcher._syncs = dict.fromkeys(f"h{i}:4000" for i in range(1000))
    delays = [watcher.beat_delay() for _ in range(2000)]
    assert 16.0 <= min(delays) and max(delays) <= 24.0  # 1000 / 50 = 20 s, jittered
    assert 18.5 < sum(delays) / len(delays) < 21.5
    assert all(4.0 <= watcher.beat_delay(healthy=False) <= 6.0 for _ in range(200))
    watcher.max_beats = 0  # no cap
    assert all(4.0 <= watcher.beat_delay() <= 6.0 for _ in range(200))

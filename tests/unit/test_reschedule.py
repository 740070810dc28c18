"""The pure parts of rescheduling: who asks for it, the body that recreates a
container, and which copy of a duplicated container goes."""

from __future__ import annotations

from flock.manager.cluster.convert import create_body
from flock.manager.cluster.labels import wants_reschedule
from flock.manager.cluster.model import Container
from flock.manager.placement.reschedule import stale_copies

POLICY = "com.docker.swarm.reschedule-policies"


def test_wants_reschedule_reads_the_classic_label():
    assert wants_reschedule({POLICY: '["on-node-failure"]'})
    assert wants_reschedule({POLICY: "on-node-failure"})  # written by hand, not JSON
    assert not wants_reschedule({POLICY: '["off"]'})
    assert not wants_reschedule({})
    assert not wants_reschedule(None)


def test_create_body_keeps_config_and_host_config_and_drops_the_derived_hostname():
    inspect = {"Id": "abcdef123456" + "0" * 52,
               "Config": {"Hostname": "abcdef123456", "Image": "busybox", "Cmd": ["sleep", "9"],
                          "Labels": {POLICY: '["on-node-failure"]'}},
               "HostConfig": {"Memory": 1 << 20, "PortBindings": {"80/tcp": [{"HostPort": "8"}]}}}
    body = create_body(inspect, 2)
    assert body == {"Image": "busybox", "Cmd": ["sleep", "9"],
                    "Labels": {POLICY: '["on-node-failure"]'},
                    "HostConfig": {"Memory": 1 << 20,
                                   "PortBindings": {"80/tcp": [{"HostPort": "8"}]}}}
    inspect["Config"]["Hostname"] = "web"  # a hostname the user chose is kept
    assert create_body(inspect, 2)["Hostname"] == "web"


def test_the_newest_copy_stays():
    old = Container(id="a", name="web", node_id="n1", created=100.0)
    new = Container(id="b", name="web", node_id="n2", created=200.0)
    assert stale_copies([old, new]) == [old]
    assert stale_copies([new, old]) == [old]
    assert stale_copies([new]) == []

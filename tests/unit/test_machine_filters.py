"""`ls` filters (Docker Machine's: OR within a key, AND across keys), the SWARM column,
and the ordering of names."""

from __future__ import annotations

import pytest

from flock.provisioner.commands.listing import (
    matches,
    natural_key,
    parse_filters,
    state_matches,
    swarm_column,
    swarm_masters,
)
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host


def host(name: str, driver: str = "none", labels: dict[str, str] | None = None,
         discovery: str = "", master: bool = False) -> Host:
    h = Host(name=name, driver_name=driver)
    h.options.engine.labels = dict(labels or {})
    h.options.swarm.discovery = discovery
    h.options.swarm.agent = bool(discovery)
    h.options.swarm.master = master
    return h


HOSTS = [
    host("manager0", "libvirt", {"zone": "a"}, "token://T", master=True),
    host("node1", "libvirt", {"zone": "a", "disk": "ssd"}, "token://T"),
    host("node2", "amazonec2", {"zone": "B"}, "token://T"),
    host("solo", "none"),
    host("other-master", "generic", {}, "etcd://h:2379/x", master=True),
]
MASTERS = swarm_masters(HOSTS)


def selected(*filters: str) -> list[str]:
    parsed = parse_filters(list(filters))
    return [h.name for h in HOSTS if matches(h, parsed, MASTERS)]


def test_no_filter_keeps_everything():
    assert selected() == [h.name for h in HOSTS]


def test_driver_values_are_ored_and_case_blind():
    assert selected("driver=LIBVIRT") == ["manager0", "node1"]
    assert selected("driver=none", "driver=generic") == ["solo", "other-master"]


def test_keys_are_anded():
    assert selected("driver=libvirt", "label=disk=ssd") == ["node1"]
    assert selected("driver=none", "label=zone=a") == []


def test_name_is_a_regex_searched_anywhere():
    assert selected("name=^node") == ["node1", "node2"]
    assert selected("name=ma") == ["manager0", "other-master"]
    assert selected("name=^solo$", "name=2") == ["node2", "solo"]


def test_swarm_is_the_masters_name():
    assert selected("swarm=manager0") == ["manager0", "node1", "node2"]
    assert selected("swarm=OTHER-MASTER") == ["other-master"]
    assert selected("swarm=nobody") == []


def test_labels_by_key_and_value():
    assert selected("label=zone=b") == ["node2"]          # values are case-blind
    assert selected("label=zone=a", "label=zone=b") == ["manager0", "node1", "node2"]
    assert selected("label=disk") == ["node1"]            # key only: the label is set


def test_state_filter():
    parsed = parse_filters(["state=running", "state=Stopped"])
    assert state_matches("Running", parsed) and state_matches("Stopped", parsed)
    assert not state_matches("Error", parsed)
    assert state_matches("Timeout", parse_filters([]))
    # a word that is no state is no error: it matches nothing (commands/ls.go matchesState)
    assert not state_matches("Running", parse_filters(["state=asleep"]))


@pytest.mark.parametrize("text, message", [
    ("driver", "Unsupported filter syntax"),
    ("=x", "Unsupported filter syntax"),
    ("colour=red", "Unsupported filter key 'colour'"),
    ("name=[", "not a valid regular expression"),
])
def test_bad_filters(text, message):
    with pytest.raises(MachineError, match=message):
        parse_filters([text])


def test_swarm_column():
    by_name = {h.name: h for h in HOSTS}
    # commands/ls.go: fmt.Sprintf("%s (master)", swarmColumn)
    assert swarm_column(by_name["manager0"], MASTERS) == "manager0 (master)"
    assert swarm_column(by_name["node1"], MASTERS) == "manager0"
    assert swarm_column(by_name["solo"], MASTERS) == ""
    orphan = host("orphan", discovery="token://nobody-is-master")
    assert swarm_column(orphan, MASTERS) == ""


def test_natural_order():
    names = ["web-10", "web-2", "Api", "web-1", "db"]
    assert sorted(names, key=natural_key) == ["Api", "db", "web-1", "web-2", "web-10"]

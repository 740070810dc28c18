"""spec_from_create and prepare_create_body: reading a Docker create body."""

from __future__ import annotations

import json

import pytest

from flock.manager.cluster.labels import (
    AFFINITIES_LABEL,
    CONSTRAINTS_LABEL,
    RESCHEDULE_LABEL,
    SWARM_ID_LABEL,
)
from flock.manager.scheduler.spec import (
    RuleError,
    SpecError,
    prepare_create_body,
    spec_from_create,
)

GIB = 1024**3


def test_minimal_body():
    spec = spec_from_create({"Image": "busybox"}, "web")
    assert spec.name == "web" and spec.image == "busybox"
    assert (spec.cpus, spec.memory) == (0, 0)
    assert spec.constraints == [] and spec.affinities == [] and spec.ports == []
    assert spec.dependencies == [] and spec.reschedule == [] and spec.network_mode == ""
    assert spec_from_create({}, "/web").name == "web"


def test_rules_from_env_and_labels():
    body = {
        "Image": "busybox",
        "Env": [
            "PATH=/bin",
            "constraint:region==eu",
            "affinity:container==db",
            "constraint:size!=~s",
            "reschedule:on-node-failure",
        ],
        "Labels": {
            CONSTRAINTS_LABEL: json.dumps(["storagedriver==overlay2", "region==eu"]),
            AFFINITIES_LABEL: json.dumps(["image==redis"]),
        },
    }
    spec = spec_from_create(body)
    assert [str(r) for r in spec.constraints] == [
        "storagedriver==overlay2",
        "region==eu",
        "size!=~s",
    ]
    assert [str(r) for r in spec.affinities] == ["image==redis", "container==db"]
    assert all(r.kind == "affinity" for r in spec.affinities)
    assert spec.reschedule == ["on-node-failure"]


def test_reschedule_from_label():
    body = {"Labels": {RESCHEDULE_LABEL: '["on-node-failure"]'}}
    assert spec_from_create(body).reschedule == ["on-node-failure"]


def test_resources_classic_cpu_shares_reserve_cpus():
    spec = spec_from_create({"HostConfig": {"CpuShares": 2, "Memory": GIB}})
    assert spec.cpus == 2.0 and spec.memory == GIB


def test_resources_nano_cpus_and_old_top_level_memory():
    spec = spec_from_create({"HostConfig": {"NanoCpus": 1_500_000_000}, "Memory": 512})
    assert spec.cpus == 1.5 and spec.memory == 512
    assert spec_from_create({"CpuShares": 3}).cpus == 3.0


def test_bridge_ports_fixed_dynamic_and_protocols():
    body = {
        "HostConfig": {
            "PortBindings": {
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "53/udp": [{"HostPort": "53"}],
                "443/tcp": [{"HostPort": ""}],  # dynamic: no constraint
                "9000/tcp": [{"HostPort": "9000-9010"}],  # a range: the engine picks
                "7000": None,
            },
            "PublishAllPorts": True,
        },
        "ExposedPorts": {"22/tcp": {}},  # bridge mode: exposing is not binding
    }
    assert spec_from_create(body).ports == [(8080, "tcp"), (53, "udp")]


def test_host_network_exposed_ports_count():
    body = {
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "7000-7001/tcp": {}},
        "HostConfig": {"NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostPort": "1"}]}},
    }
    spec = spec_from_create(body)
    assert spec.network_mode == "host"
    assert spec.ports == [(80, "tcp"), (53, "udp"), (7000, "tcp"), (7001, "tcp")]


def test_dependencies_links_volumes_from_and_container_network():
    body = {
        "HostConfig": {
            "Links": ["db:database", "/cache:/web/cache"],
            "VolumesFrom": ["data:ro", "db"],
            "NetworkMode": "container:net",
        }
    }
    spec = spec_from_create(body)
    assert spec.dependencies == ["data", "db", "cache", "net"]
    assert spec.dependency_flags == {
        "data": "--volumes-from=data:ro",
        "db": "--volumes-from=db",
        "cache": "--link=/cache:/web/cache",
        "net": "--net=container:net",
    }


def test_prepare_strips_env_and_writes_labels():
    body = {
        "Image": "busybox",
        "Env": ["A=1", "constraint:region==eu", "affinity:image==~redis", "reschedule:off"],
        "Labels": {"mine": "yes"},
    }
    spec = spec_from_create(body)
    out = prepare_create_body(body, spec, 4)
    assert out["Env"] == ["A=1"]
    labels = out["Labels"]
    assert json.loads(labels[CONSTRAINTS_LABEL]) == ["region==eu"]
    assert json.loads(labels[AFFINITIES_LABEL]) == ["image==~redis"]
    assert json.loads(labels[RESCHEDULE_LABEL]) == ["off"]
    assert labels["mine"] == "yes"
    assert len(labels[SWARM_ID_LABEL]) == 64 and int(labels[SWARM_ID_LABEL], 16) >= 0
    # the input is untouched
    assert body["Env"][1] == "constraint:region==eu" and SWARM_ID_LABEL not in body["Labels"]


def test_prepare_round_trips_through_labels():
    body = {"Env": ["constraint:node==n1", "affinity:container!=web"]}
    out = prepare_create_body(body, spec_from_create(body), 4)
    again = spec_from_create(out)
    assert [str(r) for r in again.constraints] == ["node==n1"]
    assert [str(r) for r in again.affinities] == ["container!=web"]


def test_prepare_new_id_each_time_but_keeps_an_existing_one():
    body = {"Image": "x"}
    first = prepare_create_body(body, spec_from_create(body), 4)["Labels"][SWARM_ID_LABEL]
    second = prepare_create_body(body, spec_from_create(body), 4)["Labels"][SWARM_ID_LABEL]
    assert first != second
    kept = {"Labels": {SWARM_ID_LABEL: "abc"}}
    assert prepare_create_body(kept, spec_from_create(kept), 4)["Labels"][SWARM_ID_LABEL] == "abc"


def test_prepare_without_rules_writes_no_rule_labels_and_no_env():
    body = {"Image": "x", "Env": None}
    out = prepare_create_body(body, spec_from_create(body), 4)
    assert set(out["Labels"]) == {SWARM_ID_LABEL}
    assert out["Env"] is None


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"Env": ["constraint:region=eu"]}, 'invalid constraint "region=eu"'),
        ({"Env": ["constraint:"]}, 'invalid constraint ""'),
        ({"Env": ["affinity:container==/[/"]}, "bad regular expression"),
        ({"Labels": {CONSTRAINTS_LABEL: "region==eu"}}, "expected a JSON list of strings"),
        ({"Labels": {AFFINITIES_LABEL: "[1]"}}, "expected a JSON list of strings"),
        ({"Labels": {CONSTRAINTS_LABEL: '["bad"]'}}, 'invalid constraint "bad"'),
        # classic's words, cluster/config.go Validate (its "reschedule conflict" test,
        # test/integration/rescheduling.bats, looks for them)
        ({"Env": ["reschedule:always"]}, "invalid reschedule policy: always"),
        (
            {"Env": ["reschedule:off", "reschedule:on-node-failure"]},
            "too many reschedule policies",
        ),
        # the count comes first, as in classic, even when one of them is invalid
        ({"Env": ["reschedule:off", "reschedule:bogus"]}, "too many reschedule policies"),
    ],
)
def test_bad_rules(body, fragment):
    with pytest.raises(RuleError, match=None) as err:
        spec_from_create(body)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"HostConfig": []}, "HostConfig must be a JSON object"),
        ({"Labels": {"a": 1}}, "label a must have a string value"),
        ({"Env": "A=1"}, "Env must be a list of strings"),
        ({"Env": [1]}, "must be a string"),
        ({"Image": 5}, "Image must be a string"),
        ({"HostConfig": {"Memory": -1}}, "Memory must be a non-negative number"),
        ({"HostConfig": {"Memory": "1g"}}, "Memory must be a non-negative number"),
        ({"HostConfig": {"CpuShares": True}}, "CpuShares must be a non-negative number"),
        ({"HostConfig": {"NanoCpus": -5}}, "NanoCpus must be a non-negative number"),
        ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "http"}]}}}, "HostPort"),
        ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}}, "out of range"),
        ({"HostConfig": {"PortBindings": {"80/tcp": {"HostPort": "80"}}}}, "must be a list"),
        ({"HostConfig": {"PortBindings": {"80/tcp": ["80"]}}}, "must be objects"),
        ({"HostConfig": {"PortBindings": {"80/icmp": []}}}, "unknown protocol icmp"),
        (
            {"HostConfig": {"NetworkMode": "host"}, "ExposedPorts": {"x/tcp": {}}},
            'invalid port "x/tcp"',
        ),
        (
            {"HostConfig": {"NetworkMode": "host"}, "ExposedPorts": {"0/tcp": {}}},
            "out of range",
        ),
        ({"HostConfig": {"Links": "db"}}, "HostConfig.Links must be a list of strings"),
        ({"HostConfig": {"VolumesFrom": [":ro"]}}, "the container name is missing"),
        ({"HostConfig": {"NetworkMode": "container:"}}, "the container name is missing"),
        ({"HostConfig": {"NetworkMode": 3}}, "NetworkMode must be a string"),
    ],
)
def test_bad_bodies(body, fragment):
    with pytest.raises(SpecError) as err:
        spec_from_create(body)
    assert fragment in str(err.value)


def test_spec_error_is_a_rule_error():
    assert issubclass(SpecError, RuleError)

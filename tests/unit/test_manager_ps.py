"""`docker ps` from memory: the Engine's filter semantics and classic Swarm's names."""

from __future__ import annotations

import pytest

from flock.docker_compat.humanize import human_duration
from flock.manager.api.docker.errors import DockerError
from flock.manager.api.docker.ps import (
    live_status,
    parse_filters,
    present,
    select,
)
from flock.manager.cluster.convert import STATE_KEY
from flock.manager.cluster.model import Container, Node

NOW = 1_800_000_000.0
NODES = {"A|1": Node(id="A|1", name="node-a", addr="10.0.0.1:4000"),
         "B|2": Node(id="B|2", name="node-b", addr="10.0.0.2:4000")}


def make(cid: str, name: str, node: str, state: str = "running", created: float = 0,
         labels: dict | None = None, exit_code: int = 0, image: str = "busybox") -> Container:
    times = {"Status": state, "StartedAt": NOW - 300 if state != "created" else 0,
             "FinishedAt": NOW - 60 if state == "exited" else 0, "ExitCode": exit_code,
             "Health": ""}
    summary = {"Id": cid, "Names": [f"/{name}"], "Image": image, "State": state,
               "Status": "stale", "Created": int(created), STATE_KEY: times,
               "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080,
                          "Type": "tcp"}]}
    return Container(id=cid, name=name, node_id=node, state=state, created=created,
                     labels=labels or {}, summary=summary, image=image,
                     image_id="sha256:" + "ab" * 32)


CONTAINERS = [
    make("aaa111", "web1", "A|1", created=3, labels={"tier": "web"}),
    make("aaa222", "web2", "B|2", created=2, labels={"tier": "web", "x": "1"}),
    make("bbb333", "db", "A|1", state="exited", created=1, exit_code=7),
    make("ccc444", "fresh", "B|2", state="created", created=4, image="other:2"),
]


def names(**kwargs) -> list[str]:
    kwargs.setdefault("show_all", False)
    kwargs.setdefault("limit", -1)
    kwargs.setdefault("filters", {})
    return [e["Names"][0] for e in select(CONTAINERS, NODES, **kwargs)]


def test_running_only_by_default_newest_first_with_node_names():
    assert names() == ["/node-a/web1", "/node-b/web2"]
    assert names(show_all=True) == ["/node-b/fresh", "/node-a/web1", "/node-b/web2",
                                    "/node-a/db"]


def test_limit_implies_all():
    assert names(limit=2) == ["/node-b/fresh", "/node-a/web1"]


@pytest.mark.parametrize("filters, expected", [
    ({"name": ["web"]}, ["/node-a/web1", "/node-b/web2"]),
    ({"name": ["^/web1$"]}, ["/node-a/web1"]),
    ({"name": ["node-b/web"]}, ["/node-b/web2"]),
    ({"id": ["aaa2"]}, ["/node-b/web2"]),
    ({"label": ["tier=web", "x"]}, ["/node-b/web2"]),
    ({"label": ["tier"]}, ["/node-a/web1", "/node-b/web2"]),
    ({"node": ["node-a"]}, ["/node-a/web1"]),
    ({"ancestor": ["busybox"]}, ["/node-a/web1", "/node-b/web2"]),
    ({"publish": ["8080"]}, ["/node-a/web1", "/node-b/web2"]),
    ({"before": ["web1"]}, ["/node-b/web2"]),
])
def test_filters(filters, expected):
    assert names(filters=filters) == expected


def test_status_filter_implies_all_and_exited_needs_exit_code():
    assert names(filters={"status": ["exited"]}) == ["/node-a/db"]
    assert names(show_all=True, filters={"exited": ["7"]}) == ["/node-a/db"]
    assert names(show_all=True, filters={"exited": ["0"]}) == []
    assert names(filters={"status": ["created"], "ancestor": ["other:2"]}) == ["/node-b/fresh"]


@pytest.mark.parametrize("filters, message", [
    ({"bogus": ["1"]}, "Invalid filter 'bogus'"),
    ({"status": ["sleeping"]}, "Invalid filter 'status=sleeping'"),
    ({"exited": ["x"]}, "Invalid filter 'exited=x'"),
])
def test_bad_filters_are_400(filters, message):
    with pytest.raises(DockerError) as caught:
        names(filters=filters)
    assert (caught.value.status, caught.value.message) == (400, message)


def test_before_an_unknown_container_is_a_404():
    with pytest.raises(DockerError) as caught:
        names(filters={"before": ["nosuch"]})
    assert caught.value.status == 404


def test_parse_filters_accepts_both_encodings_and_rejects_junk():
    assert parse_filters('{"name": {"web": true, "off": false}}') == {"name": ["web"]}
    assert parse_filters('{"name": ["web"]}') == {"name": ["web"]}
    assert parse_filters("") == {}
    for raw in ("{bad", "[1]", '{"name": [1]}'):
        with pytest.raises(DockerError) as caught:
            parse_filters(raw)
        assert caught.value.status == 400


def test_present_rewrites_names_ports_and_status():
    entry = present(CONTAINERS[0], NODES["A|1"], now=NOW)
    assert entry["Names"] == ["/node-a/web1"]
    assert entry["Ports"][0]["IP"] == "10.0.0.1"
    assert entry["Status"] == "Up 5 minutes"
    assert STATE_KEY not in entry
    exited = present(CONTAINERS[2], NODES["A|1"], now=NOW)
    assert exited["Status"] == "Exited (7) About a minute ago"
    assert present(CONTAINERS[3], NODES["B|2"], now=NOW)["Status"] == "Created"


@pytest.mark.parametrize("seconds, text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds, text):
    assert human_duration(seconds) == text


def test_live_status_paused_health_and_restarting():
    base = {"StartedAt": NOW - 10, "FinishedAt": NOW - 5, "ExitCode": 1, "Health": ""}
    assert live_status(dict(base, Status="paused"), NOW) == "Up 10 seconds (Paused)"
    assert live_status(dict(base, Status="restarting"), NOW) == "Restarting (1) 5 seconds ago"
    assert live_status(dict(base, Status="running", Health="starting"), NOW) == (
        "Up 10 seconds (health: starting)")
    assert live_status(dict(base, Status="running", Health="healthy"), NOW) == (
        "Up 10 seconds (healthy)")


@pytest.mark.parametrize("filters, expected", [
    # Go's regexp (RE2), as the Engine's filters.Args.Match (moby api/types/filters/parse.go)
    ({"name": [r"web1\z"]}, ["/node-a/web1"]),  # Go syntax Python's re lacked
    ({"name": ["web(?=1)"]}, []),  # Go refuses lookarounds: the value matches nothing
    ({"name": ["web1[", "web2"]}, ["/node-b/web2"]),  # an invalid value is skipped
    ({"name": ["/web1"]}, ["/node-a/web1"]),
])
def test_name_filters_are_re2(filters, expected):
    assert names(filters=filters) == expected


def test_pathological_name_filter_answers():
    # `(a+)+b` searched in a long run of `a`s: exponential on Python's re (issue 16).
    long = [*CONTAINERS, make("ddd555", "a" * 5_000, "A|1", created=5)]
    listed = select(long, NODES, show_all=True, limit=-1, filters={"name": ["(a+)+b"]})
    assert listed == []
    listed = select(long, NODES, show_all=True, limit=-1, filters={"name": ["(a+)+$"]})
    assert [e["Id"] for e in listed] == ["ddd555"]

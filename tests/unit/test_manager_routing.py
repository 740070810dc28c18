"""The API front's pure parts: version prefixes, routing, -H parsing, error texts."""

from __future__ import annotations

import argparse
import json

import pytest

from flock.manager.api.docker.app import Router, build_router, check_version, split_version
from flock.manager.api.docker.call import fill
from flock.manager.api.docker.errors import DockerError, parse_json_body
from flock.manager.app import ConfigError, parse_host
from flock.manager.cli import config_from_args, register
from flock.manager.cluster.call_stream import MAX_OPEN


@pytest.mark.parametrize("path, expected", [
    ("/v1.41/containers/json", ("1.41", "/containers/json")),
    ("/v1.24/_ping", ("1.24", "/_ping")),
    ("/containers/json", ("", "/containers/json")),
    ("/v1.41", ("1.41", "/")),
    ("/vx.y/info", ("", "/vx.y/info")),
    ("/version", ("", "/version")),
])
def test_split_version(path, expected):
    assert split_version(path) == expected


def test_check_version_uses_dockerds_words():
    check_version("", "1.41")
    check_version("1.24", "1.41")
    check_version("1.41", "1.41")
    with pytest.raises(DockerError) as caught:
        check_version("1.99", "1.41")
    assert caught.value.status == 400
    assert caught.value.message == (
        "client version 1.99 is too new. Maximum supported API version is 1.41")
    with pytest.raises(DockerError) as caught:
        check_version("1.9", "1.41")
    assert "is too old. Minimum supported API version is 1.24" in caught.value.message


def test_router_segments_and_greedy_references():
    router = Router()
    router.add("GET", "/containers/json", "list")
    router.add("GET", "/containers/{id*}/json", "inspect")
    router.add("DELETE", "/containers/{id*}", "remove")
    router.add("GET", "/exec/{id}/json", "exec")
    assert router.match("GET", "/containers/json") == ("list", {})
    assert router.match("GET", "/containers/node-a/web/json") == ("inspect", {"id": "node-a/web"})
    assert router.match("DELETE", "/containers/node-a/web") == ("remove", {"id": "node-a/web"})
    assert router.match("GET", "/exec/a/b/json") is None
    assert router.match("POST", "/containers/json") is None
    assert router.match("GET", "/containers/json/") == ("list", {})


def test_real_routes_send_names_with_slashes_to_the_container_handlers():
    router = build_router()
    handler, params = router.match("POST", "/containers/node-b/db/stop")
    assert handler.__name__ == "change" and params == {"id": "node-b/db"}
    handler, params = router.match("GET", "/images/library/busybox:latest/json")
    assert handler.__name__ == "inspect" and params == {"name": "library/busybox:latest"}
    assert router.match("GET", "/images/json")[0].__name__ == "list_images"
    assert router.match("POST", "/containers/create")[0].__name__ == "create"
    assert router.match("GET", "/swarm") is None


@pytest.mark.parametrize("raw, message", [
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b"x", "invalid character 'x' looking for beginning of value"),
    (b'{"a": 1', "unexpected end of JSON input"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b"{} x", "invalid character 'x' after top-level value"),
])
def test_malformed_json_messages(raw, message):
    with pytest.raises(DockerError) as caught:
        parse_json_body(raw)
    assert (caught.value.status, caught.value.message) == (400, message)


def test_parse_json_body_accepts_empty_and_valid():
    assert parse_json_body(b"") is None
    assert parse_json_body(json.dumps({"Image": "x"}).encode()) == {"Image": "x"}


@pytest.mark.parametrize("text, scheme, host, port, path", [
    ("tcp://127.0.0.1:2375", "tcp", "127.0.0.1", 2375, ""),
    ("tcp://:2375", "tcp", "0.0.0.0", 2375, ""),
    ("0.0.0.0:4000", "tcp", "0.0.0.0", 4000, ""),
    ("unix:///run/flock.sock", "unix", "", 0, "/run/flock.sock"),
])
def test_parse_host(text, scheme, host, port, path):
    listen = parse_host(text)
    assert (listen.scheme, listen.host, listen.port, listen.path) == (scheme, host, port, path)


@pytest.mark.parametrize("text", ["http://x:1", "tcp://host", "unix://", "tcp://h:99999"])
def test_parse_host_rejects(text):
    with pytest.raises(ConfigError):
        parse_host(text)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["manage", *argv])


def test_manage_options():
    config = config_from_args(parse([
        "-H", "tcp://0.0.0.0:4000", "-H", "unix:///tmp/x.sock", "--strategy", "binpack",
        "-f", "health", "-f", "constraint", "--heartbeat", "1m30s",
        "--cluster-opt", "swarm.overcommit=0.1", "--engine-failure-retry", "2",
        "--max-heartbeats", "20", "--call-streams", "100", "nodes://a:1,b:2"]))
    assert config.hosts == ["tcp://0.0.0.0:4000", "unix:///tmp/x.sock"]
    assert (config.strategy, config.filters, config.heartbeat) == ("binpack",
                                                                   ["health", "constraint"], 90)
    assert (config.overcommit, config.failure_retry, config.max_heartbeats) == (0.1, 2, 20)
    assert config.call_streams == 100
    assert config_from_args(parse(["a:1"])).max_heartbeats == 50
    assert config_from_args(parse(["a:1"])).call_streams == MAX_OPEN
    assert config_from_args(parse(["a:1"])).hosts == ["tcp://127.0.0.1:2375"]


@pytest.mark.parametrize("argv, words", [
    (["--heartbeat", "soon", "a:1"], "--heartbeat"),
    (["--cluster-opt", "swarm.nope=1", "a:1"], "unsupported --cluster-opt"),
    (["--cluster-opt", "swarm.overcommit=lots", "a:1"], "expected a number"),
    (["--engine-failure-retry", "0", "a:1"], "--engine-failure-retry"),
    (["--max-heartbeats", "-1", "a:1"], "--max-heartbeats -1: give a number"),
    (["--max-heartbeats", "nan", "a:1"], "--max-heartbeats nan"),
    (["--call-streams", "-1", "a:1"], "--call-streams -1: give a number of streams"),
])
def test_manage_bad_options(argv, words):
    with pytest.raises(ConfigError) as caught:
        config_from_args(parse(argv))
    assert words in str(caught.value)


def test_bad_discovery_url_exits_1_with_a_clear_message(capsys):
    from flock.manager.cli import main

    assert main(parse(["-H", "tcp://127.0.0.1:0", "foo://bar"])) == 1
    err = capsys.readouterr().err
    assert err.startswith("flock manage: error: discovery: ") and "foo://bar" in err


# Routes match the path as aiohttp's `path_safe` gives it (decoded but for %2F and %25),
# and each parameter is decoded once (issue 16, item 5): an encoded `/` or `?` stays in
# its parameter instead of choosing another route.
@pytest.mark.parametrize("method, path, handler, params", [
    ("GET", "/images/busybox%2Fjson%3Fx%3D/history", "on_one_holder",
     {"name": "busybox/json?x="}),
    ("GET", "/images/library/busybox/json", "inspect", {"name": "library/busybox"}),
    ("GET", "/images/library%2Fbusybox/json", "inspect", {"name": "library/busybox"}),
    ("GET", "/images/a%25%2F%23/json", "inspect", {"name": "a%/#"}),
    ("POST", "/exec/abc%2Fjson/start", "start", {"id": "abc/json"}),
    ("GET", "/containers/node-a%2Fweb/json", "inspect", {"id": "node-a/web"}),
    ("GET", "/volumes/v%3Fx", "inspect", {"name": "v?x"}),
])
def test_routes_match_before_parameters_are_decoded(method, path, handler, params):
    found, got = build_router().match(method, path)
    assert (found.__name__, got) == (handler, params)


@pytest.mark.parametrize("template, values, path", [
    ("/images/{name*}/history", {"name": "busybox/json?x="},
     "/images/busybox%2Fjson%3Fx%3D/history"),
    ("/images/{name*}/json", {"name": "registry:5000/a/b"},
     "/images/registry%3A5000%2Fa%2Fb/json"),
    ("/exec/{id}/start", {"id": "镜像#%"}, "/exec/%E9%95%9C%E5%83%8F%23%25/start"),
    ("/containers/{id*}/logs", {"id": "0123abcd"}, "/containers/0123abcd/logs"),
])
def test_a_route_is_rebuilt_with_each_parameter_one_segment(template, values, path):
    assert fill(template, values) == path

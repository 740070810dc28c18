"""The hot lane (manager/api/lane/): ping, version, create, start, inspect, removal, the
list and info answered without aiohttp's per-request layers must answer exactly as
aiohttp's path does, on the same connection as everything else, in order; the real
docker CLI and SDK runs take it.

Two halves. The answer writer against a real aiohttp server: the same Response gives
the same bytes (but the Date). Then a real `flock manage` with a hollow fleet (both
processes, bench/scale.py's Stack) over raw sockets: pipelined requests that switch
between the lane and aiohttp mid-connection, the same request through both paths,
request IDs and metrics, a head sent byte by byte, and the end of a connection."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess

import docker
import pytest
from aiohttp import web

from bench.scale import IMAGE, Stack, container_body
from flock.manager.api.docker.errors import error_response, json_answer
from flock.manager.api.lane.answer import answer_bytes, head_fields

pytestmark = pytest.mark.timeout(120)
_DATE = re.compile(rb"\r\nDate: [^\r]*")


# ---------------------------------------------------------------- raw HTTP helpers
def _request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return head.encode() + b"\r\n" + body


def _answers(sock: socket.socket, count: int, heads: tuple[bool, ...] = ()
             ) -> list[tuple[int, dict[str, str], bytes, bytes]]:
    """`count` answers read in order: (status, headers lower-cased, body, raw bytes);
    `heads[i]` true: answer i is to a HEAD (no body, whatever its length says)."""
    reader = sock.makefile("rb")
    out = []
    for index in range(count):
        raw = reader.readline()
        status = int(raw.split()[1])
        headers: dict[str, str] = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            raw += line
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        raw += b"\r\n"
        head_only = index < len(heads) and heads[index]
        body = b"" if head_only else reader.read(int(headers.get("content-length", "0")))
        out.append((status, headers, body, raw + body))
    return out


def _exchange(port: int, data: bytes, count: int, heads: tuple[bool, ...] = ()) -> list:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        return _answers(sock, count, heads)


# ---------------------------------------------------------------- the answer writer
def _responses() -> dict[str, web.Response]:
    return {
        "created": json_answer({"Id": "a" * 64, "Warnings": []}, status=201),
        "refused": error_response(404, "No such container: x"),
        "empty": web.Response(status=204),
        "relayed": web.Response(status=200, body=b'{"a":1}',
                                headers={"Content-Type": "application/json",
                                         "Api-Version": "1.41", "Ostype": "linux"}),
        "plain": web.Response(status=200, body=b"OK"),
        "nobody": web.Response(status=200, headers={"Content-Type": "text/plain"}),
        "closing": _closing(),
    }


def _closing() -> web.Response:
    response = error_response(500, "gone")
    response.force_close()
    return response


def test_the_lane_writes_the_bytes_aiohttp_writes():
    async def scenario() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return _responses()[request.match_info["name"]]

        app = web.Application()
        app.router.add_route("*", "/{name}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            for method in ("GET", "HEAD", "POST"):
                for name in _responses():
                    def fetch(name=name, method=method) -> bytes:
                        return _exchange(port, _request(method, f"/{name}"), 1,
                                         (method == "HEAD",))[0][3]
                    theirs = await asyncio.to_thread(fetch)
                    response = _responses()[name]
                    head_fields(response, method)
                    ours = answer_bytes(response, response.keep_alive is False, method)
                    assert _DATE.sub(b"", ours) == _DATE.sub(b"", theirs), (method, name)
                    assert _DATE.search(ours), name
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


# ---------------------------------------------------------------- through a manager
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    cluster = Stack(2, tmp_path_factory.mktemp("hot-lane"), heartbeat="2s")
    try:
        asyncio.run(cluster.start(progress=lambda text: None, timeout=60))
        yield cluster
    finally:
        cluster.stop()


def _create(name: str) -> bytes:
    return _request("POST", f"/v1.41/containers/create?name={name}",
                    json.dumps(container_body()).encode())


def test_pipelined_requests_switching_paths_answer_in_order(stack):
    """Create (lane), networks (aiohttp: the connection is handed over), start and
    inspect (aiohttp's now), all in one write."""
    data = (_create("lane-order") + _request("GET", "/v1.41/networks")
            + _request("POST", "/v1.41/containers/lane-order/start")
            + _request("GET", "/v1.41/containers/lane-order/json"))
    created, networks, started, inspect = _exchange(stack.port, data, 4)
    assert created[0] == 201, created
    assert networks[0] == 200 and isinstance(json.loads(networks[2]), list)
    assert started[0] == 204, started
    assert inspect[0] == 200 and json.loads(inspect[2])["State"]["Running"] is True


def test_many_pipelined_lane_requests_all_answer_in_order(stack):
    names = [f"lane-many-{i}" for i in range(40)]
    data = b"".join(_create(n) for n in names)
    data += b"".join(_request("POST", f"/containers/{n}/start") for n in names)
    data += b"".join(_request("GET", f"/containers/{n}/json") for n in names)
    answers = _exchange(stack.port, data, 3 * len(names))
    assert [a[0] for a in answers] == [201] * 40 + [204] * 40 + [200] * 40
    assert [json.loads(a[2])["Name"] for a in answers[80:]] == [f"/{n}" for n in names]


def test_a_removal_is_the_lanes_and_keeps_the_connection_there(stack):
    """Create, start, remove, create again on one connection (an SDK script's order):
    all four on the lane, the connection never handed to aiohttp; the removal is the
    manager's (the name is free again at once)."""
    before = _lane_counts(stack.port)
    data = (_create("lane-rm") + _request("POST", "/containers/lane-rm/start")
            + _request("DELETE", "/containers/lane-rm?force=1") + _create("lane-rm"))
    created, started, removed, again = _exchange(stack.port, data, 4)
    assert [a[0] for a in (created, started, removed, again)] == [201, 204, 204, 201]
    assert json.loads(again[2])["Id"] != json.loads(created[2])["Id"]
    after = _lane_counts(stack.port)
    # Only the second /metrics read's own connection was handed over (it is aiohttp's).
    assert after["handed_over"] == before["handed_over"] + 1
    assert after["answered"] >= before["answered"] + 4


def _same_answer(stack, request: bytes) -> tuple[tuple, tuple]:
    """`request` on the lane (first on its connection) and on aiohttp's path (after an
    OPTIONS, which no lane route takes: the connection is aiohttp's from it on)."""
    head = request.startswith(b"HEAD ")
    lane = _exchange(stack.port, request, 1, (head,))[0]
    _, aiohttp_path = _exchange(stack.port, _request("OPTIONS", "/") + request, 2,
                                (False, head))
    return lane, aiohttp_path


def _comparable(answer: tuple) -> tuple:
    status, headers, body, _ = answer
    return status, sorted(k for k in headers if k not in ("date",)), body


@pytest.mark.parametrize("request_bytes", [
    _request("GET", "/v1.41/containers/lane-nothing/json"),
    _request("GET", "/v1.41/containers/json?all=1&filters="
                    "%7B%22name%22%3A%5B%22lane-same%22%5D%7D"),
    _request("POST", "/v1.41/containers/create", b'{"Image": '),
    _request("POST", "/v1.41/containers/create", b'{"Image": 5}'),
    _request("POST", "/v1.41/containers/create?name=bad/name", b'{"Image": "busybox"}'),
    _request("POST", "/v1.41/containers/lane-nothing/start"),
    _request("GET", "/v9.99/containers/json"),
    _request("HEAD", "/_ping"),
    _request("GET", "/v1.41/_ping"),
    _request("GET", "/version"),
    _request("DELETE", "/v1.41/containers/lane-nothing?force=1"),
], ids=["unknown-inspect", "filtered-list", "malformed-json", "wrong-type", "bad-name",
        "unknown-start", "version-too-new", "head-ping", "ping", "version",
        "unknown-remove"])
def test_the_lane_answers_as_aiohttp_does(stack, request_bytes):
    lane, aiohttp_path = _same_answer(stack, request_bytes)
    assert _comparable(lane) == _comparable(aiohttp_path)


def test_an_existing_containers_inspect_is_the_same_on_both_paths(stack):
    assert _exchange(stack.port, _create("lane-same"), 1)[0][0] == 201
    lane, aiohttp_path = _same_answer(stack, _request("GET", "/containers/lane-same/json"))
    assert _comparable(lane) == _comparable(aiohttp_path)
    assert json.loads(lane[2])["Name"] == "/lane-same"


def test_request_ids_and_metrics_count_lane_requests(stack):
    def count(text: str) -> float:
        found = re.search(r'flock_api_requests_total\{method="GET",'
                          r'endpoint="/containers/\{id\*?\}/json",code="404"\} (\S+)', text)
        return float(found.group(1)) if found else 0.0

    def metrics() -> str:
        return _exchange(stack.port, _request("GET", "/metrics"), 1)[0][2].decode()

    before = count(metrics())
    answer = _exchange(stack.port, _request("GET", "/containers/lane-missing/json",
                                            headers={"X-Request-ID": "lane-req-1"}), 1)[0]
    assert answer[0] == 404 and answer[1]["x-request-id"] == "lane-req-1"
    fresh = _exchange(stack.port, _request("GET", "/containers/lane-missing/json"), 1)[0]
    assert re.fullmatch(r"[0-9a-f]{16,}", fresh[1]["x-request-id"]), fresh[1]
    assert count(metrics()) == before + 2


def test_a_head_sent_byte_by_byte_is_answered(stack):
    request = _request("GET", "/containers/json?all=1")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(request)):
            sock.send(request[i:i + 1])
        (status, headers, body, _), = _answers(sock, 1)
    assert status == 200 and isinstance(json.loads(body), list)


def test_a_body_cut_by_the_clients_end_loses_nothing(stack):
    """The client sends half a create and shuts its side: no container is made, and
    the manager goes on answering."""
    whole = _create("lane-cut")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(whole[:-10])
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert b" 201 " not in rest.split(b"\r\n", 1)[0]
    status = _exchange(stack.port, _request("GET", "/containers/lane-cut/json"), 1)[0][0]
    assert status == 404


def _lane_counts(port: int) -> dict[str, float]:
    text = _exchange(port, _request("GET", "/metrics"), 1)[0][2].decode()
    return {what: float(value) for what, value in
            re.findall(r'flock_api_hot_lane\{what="(\w+)"\} (\S+)', text)}


def test_the_lane_is_counted_and_can_be_turned_off(stack, monkeypatch, tmp_path):
    _exchange(stack.port, _request("GET", "/containers/json") + _request("OPTIONS", "/"), 2)
    on = _lane_counts(stack.port)
    assert on["answered"] >= 1 and on["handed_over"] >= 1, on

    monkeypatch.setenv("FLOCK_HOT_LANE", "off")
    plain = Stack(1, tmp_path, heartbeat="2s")
    try:
        asyncio.run(plain.start(progress=lambda text: None, timeout=60))
        created, started = _exchange(plain.port, _create("lane-off") + _request(
            "POST", "/containers/lane-off/start"), 2)
        assert (created[0], started[0]) == (201, 204)
        assert _lane_counts(plain.port) == {"answered": 0, "handed_over": 0, "open": 0}
    finally:
        plain.stop()


def test_a_wrong_lane_choice_is_refused_with_the_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOCK_HOT_LANE", "fast")
    wrong = Stack(1, tmp_path, heartbeat="2s")
    try:
        with pytest.raises(RuntimeError, match=r"FLOCK_HOT_LANE='fast': use on or off"):
            asyncio.run(wrong.start(progress=lambda text: None, timeout=60))
    finally:
        wrong.stop()


def test_the_docker_cli_and_sdk_runs_take_the_lane(stack):
    """The real clients: `docker run -d` sends a HEAD /_ping, the create and the wait
    on one connection (the wait is aiohttp's: it streams), and the start, once the
    wait's head is in, on a second one (seen on the wire with tcpdump);
    the SDK's run sends GET /version first, then create, an inspect and start. Had the
    first request handed the connection to aiohttp, the rest would not count here."""
    before = _lane_counts(stack.port)
    host = f"tcp://127.0.0.1:{stack.port}"
    run = subprocess.run(["docker", "-H", host, "run", "-d", "--name", "lane-cli", IMAGE,
                          "sleep", "1d"], capture_output=True, timeout=60,
                         env={"PATH": os.environ["PATH"], "HOME": str(stack.folder)})
    assert run.returncode == 0, run.stderr
    after_cli = _lane_counts(stack.port)
    assert after_cli["answered"] == before["answered"] + 3  # ping, create, start

    client = docker.DockerClient(base_url=host, version="auto", timeout=60)
    try:
        container = client.containers.run(IMAGE, ["sleep", "1d"], name="lane-sdk",
                                          detach=True)
        after_sdk = _lane_counts(stack.port)
        container.reload()
        assert container.status == "running"
    finally:
        client.close()
    assert after_sdk["answered"] == after_cli["answered"] + 4  # version, create, json, start

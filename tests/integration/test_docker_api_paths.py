"""Names, IDs and references reach the engines encoded (issue 16, item 5): an encoded
`/`, `?`, `#` or `%` in a reference can no longer turn one endpoint into another (the
history of `busybox%2Fjson%3Fx%3D` was busybox's inspect), and non-ASCII names get the
engine's 4xx, never a 500 or a traceback, on the docker runtime and on the exec runtime.

Requests go out byte for byte as written here (the CLI and SDK always encode, so the
odd ones are sent by hand), to the manager and, for comparison, to the real engine.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import pathlib
import socket
import urllib.parse
import uuid

import pytest

from flock.local_cluster import LocalCluster
from tests.integration.test_hollow_calls import _scenario as hollow_scenario
from tests.support.cluster import wait_for

pytestmark = pytest.mark.docker


def exchange(sock: socket.socket, method: str, target: bytes, headers: bytes = b"",
             body: bytes = b"") -> tuple[int, object]:
    """One HTTP/1.1 request with `target` exactly as given: (status, JSON or text)."""
    with sock:
        sock.settimeout(30)
        sock.sendall(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: docker\r\n"
                     b"Connection: close\r\n" + headers
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        raw = answer.read()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw.decode(errors="replace")


def at_port(port: int, method: str, target: str | bytes, headers: bytes = b"",
            body: bytes = b""):
    target = target.encode() if isinstance(target, str) else target
    return exchange(socket.create_connection(("127.0.0.1", port)), method, target, headers,
                    body)


def at_engine(engine, method: str, target: str | bytes):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(engine.socket)
    return exchange(sock, method, target.encode() if isinstance(target, str) else target)


def failures(caplog) -> list[str]:
    """Log records that are errors or carry a traceback."""
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR or record.exc_info]


@pytest.fixture(scope="module")
def things(cluster):
    """On node-a: a running container with an exec instance, a network, a volume."""
    before = cluster.container_ids()
    tag = uuid.uuid4().hex[:6]
    names = {"c": f"path-c-{tag}", "n": f"path-n-{tag}", "v": f"path-v-{tag}"}
    cluster.docker("run", "-d", "--name", names["c"], "-e", "constraint:node==node-a",
                   "busybox", "sleep", "600")
    cluster.docker("network", "create", f"node-a/{names['n']}")
    cluster.docker("volume", "create", f"node-a/{names['v']}")
    status, made, _ = cluster.api("POST", f"/containers/{names['c']}/exec",
                                  json.dumps({"Cmd": ["true"]}).encode(),
                                  {"Content-Type": "application/json"})
    assert status == 201, made
    names["e"] = made["Id"]
    yield names
    engine = cluster.engines[0]
    engine.docker("network", "rm", names["n"], check=False)
    cluster.remove_new_containers(before)
    engine.docker("volume", "rm", "-f", names["v"], check=False)


# moby api/server/router/image/image.go routes `/images/{name:.*}/history` etc. on the
# decoded path, so the engine reads these as the (invalid) names below; the manager, which
# asks every node for the image first, answers its 404 for a name no node holds.
@pytest.mark.parametrize("target, name", [
    ("/images/busybox%2Fjson%3Fx%3D/history", "busybox/json?x="),  # was busybox's inspect
    ("/images/busybox%2Fjson%23/history", "busybox/json#"),
    ("/images/busybox%25%2Fjson/history", "busybox%/json"),
    ("/v1.41/images/busybox%2Fjson%3Fx%3D/get", "busybox/json?x="),
])
def test_an_encoded_image_reference_names_no_other_endpoint(cluster, target, name, caplog):
    status, answer = at_port(cluster.port, "GET", target)
    assert (status, answer) == (404, {"message": f"No such image: {name}"})
    # The engine, asked directly, refuses it too (400 invalid reference; 500 for a save).
    assert at_engine(cluster.engines[0], "GET", target)[0] >= 400
    assert not failures(caplog)


# The engine decodes a path once and matches `{name:.*}` / `{id:.*}` (moby's
# api/server/router/container/container.go, network/network.go, volume/volume.go): the
# manager's answers are the engine's, word for word.
@pytest.mark.parametrize("method, target", [
    ("GET", "/containers/{c}%2Fjson%3Fx%3D/logs?stdout=1"),
    ("GET", "/containers/{c}%23/json"),
    ("POST", "/containers/{c}%2Fjson/stop"),
    ("GET", "/exec/{e}%2Fjson/json"),  # 501 before: the decoded path had one more segment
    ("POST", "/exec/{e}%2Fjson/resize?h=10&w=10"),
    ("GET", "/exec/{e}%3F/json"),
    ("GET", "/networks/{n}%3Fx"),
    ("DELETE", "/networks/{n}%25"),
    ("GET", "/volumes/{v}%3Fx%3D"),
    ("DELETE", "/volumes/{v}%23"),
])
def test_encoded_references_get_the_engines_answer(cluster, things, method, target):
    target = target.format(**things)
    manager = at_port(cluster.port, method, target)
    engine = at_engine(cluster.engines[0], method, target)
    assert manager == engine and manager[0] == 404, (manager, engine)
    # and nothing was touched: the container runs, the network and volume are there
    assert cluster.engines[0].docker("inspect", "-f", "{{.State.Running}}",
                                     things["c"]).stdout == b"true\n"
    assert cluster.engines[0].docker("network", "inspect", things["n"]).returncode == 0
    assert cluster.engines[0].docker("volume", "inspect", things["v"]).returncode == 0


def test_slashed_image_names_and_node_references_still_work(cluster, things):
    inspect = json.loads(cluster.docker("image", "inspect", "library/busybox").stdout)
    assert inspect[0]["RepoTags"] == ["busybox:latest"]
    assert b"Imported from -" in cluster.docker("history", "library/busybox:latest").stdout
    status, answer = at_port(cluster.port, "GET", "/images/library%2Fbusybox/history")
    assert status == 200 and answer[0]["Tags"] == ["busybox:latest"]
    for ref in (f"node-a/{things['c']}", f"node-a%2F{things['c']}"):
        status, answer = at_port(cluster.port, "GET", f"/containers/{ref}/json")
        assert status == 200 and answer["Name"] == f"/{things['c']}"
    assert cluster.docker("network", "inspect", f"node-a/{things['n']}").returncode == 0
    assert cluster.docker("volume", "inspect", f"node-a/{things['v']}").returncode == 0


NON_ASCII = ["%E9%95%9C%E5%83%8F", "%C3%ADmage", "%F0%9F%98%80"]  # 镜像, ímage, 😀
REQUESTS = [("GET", "/images/{x}/json"), ("GET", "/images/{x}/history"),
            ("DELETE", "/images/{x}"), ("POST", "/images/{x}/tag?repo=y"),
            ("GET", "/images/get?names={x}"),
            ("GET", "/containers/{x}/json"), ("POST", "/containers/{x}/start"),
            ("GET", "/exec/{x}/json"), ("POST", "/exec/{x}/resize"),
            ("GET", "/networks/{x}"), ("DELETE", "/volumes/{x}"),
            ("POST", "/containers/create?name={x}"), ("POST", "/images/create?fromImage={x}"),
            ("POST", "/images/create?fromSrc=-&repo={x}")]
JSON = b"Content-Type: application/json\r\n"


def create_with_image(port: int, name: str) -> tuple[int, object]:
    """A create naming image `name` (percent-encoded UTF-8) in its body."""
    image = urllib.parse.unquote(name)
    return at_port(port, "POST", "/containers/create", JSON,
                   json.dumps({"Image": image, "Cmd": ["true"]}).encode())


@pytest.mark.parametrize("name", NON_ASCII)
def test_non_ascii_names_get_a_4xx_on_the_docker_runtime(cluster, name, caplog):
    for method, target in REQUESTS:
        status, answer = at_port(cluster.port, method, target.format(x=name))
        assert 400 <= status < 500 and "message" in answer, (method, target, status, answer)
    # dockerd's own answer to such a create, relayed
    assert create_with_image(cluster.port, name) == (400, {"message": "invalid reference format"})
    # A tag to a bad repository is a 500 from dockerd itself: relayed as it is.
    tag = f"/images/busybox/tag?repo={name}"
    engine_status, engine_answer = at_engine(cluster.engines[0], "POST", tag)
    status, answer = at_port(cluster.port, "POST", tag)
    assert status == engine_status
    assert sorted(answer["message"].split("; ")) == [
        f"{node}: {engine_answer['message']}" for node in ("node-a", "node-b")]
    assert not failures(caplog)


def test_non_ascii_headers_reach_the_engine_or_get_a_400(cluster, things, caplog):
    meta = "X-Meta: 镜像 ímage 😀\r\n".encode()
    status, answer = at_port(cluster.port, "GET", f"/containers/{things['c']}/json", meta)
    assert status == 200 and answer["Name"] == f"/{things['c']}"
    status, answer = at_port(cluster.port, "GET", f"/containers/{things['c']}/top", meta)
    assert status == 200 and answer["Processes"]
    # Not UTF-8: the agent protocol carries text, so the manager says which header.
    status, answer = at_port(cluster.port, "GET", f"/containers/{things['c']}/json",
                             "X-Meta: ímage\r\n".encode("latin-1"))
    assert (status, answer) == (400, {"message": "invalid header X-Meta: its value is not "
                                                 "UTF-8 text"})
    assert not failures(caplog)


@pytest.mark.parametrize("path", ["/images/镜像/json", "/containers/ímage/json",
                                  "/exec/😀/json", "/volumes/镜像"])
def test_the_agent_encodes_what_arrives_unencoded(cluster, path, caplog):
    """An agent given a raw non-ASCII path (by a client other than this manager) sends
    the engine what the docker CLI would: the answer is the engine's own."""
    node = cluster.manager.state.node_by_name("node-a")
    client = cluster.manager.cluster.clients.get(node.id)
    status, answer = cluster.lt.run(client.request_json("GET", path))
    assert (status, answer) == at_engine(cluster.engines[0], "GET", path.encode())
    assert 400 <= status < 500
    assert not failures(caplog)


def test_the_hollow_agent_answers_non_ascii_names_itself(caplog):
    """In process (DockerCall) or through its socket (the bridge), the same 4xx."""
    async def check(runtime, client, socket):
        for method, path in [("GET", "/containers/镜像/json"), ("DELETE", "/containers/ímage"),
                             ("GET", "/containers/%E9%95%9C%E5%83%8F/json"),
                             ("GET", "/images/镜像/json"), ("GET", "/exec/😀/json"),
                             ("GET", "/volumes/镜像")]:
            done = await client.request(method, path, "", [("X-Meta", "镜像")], None,
                                        api_version="1.41")
            answer = json.loads(await done.body())
            # 404, or the runtime's own 501 for images and execs, which it does not keep
            assert done.status in (404, 501) and "message" in answer, (path, answer)

    asyncio.run(hollow_scenario(check))
    assert not failures(caplog)


@pytest.fixture(scope="module")
def exec_cluster(tmp_path_factory):
    """A manager and one agent on the exec runtime, real processes logging to files."""
    state = tmp_path_factory.mktemp("exec-paths")
    with LocalCluster(agents=1, runtime="exec", state_dir=state) as made:
        yield made


def tracebacks(folder: pathlib.Path) -> list[str]:
    return [f"{log.name}: {line}" for log in folder.glob("*.log")
            for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]


@pytest.mark.parametrize("name", NON_ASCII)
def test_non_ascii_names_get_a_4xx_on_the_exec_runtime(exec_cluster, name):
    for method, target in [*REQUESTS, ("POST", "/images/busybox/tag?repo={x}")]:
        status, answer = at_port(exec_cluster.port, method, target.format(x=name))
        assert 400 <= status < 500 and "message" in answer, (method, target, status, answer)
    status, answer = create_with_image(exec_cluster.port, name)
    assert 400 <= status < 500 and "message" in answer, answer
    status, answer = at_port(exec_cluster.port, "GET", "/images/busybox%2Fjson%3Fx%3D/history")
    assert (status, answer) == (404, {"message": "No such image: busybox/json?x="})
    wait_for(lambda: exec_cluster.api("GET", "/_ping")[0] == 200)
    assert not tracebacks(exec_cluster.state_dir)


@pytest.mark.parametrize("method, target, warned", [
    ("GET", "/images/镜像/json".encode(), True),  # raw UTF-8 in the request line
    ("GET", b"/containers/\xff/json", True),
    # A method aiohttp's parser does not know: on a connection's first request aiohttp
    # logs it at debug level itself (it is what port scanners send).
    ("BREW", b"/containers/json", False),
])
def test_requests_that_are_not_valid_http_log_no_traceback(cluster, method, target, warned,
                                                           caplog):
    """aiohttp refuses these itself with a 400 before the manager sees them, and logged
    the first two as an ERROR with a traceback (manager/api/malformed_requests.py): the
    client erred, not the manager, so it is one warning line naming the client."""
    for _ in range(2):
        status, _ = at_port(cluster.port, method, target)
        assert status == 400
    assert not failures(caplog)
    said = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(said) == (2 if warned else 0), said
    assert all("refused a request from 127.0.0.1 that is not valid HTTP" in s for s in said)

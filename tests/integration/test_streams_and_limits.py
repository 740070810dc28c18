"""Streamed request bodies and the limits of client connections, against a manager on two
real engines (issue 16, items 4 and 7).

An engine that refuses a build, an import or an archive put before reading its body
answers and closes; the manager relays that answer, status and message, as the engine
gave it (the engines are asked the same directly), and stays usable. Bodies of streamed
routes are not capped (the engine caps none). A client that sends nothing, or a head
too slowly, is closed like dockerd closes it after its ReadHeaderTimeout (moby/moby
cmd/dockerd/daemon.go: `http.Server{ReadHeaderTimeout: 5 * time.Minute}`); here the
limits are set short for the test.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
import uuid

import pytest

from flock.manager.api.client_limits import ClientLimits
from tests.support import rawhttp
from tests.support.cluster import Cluster

pytestmark = pytest.mark.docker

NODES = ["node-a", "node-b"]
LIMITS = ClientLimits(header_timeout=2.0, idle_timeout=3.0, max_per_client=6)
MB = 1 << 20


# The shared `cluster` fixture (tests/integration/conftest.py).
CLUSTER = dict(names=NODES, client_limits=LIMITS)


@pytest.fixture(scope="module")
def container(cluster, engine_pair):
    """(full ID, its engine): the target of the archive puts."""
    name = f"put-{uuid.uuid4().hex[:6]}"
    cluster.docker("create", "--name", name, "busybox", "true")
    cid = cluster.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    engine = engine_pair[NODES.index(cluster.node_of(name))]
    yield cid, engine
    cluster.docker("rm", "-f", cid, check=False)


def noise(size: int) -> bytes:
    return os.urandom(size)


def tar_without_dockerfile(size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = size
        tar.addfile(info, io.BytesIO(noise(size)))
    return out.getvalue()


def manager_address(cluster: Cluster) -> tuple[str, int]:
    return ("127.0.0.1", cluster.port)


def assert_manager_answers(cluster: Cluster) -> None:
    assert cluster.api("GET", "/_ping")[0] == 200


# An engine refuses these before (or while) reading a 10 MB body: its answer, status
# and message, is what the manager must relay. 4xx for import and archive put (moby
# api/server/router/image/image_routes.go, container/copy.go), 500 for a build's.
BUILD_AND_IMPORT = [
    ("build, not a tar", "/v1.41/build", lambda: noise(10 * MB)),
    ("build, no Dockerfile", "/v1.41/build", lambda: tar_without_dockerfile(10 * MB)),
    ("build, bad tag", "/v1.41/build?t=BAD:x:y", lambda: noise(10 * MB)),
    ("import, bad repository", "/v1.41/images/create?fromSrc=-&repo=UPPER",
     lambda: noise(10 * MB)),
    ("import, bad change", "/v1.41/images/create?fromSrc=-&repo=x&changes=BOGUS",
     lambda: noise(10 * MB)),
]


@pytest.mark.parametrize("what,path,body", BUILD_AND_IMPORT,
                         ids=[case[0] for case in BUILD_AND_IMPORT])
def test_an_early_refusal_is_the_engines_answer(cluster, engine_pair, what, path, body):
    data = body()
    direct = rawhttp.request(engine_pair[0].socket, "POST", path, data)
    assert direct.status >= 400  # the case is a refusal at the engine itself
    relayed = rawhttp.request(manager_address(cluster), "POST", path, data)
    assert (relayed.status, unprefixed(relayed.message)) == (direct.status, direct.message)
    assert_manager_answers(cluster)


def unprefixed(message: str) -> str:
    """An import goes to every node; refused by all, the answer names the node whose
    refusal it gives (images.fan_out). A build goes to one node and names none."""
    node, sep, rest = message.partition(": ")
    return rest if sep and node in NODES else message


@pytest.mark.parametrize("query", ["?path=/nonexistent", ""])
def test_an_archive_put_refused_early_is_the_engines_answer(cluster, container, query):
    cid, engine = container
    path = f"/v1.41/containers/{cid}/archive{query}"
    data = noise(10 * MB)
    direct = rawhttp.request(engine.socket, "PUT", path, data)
    assert 400 <= direct.status < 500
    relayed = rawhttp.request(manager_address(cluster), "PUT", path, data)
    assert (relayed.status, relayed.message) == (direct.status, direct.message)
    assert_manager_answers(cluster)


def test_a_load_refused_by_every_node_says_why_per_node(cluster, engine_pair):
    data = noise(10 * MB)
    direct = rawhttp.request(engine_pair[0].socket, "POST", "/v1.41/images/load", data)
    error = direct.lines()[-1]["error"]  # the engine answers 200, then an error line
    relayed = rawhttp.request(manager_address(cluster), "POST", "/v1.41/images/load", data)
    assert relayed.status == direct.status == 200
    assert sorted(line["error"] for line in relayed.lines()) == [
        f"{node}: {error}" for node in NODES]
    assert_manager_answers(cluster)


def test_an_answer_before_the_body_is_read_closes_the_connection(cluster):
    """The client still sending when the refusal comes is told the connection ends
    (as dockerd says `Connection: close`), gets the whole answer, and is not left
    waiting: the connection closes once it is done sending."""
    with socket.create_connection(manager_address(cluster), timeout=30) as sock:
        sock.sendall(b"POST /v1.41/images/create?fromSrc=-&repo=UPPER HTTP/1.1\r\n"
                     b"Host: flock\r\nContent-Length: %d\r\n\r\n" % (10 * MB) + noise(MB))
        answer = socket_answer(sock)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"
        assert b"repository name must be lowercase" in answer
        try:
            sock.sendall(noise(9 * MB))
        except OSError:
            pass  # closed while we sent: what a client sees from dockerd too
        assert drain(sock) == b""


def socket_answer(sock: socket.socket) -> bytes:
    """The answer of a Content-Length response, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += receive(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += receive(sock)
    return head + b"\r\n\r\n" + body


def receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the connection closed before the whole answer"
    return chunk


def drain(sock: socket.socket) -> bytes:
    """What the server still sends before it closes (b"" when it just closes); a
    timeout (the test's failure) if it never does."""
    rest = b""
    try:
        while chunk := sock.recv(65536):
            rest += chunk
    except ConnectionResetError:
        pass
    return rest


def test_streamed_bodies_are_not_capped_at_the_json_limit(cluster, engine_pair):
    """dockerd caps no build context; the manager's 64 MiB cap is for JSON bodies."""
    from flock.manager.api.docker.app import MAX_BODY

    data = noise(MAX_BODY + MB)
    relayed = rawhttp.request(manager_address(cluster), "POST", "/v1.41/build", data)
    direct = rawhttp.request(engine_pair[0].socket, "POST", "/v1.41/build", data)
    assert (relayed.status, relayed.message) == (direct.status, direct.message)
    assert relayed.status != 413


def test_a_client_that_sends_nothing_is_closed_after_the_idle_timeout(cluster):
    with socket.create_connection(manager_address(cluster), timeout=30) as sock:
        assert drain(sock) == b""


def test_a_head_sent_too_slowly_is_closed_after_the_header_timeout(cluster):
    """A byte every half second keeps the connection from being idle; the head is
    never finished, so the header timeout closes it."""
    with socket.create_connection(manager_address(cluster), timeout=30) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\n")
        closed = False
        for _ in range(60):  # 30 s, far past the 2 s header timeout
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:  # an X that reached the closed socket: a reset
                closed = True
                break
        assert closed


def test_an_idle_keep_alive_connection_is_closed(cluster):
    with socket.create_connection(manager_address(cluster), timeout=30) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: flock\r\n\r\n")
        answer = socket_answer(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"OK")
        assert drain(sock) == b""


def test_a_request_in_progress_outlives_both_timeouts(cluster):
    """Serving a request is neither idle nor header time: a wait held open for longer
    than both timeouts together gets its answer."""
    name = f"wait-{uuid.uuid4().hex[:6]}"
    cluster.docker("run", "-d", "--name", name, "busybox", "sleep", "10")
    try:
        started = time.monotonic()
        status, body, _ = cluster.api("POST", f"/v1.41/containers/{name}/wait")
        assert (status, body["StatusCode"]) == (200, 0)
        assert time.monotonic() - started > LIMITS.idle_timeout + LIMITS.header_timeout
    finally:
        cluster.docker("rm", "-f", name, check=False)


def test_connections_past_the_cap_per_address_are_refused(cluster):
    """The one past the cap is answered at once, before it sends anything."""
    held = [socket.create_connection(manager_address(cluster), timeout=30)
            for _ in range(LIMITS.max_per_client + 1)]
    try:
        answer = socket_answer(held[-1])
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections from 127.0.0.1" in answer
        assert b"--max-client-conns" in answer
    finally:
        for sock in held:
            sock.close()
    # The held ones are released as they close: a new client gets in.
    deadline = time.monotonic() + 10
    while cluster.api("GET", "/_ping")[0] != 200:
        assert time.monotonic() < deadline, "the cap was not released"
        time.sleep(0.1)

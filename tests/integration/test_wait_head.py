"""A wait's head, written by the manager itself before the node answers (manager/api/
docker/containers.wait), with the real docker CLI and engines: `docker run` still gets
every exit code (the agent keeps the wait ahead of the start, agent/wait_heads.py); the
head comes at once from API 1.30 and only with the exit before it, as the engine's
does (moby's postContainersWait); a wait that fails after its head says why in the
body, as the engine's own do; a condition the manager does not know is the engine's
to refuse."""

from __future__ import annotations

import json
import socket

import pytest

from flock.manager.cluster.records import created_record

pytestmark = pytest.mark.docker


def _open_wait(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n".encode())
    return sock


def _read_some(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def _read_until(sock: socket.socket, marker: bytes, seen: bytes = b"") -> bytes:
    sock.settimeout(30)
    while marker not in seen:
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    return seen


def _wait_body(raw: bytes) -> dict:
    """The JSON of a wait's answer (chunked or not: its one JSON line)."""
    line = next(part for part in raw.split(b"\r\n") if part.startswith(b"{"))
    return json.loads(line)


def test_docker_run_gets_every_exit_code(cluster, names):
    """The CLI sends its start only once the wait's head is in; the manager writes that
    head before the engine has the wait, so each run also tests the agent's hold."""
    for _ in range(4):
        run = cluster.docker("run", "--name", names("code"), "busybox", "sh", "-c",
                             "exit 3", check=False)
        assert run.returncode == 3, run.stderr
    run = cluster.docker("run", "--rm", "busybox", "sh", "-c", "exit 5", check=False)
    assert run.returncode == 5, run.stderr


def test_the_head_comes_before_the_exit_from_api_1_30_and_with_it_before(cluster, names):
    for version, early in (("v1.41", True), ("v1.24", False)):
        name = names("waited")
        cluster.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
        with _open_wait(cluster.port, f"/{version}/containers/{name}/wait") as sock:
            first = _read_some(sock, 3)
            if early:
                assert first.startswith(b"HTTP/1.1 200 "), first
                assert b"\r\n\r\n" in first and b"StatusCode" not in first
                head = first.split(b"\r\n\r\n")[0].decode().lower()
                fields = {line.partition(":")[0] for line in head.split("\r\n")[1:]}
                # The engine's own head's fields, as the node's head brought them before.
                assert {"api-version", "content-type", "docker-experimental",
                        "ostype"} <= fields, head
            else:
                assert first == b""  # the engine answers a pre-1.30 wait only at the exit
            cluster.docker("kill", name)
            raw = _read_until(sock, b"StatusCode", first)
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert _wait_body(raw)["StatusCode"] == 137


def test_a_wait_the_engine_refuses_after_the_head_says_why_in_the_body(cluster):
    """A record of a container its engine does not have (removed behind the manager's
    back, its event not in yet): the head is out before the engine says 404, so the
    body says it, as the engine's own failures after its head do, and the record goes."""
    manager = cluster.manager
    node = manager.state.healthy_nodes()[0]
    ghost = "0" * 63 + "1"

    async def write_ghost() -> None:
        manager.cluster.records.write(created_record(node.id, ghost, "ghost",
                                                     {"Image": "busybox"}, 1))
    cluster.lt.run(write_ghost())
    with _open_wait(cluster.port, f"/v1.41/containers/{ghost}/wait") as sock:
        raw = _read_until(sock, b"StatusCode")
    assert raw.startswith(b"HTTP/1.1 200 ")
    answer = _wait_body(raw)
    assert answer["StatusCode"] == -1
    assert answer["Error"]["Message"] == f"No such container: {ghost}"
    assert cluster.api("GET", f"/containers/{ghost}/json")[0] == 404


def _engine_wait(engine, container_id: str, query: str) -> tuple[int, dict]:
    """The engine's own answer to a wait, over its socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(engine.socket)
        sock.sendall(f"POST /v1.41/containers/{container_id}/wait?{query} HTTP/1.1\r\n"
                     "Host: docker\r\nContent-Length: 0\r\n\r\n".encode())
        raw = _read_until(sock, b"}")
    return int(raw.split()[1]), _wait_body(raw)


@pytest.mark.parametrize("condition", ["bogus", "not-running"])
def test_a_condition_the_manager_does_not_know_is_the_engines_to_judge(cluster, names,
                                                                      condition):
    """Engines differ here (20.10 ignores an unknown condition, later ones refuse it
    with a 400; "not-running" by name was refused before 20.10): the answer through the
    manager is the engine's, whatever it is."""
    name = names("cond")
    cluster.docker("create", "--name", name, "busybox", "true")
    container_id = cluster.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    engine = cluster.engines[cluster.names.index(cluster.node_of(name))]
    status, body, _ = cluster.api("POST", f"/v1.41/containers/{name}/wait"
                                          f"?condition={condition}")
    assert (status, body) == _engine_wait(engine, container_id, f"condition={condition}")

"""Bad input and failures at the manager's Docker API: unsupported endpoints, a huge
body, clients that go away mid-stream, and a node that dies during a hijacked session
or a pull. The manager answers cleanly, frees what it held and keeps serving."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from flock.manager.app import Manager, ManagerConfig
from tests.conftest import free_port
from tests.support.cluster import wait_for
from tests.support.registry import have_registry, start_registry

pytestmark = pytest.mark.docker
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def listeners(engine) -> int:
    info = json.loads(engine.docker("info", "--format", "{{json .}}").stdout)
    return info["NEventsListener"]


@pytest.mark.parametrize("path", ["/services", "/tasks", "/nodes", "/secrets", "/configs",
                                  "/plugins", "/swarm/join"])
def test_unsupported_endpoints_answer_501_at_once(cluster, path):
    started = time.monotonic()
    status, body, _ = cluster.api("GET" if path != "/swarm/join" else "POST", "/v1.41" + path)
    assert time.monotonic() - started < 2
    assert status == 501 and "is not supported by the manager" in body["message"]
    if path != "/swarm/join":
        assert "classic Swarm" in body["message"]


def test_the_cli_hears_why_swarm_mode_is_missing(cluster):
    proc = cluster.docker("service", "ls", check=False, timeout=10)
    assert proc.returncode != 0 and b"swarm-mode services" in proc.stderr


def test_a_huge_body_is_a_413_and_the_manager_keeps_serving(cluster):
    body = b'{"Image": "' + b"x" * (65 << 20) + b'"}'
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=30) as sock:
        sock.sendall(b"POST /containers/create HTTP/1.1\r\nHost: flock\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        with contextlib.suppress(OSError):  # the manager may stop reading early
            sock.sendall(body)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"request body too large" in answer
    assert cluster.api("GET", "/_ping")[0] == 200


def test_clients_gone_mid_stream_free_the_nodes_streams(cluster, names):
    name = names("gone")
    cluster.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                   "while true; do echo tick; sleep 0.2; done")
    engine = cluster.engines[cluster.names.index(cluster.node_of(name))]
    baseline = listeners(engine)
    for path in ("/events", f"/containers/{name}/logs?follow=1&stdout=1",
                 f"/containers/{name}/stats"):
        sock = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
        sock.sendall(f"GET /v1.41{path} HTTP/1.1\r\nHost: flock\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        if path == "/events":
            wait_for(lambda: listeners(engine) > baseline, what="the node's event stream")
        sock.close()  # gone without a word
    # The node's event listener opened for that client is let go.
    wait_for(lambda: listeners(engine) == baseline, what="the event stream freed")
    assert cluster.api("GET", "/_ping")[0] == 200
    assert cluster.docker("logs", "--tail", "1", name).stdout == b"tick\n"


@pytest.fixture
def doomed(cluster, engine_pair, tmp_path):
    """A second manager over node-a and a node-k agent process that the test kills."""
    addr = f"127.0.0.1:{free_port()}"
    agent = subprocess.Popen(
        [sys.executable, "-m", "flock", "join", "--advertise", addr, "--runtime", "docker",
         "--docker-host", engine_pair[1].url, "--name", "node-k", "--state-dir",
         str(tmp_path / "k")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    port = free_port()
    manager = Manager(ManagerConfig(discovery=f"{cluster.addrs[0]},{addr}",
                                    hosts=[f"tcp://127.0.0.1:{port}"], heartbeat=30.0,
                                    failure_retry=3))
    started = False
    try:
        # The manager's first look at node-k must find it up: with a 30 s heartbeat a
        # miss would only be retried after the wait below has given up.
        wait_for(lambda: _listening(addr), 30, "the node-k agent to listen")
        cluster.lt.run(manager.start())
        started = True
        wait_for(lambda: len(manager.state.healthy_nodes()) == 2, 30, "node-k healthy")
        yield f"tcp://127.0.0.1:{port}", agent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)
        if started:
            cluster.lt.run(manager.stop())


def _listening(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_node_dying_during_a_hijacked_session_and_a_pull(cluster, names, doomed, tmp_path):
    url, agent = doomed
    name = names("hij")
    session = subprocess.Popen(["docker", "-H", url, "run", "-i", "--name", name, "-e",
                                "constraint:node==node-k", "busybox", "cat"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        session.stdin.write(b"before\n")
        session.stdin.flush()
        assert session.stdout.readline() == b"before\n"
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)
        session.wait(20)  # the session ends instead of hanging
    finally:
        session.kill()
        session.wait(10)
    if not have_registry():
        pytest.fail("docker-registry is not installed: run scripts/test.sh")
    registry = start_registry(tmp_path / "registry")
    try:
        ref = registry.ref("doomed:1")
        cluster.engines[0].docker("tag", "busybox:latest", ref)
        cluster.engines[0].docker("push", ref)
        cluster.engines[0].docker("rmi", ref)
        pull = subprocess.run(["docker", "-H", url, "pull", ref], capture_output=True,
                              timeout=60)
        out = pull.stdout + pull.stderr
        assert b"node-a: Status: Downloaded newer image" in out
        assert b"node-k: " in out and b"flock join" in out  # the dead node is named
        assert cluster.engines[0].docker("image", "inspect", ref, check=False).returncode == 0
    finally:
        cluster.engines[0].docker("rmi", "-f", registry.ref("doomed:1"), check=False)
        registry.stop()
    ps = subprocess.run(["docker", "-H", url, "ps", "-a"], capture_output=True, timeout=20)
    assert ps.returncode == 0

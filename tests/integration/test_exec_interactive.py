"""Interactive commands on the exec runtime: attach (docker run), exec, TTYs, resize,
pause/top/stats, with the real docker CLI, directly against the runtime's socket and
through a Flock manager with two exec agents."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shlex
import socket
import subprocess
import threading
import time

import pytest

from flock.agent.runtimes.exec import ExecRuntime
from flock.demo import import_image
from flock.docker_compat.stdcopy import parse_header
from flock.local_cluster import LocalCluster
from tests.support.engines import busybox_rootfs_tar
from tests.support.exec_runtime import kill_containers, remove_cgroups

pytestmark = pytest.mark.timeout(120)


class Served:
    """An ExecRuntime served from an event loop in a thread; restartable in place, the
    way an agent restart replaces it."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runtime: ExecRuntime | None = None

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self) -> None:
        self.runtime = ExecRuntime(self.state_dir, node_name="interactive")
        self._call(self.runtime.start())

    def stop(self) -> None:
        if self.runtime is not None:
            self._call(self.runtime.stop())
            self.runtime = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def socket(self) -> str:
        return str(self.state_dir / "docker.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def kill_leftovers(self) -> None:
        """Shims and containers still running after the test, and their cgroups."""
        kill_containers(self.state_dir)
        time.sleep(0.3)
        remove_cgroups(self.state_dir)


def docker(host: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "-H", host, *args], capture_output=True, input=input,
                          timeout=60)


def in_terminal(host: str, command: str, rows: int = 30, cols: int = 100) -> str:
    """`docker ...` run inside a pseudo-terminal of the given size, as a user would."""
    line = f"stty rows {rows} cols {cols}; docker -H {host} {command}"
    done = subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    return done.stdout.decode(errors="replace")


def api(sock_path: str, method: str, path: str, body: object | None = None
        ) -> tuple[int, object]:
    """One HTTP/1.0 call on the runtime's socket: (status, parsed JSON or None)."""
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(sock_path)
        sock.sendall(head.encode() + b"\r\n" + payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    answer = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(answer) if answer.strip() else None


class Hijacked:
    """A raw attach connection: the head, then frames out and bytes in."""

    def __init__(self, sock_path: str, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(sock_path)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
                          f"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.head = head.decode()

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the stream ended")
        return chunk

    def frame(self) -> tuple[int, bytes]:
        while len(self.buffer) < 8:
            self.buffer += self._recv()
        stream, size = parse_header(self.buffer[:8])
        while len(self.buffer) < 8 + size:
            self.buffer += self._recv()
        payload, self.buffer = self.buffer[8:8 + size], self.buffer[8 + size:]
        return stream, payload

    def until_end(self) -> list[tuple[int, bytes]]:
        """Every frame until the runtime closes, those of one stream run together."""
        frames: list[tuple[int, bytes]] = []
        while True:
            try:
                stream, payload = self.frame()
            except EOFError:
                return frames
            if frames and frames[-1][0] == stream:
                frames[-1] = (stream, frames[-1][1] + payload)
            else:
                frames.append((stream, payload))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("interactive"))
    served.start()
    try:
        imported = docker(served.host, "import", "-", "busybox:latest",
                          input=busybox_rootfs_tar())
        assert imported.returncode == 0, imported.stderr
        yield served
    finally:
        if served.runtime is not None:
            listed = docker(served.host, "ps", "-aq").stdout.decode().split()
            if listed:
                docker(served.host, "rm", "-f", *listed)
        served.close()
        served.kill_leftovers()


def test_run_attached_prints_output_and_exit_code(rt):
    hi = docker(rt.host, "run", "busybox", "echo", "hi")
    assert (hi.returncode, hi.stdout) == (0, b"hi\n")
    both = docker(rt.host, "run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (both.returncode, both.stdout, both.stderr) == (3, b"out\n", b"err\n")


def test_run_with_piped_stdin(rt):
    done = docker(rt.host, "run", "-i", "busybox", "cat", input=b"data\nmore\n")
    assert (done.returncode, done.stdout) == (0, b"data\nmore\n")


def test_run_rm_leaves_no_container(rt):
    done = docker(rt.host, "run", "--rm", "--name", "gone", "busybox", "echo", "hi")
    assert (done.returncode, done.stdout) == (0, b"hi\n")
    assert api(rt.socket, "GET", "/containers/gone/json")[0] == 404


def test_exec_output_stdin_exit_code_user_and_workdir(rt):
    assert docker(rt.host, "run", "-d", "--name", "box", "busybox", "sleep", "60"
                  ).returncode == 0
    try:
        hi = docker(rt.host, "exec", "box", "echo", "hi")
        assert (hi.returncode, hi.stdout) == (0, b"hi\n")
        piped = docker(rt.host, "exec", "-i", "box", "cat", input=b"fed\n")
        assert (piped.returncode, piped.stdout) == (0, b"fed\n")
        failed = docker(rt.host, "exec", "box", "sh", "-c", "echo e >&2; exit 4")
        assert (failed.returncode, failed.stderr) == (4, b"e\n")
        where = docker(rt.host, "exec", "-w", "/etc", "-u", "65534", "-e", "X=1", "box",
                       "sh", "-c", "pwd; id -u; echo $X; hostname")
        box_id = docker(rt.host, "inspect", "-f", "{{.Id}}", "box").stdout.decode().strip()
        assert where.stdout.decode().split() == ["/etc", "65534", "1", box_id[:12]]
        missing = docker(rt.host, "exec", "box", "nonexistent")
        assert missing.returncode == 127
        inside = docker(rt.host, "exec", "box", "ps").stdout.decode()
        assert "sleep 60" in inside and "1 root" in inside  # the container's PID namespace
    finally:
        docker(rt.host, "rm", "-f", "box")


def test_tty_run_exec_and_resize(rt):
    out = in_terminal(rt.host, "run --rm -it busybox sh -c 'stty size; tty'")
    assert "30 100" in out and "/dev/pts/" in out
    assert docker(rt.host, "run", "-dit", "--name", "term", "busybox", "sh").returncode == 0
    try:
        out = in_terminal(rt.host, "exec -it term sh -c 'tty; echo exec-ok'")
        assert "/dev/pts/" in out and "exec-ok" in out
        assert api(rt.socket, "POST", "/containers/term/resize?h=40&w=120")[0] == 200
        size = docker(rt.host, "exec", "term", "sh", "-c", "stty -F /dev/console size")
        assert size.stdout == b"40 120\n"
    finally:
        docker(rt.host, "rm", "-f", "term")


def test_attach_is_hijacked_and_stdin_survives_a_runtime_restart(rt):
    assert docker(rt.host, "run", "-d", "-i", "--name", "echoer", "busybox", "cat"
                  ).returncode == 0
    path = "/v1.41/containers/echoer/attach?stream=1&stdin=1&stdout=1&stderr=1"
    try:
        first = Hijacked(rt.socket, path)
        assert first.head.startswith("HTTP/1.1 101 UPGRADED")
        assert "Content-Type: application/vnd.docker.raw-stream" in first.head
        assert "Upgrade: tcp" in first.head
        first.sock.sendall(b"hello\n")
        assert first.frame() == (1, b"hello\n")
        first.close()
        rt.stop()
        rt.start()
        again = Hijacked(rt.socket, path)
        again.sock.sendall(b"again\n")
        assert again.frame() == (1, b"again\n")
        again.sock.shutdown(socket.SHUT_WR)  # without StdinOnce: the attach ends ...
        assert again.until_end() == []
        again.close()
        assert docker(rt.host, "inspect", "-f", "{{.State.Running}}", "echoer"  # ... not cat
                      ).stdout == b"true\n"
        logs = docker(rt.host, "logs", "echoer").stdout
        assert logs == b"hello\nagain\n"
    finally:
        docker(rt.host, "rm", "-f", "echoer")


def test_half_close_ends_stdin_once(rt):
    """`docker run -i` semantics over the raw API: StdinOnce, attach before start."""
    status, created = api(rt.socket, "POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "cat; echo done"], "OpenStdin": True,
        "StdinOnce": True, "AttachStdin": True})
    assert status == 201
    cid = created["Id"]
    try:
        stream = Hijacked(rt.socket, f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1")
        stream.sock.sendall(b"x\n")
        stream.sock.shutdown(socket.SHUT_WR)
        assert api(rt.socket, "POST", f"/containers/{cid}/start")[0] == 204
        assert stream.until_end() == [(1, b"x\ndone\n")]  # ends when the container does
        stream.close()
    finally:
        api(rt.socket, "DELETE", f"/containers/{cid}?force=1")


def test_pause_top_and_stats(rt):
    assert docker(rt.host, "run", "-d", "--name", "watched", "busybox", "sleep", "60"
                  ).returncode == 0
    try:
        status, top = api(rt.socket, "GET", "/containers/watched/top")
        assert status == 200 and "PID" in top["Titles"] and "CMD" in top["Titles"]
        assert [row[-1] for row in top["Processes"]] == ["sleep 60"]
        status, stats = api(rt.socket, "GET", "/containers/watched/stats?stream=0")
        assert status == 200 and stats["pids_stats"]["current"] == 1
        assert stats["memory_stats"]["usage"] > 0 and stats["name"] == "/watched"
        assert "total_usage" in stats["cpu_stats"]["cpu_usage"]
        assert docker(rt.host, "pause", "watched").returncode == 0
        assert docker(rt.host, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}",
                      "watched").stdout == b"paused true\n"
        refused = docker(rt.host, "exec", "watched", "true")
        assert b"is paused" in refused.stderr
        assert docker(rt.host, "unpause", "watched").returncode == 0
        assert docker(rt.host, "exec", "watched", "true").returncode == 0
    finally:
        docker(rt.host, "rm", "-f", "watched")


def test_bad_input_answers_like_the_engine(rt):
    sock = rt.socket
    status, _ = api(sock, "POST", "/containers/create?name=idle",
                    {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201
    try:
        expectations = [
            (("POST", "/containers/idle/exec", {"Cmd": ["true"]}), 409, "is not running"),
            (("POST", "/containers/nope/exec", {"Cmd": ["true"]}), 404, "No such container"),
            (("POST", "/exec/nope/start", {}), 404, "No such exec instance: nope"),
            (("GET", "/exec/nope/json", None), 404, "No such exec instance"),
            (("POST", "/containers/idle/resize?h=10&w=10", None), 409, "is not running"),
            (("POST", "/containers/idle/resize?h=x&w=10", None), 400, "invalid value for h"),
            (("POST", "/containers/nope/attach?stream=1", None), 404, "No such container"),
            (("POST", "/containers/idle/pause", None), 409, "is not running"),
            (("POST", "/containers/idle/unpause", None), 409, "is not paused"),
            (("GET", "/containers/idle/top", None), 409, "is not running"),
            (("GET", "/containers/idle/stats?stream=0", None), 409, "is not running"),
            (("POST", "/containers/idle/update", {}), 501, "does not support"),
        ]
        for (method, path, body), want_status, want_text in expectations:
            status, answer = api(sock, method, path, body)
            assert (status, want_text in answer["message"]) == (want_status, True), path
        assert docker(rt.host, "run", "-d", "--name", "busy", "busybox", "sleep", "60"
                      ).returncode == 0
        status, answer = api(sock, "POST", "/containers/busy/exec", {"Cmd": []})
        assert (status, answer["message"]) == (400, "No exec command specified")
        status, made = api(sock, "POST", "/containers/busy/exec", {"Cmd": ["true"]})
        assert status == 201
        assert api(sock, "POST", f"/exec/{made['Id']}/resize?h=-1&w=3")[0] == 400
        assert api(sock, "POST", f"/exec/{made['Id']}/start", {"Detach": True})[0] == 200
        deadline = time.monotonic() + 10
        while api(sock, "GET", f"/exec/{made['Id']}/json")[1]["Running"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, info = api(sock, "GET", f"/exec/{made['Id']}/json")
        assert (info["ExitCode"], info["ProcessConfig"]["entrypoint"]) == (0, "true")
        status, answer = api(sock, "POST", f"/exec/{made['Id']}/start", {"Detach": True})
        assert (status, "has already run" in answer["message"]) == (409, True)
    finally:
        docker(rt.host, "rm", "-f", "idle", "busy")


def test_through_the_manager_with_two_exec_agents():
    with LocalCluster(agents=2, runtime="exec") as cluster:
        import_image(cluster)
        host = cluster.url
        hi = docker(host, "run", "busybox", "echo", "hi")
        assert (hi.returncode, hi.stdout) == (0, b"hi\n")
        assert docker(host, "run", "busybox", "sh", "-c", "exit 3").returncode == 3
        piped = docker(host, "run", "-i", "busybox", "cat", input=b"data\n")
        assert (piped.returncode, piped.stdout) == (0, b"data\n")
        removed = docker(host, "run", "--rm", "--name", "brief", "busybox", "echo", "hi")
        assert (removed.returncode, removed.stdout) == (0, b"hi\n")
        assert b"brief" not in docker(host, "ps", "-a").stdout
        # --rm waits for the removal: the exit code must outlive the container's files.
        assert docker(host, "run", "--rm", "busybox", "sh", "-c", "exit 5").returncode == 5
        assert docker(host, "run", "-dit", "--name", "box", "busybox", "sh").returncode == 0
        ran = docker(host, "exec", "box", "echo", "hi")
        assert (ran.returncode, ran.stdout) == (0, b"hi\n")
        fed = docker(host, "exec", "-i", "box", "cat", input=b"fed\n")
        assert (fed.returncode, fed.stdout) == (0, b"fed\n")
        assert docker(host, "exec", "box", "sh", "-c", "exit 4").returncode == 4
        out = in_terminal(host, "exec -it box sh -c 'tty; echo exec-ok'")
        assert "/dev/pts/" in out and "exec-ok" in out
        out = in_terminal(host, f"run --rm -it busybox sh -c {shlex.quote('stty size')}")
        assert "30 100" in out

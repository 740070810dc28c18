"""The exec runtime as a real process for tests and benches (`python -m
flock.agent.runtimes.exec`, driven by the docker CLI over its socket), and the clean-up of
what its containers leave on the machine (processes, cgroups, network leftovers) that every
owner of an exec runtime state dir needs, whether the runtime still answers or not."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from flock.agent.runtimes.exec.isolation import CONTROLLERS, cgroup_dir
from flock.busybox import busybox_rootfs_tar
from tests.support.exec_network import remove_leftovers

REPO = pathlib.Path(__file__).resolve().parents[2]


def kill_containers(state_dir: pathlib.Path) -> None:
    """SIGKILL every container and its shim recorded under `state_dir`: a machine failure,
    or the last resort of a test whose runtime no longer answers."""
    folder = state_dir / "containers"
    for state in folder.glob("*/state.json") if folder.exists() else []:
        try:
            data = json.loads(state.read_text())
        except ValueError:
            continue
        for key in ("Pid", "ShimPid"):
            try:
                os.kill(int(data.get(key) or 0), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def remove_cgroups(state_dir: pathlib.Path) -> None:
    """The containers' cgroups, which outlive their killed processes."""
    folder = state_dir / "containers"
    for cid_dir in folder.iterdir() if folder.exists() else []:
        for controller in CONTROLLERS:
            try:
                cgroup_dir(controller, cid_dir.name).rmdir()
            except OSError:
                pass


def raw(sock_path: str, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 exchange on the unix socket: status, headers, body."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(sock_path)
        lines = [f"{method} {path} HTTP/1.0", "Host: docker"]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, payload


class RuntimeProcess:
    """`python -m flock.agent.runtimes.exec` in a subprocess, stopped by PID."""

    def __init__(self, state_dir: pathlib.Path, *extra: str) -> None:
        self.state_dir = state_dir
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(self.state_dir / "docker.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flock.agent.runtimes.exec", "--state-dir", str(self.state_dir),
             "--name", "exec-node", "--label", "zone=test", *self.extra],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(self.state_dir / "runtime.log", "ab"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.state_dir / "runtime.log").read_text()[-2000:])
            if os.path.exists(self.socket) and raw(self.socket, "GET", "/_ping")[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("the exec runtime did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def docker(self, *args: str, check: bool = True, input: bytes | None = None):
        return subprocess.run(["docker", "-H", self.url, *args], check=check,
                              capture_output=True, input=input, timeout=60)

    def out(self, *args: str) -> str:
        return self.docker(*args).stdout.decode().strip()

    def import_busybox(self, ref: str = "busybox:latest", *changes: str) -> None:
        """`docker import` of the busybox rootfs as `ref`, each of `changes` a `-c` line."""
        flags = [arg for change in changes for arg in ("-c", change)]
        self.docker("import", *flags, "-", ref, input=busybox_rootfs_tar())

    def remove_containers(self) -> None:
        """`docker rm -f` of every container, while the runtime still runs."""
        if self.proc is not None:
            ids = self.out("ps", "-aq").split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)

    def cleanup(self) -> None:
        """Kill every container this runtime started, even if it no longer answers."""
        kill_containers(self.state_dir)
        time.sleep(0.3)
        remove_leftovers(self.state_dir)
        remove_cgroups(self.state_dir)


@contextlib.contextmanager
def running_runtime(state_dir: pathlib.Path, *extra: str) -> Iterator[RuntimeProcess]:
    """A started runtime that is stopped and cleaned up however the block ends: the body
    of every module's `rt` fixture (which imports its own images inside the block)."""
    runtime = RuntimeProcess(state_dir, *extra)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.remove_containers()
        runtime.stop()
        runtime.cleanup()

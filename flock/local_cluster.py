"""A whole cluster on this machine: one manager and N agents, each its own process.

Used by `flock up`, `flock demo`, the benchmarks and the end-to-end tests. Each program
runs as a child process (`python -m flock join|manage`) exactly as it would on a real
machine, logs to a file in the cluster's folder, and is stopped by PID.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The local cluster could not start; the message says what to look at."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pick_runtime(requested: str, agents: int, docker_host: str) -> tuple[str, str]:
    """The runtime to use and why: `auto` means the local engine when one answers and a
    single agent will drive it (two agents on one engine would each claim every
    container), the embedded `exec` runtime otherwise."""
    if requested != "auto":
        return requested, f"--runtime {requested}"
    from flock.agent.runtimes.docker import engine_answers

    if agents == 1 and engine_answers(docker_host):
        return "docker", f"a Docker Engine answers at {docker_host}"
    if agents > 1:
        return "exec", f"{agents} agents cannot share one Docker Engine"
    return "exec", f"no Docker Engine answers at {docker_host}"


@dataclass
class LocalCluster:
    """Start with `start()`, stop with `stop()` (or use it as a context manager)."""

    agents: int = 2
    runtime: str = "auto"
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    strategy: str = "spread"
    state_dir: pathlib.Path | None = None  # None: a temporary folder, removed at stop
    docker_host: str = "unix:///var/run/docker.sock"
    heartbeat: str = "2s"
    extra_manager_args: list[str] = field(default_factory=list)
    progress: Callable[[str], None] = lambda message: None

    def __post_init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}
        self._temporary = self.state_dir is None
        self.agent_ports: list[int] = []
        self.runtime_reason = ""

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def grpc_addr(self) -> str:
        """The ClusterService's HOST:PORT: the Docker API's own port serves it."""
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- start
    def start(self, timeout: float = 60) -> None:
        if self.agents < 1:
            raise ClusterError("--agents must be at least 1")
        if self.state_dir is None:
            self.state_dir = pathlib.Path(tempfile.mkdtemp(prefix="flock-up-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.runtime, self.runtime_reason = pick_runtime(
            self.runtime, self.agents, self.docker_host
        )
        self.progress(f"runtime: {self.runtime} ({self.runtime_reason})")
        try:
            self._start_agents()
            self._start_manager()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_agents(self) -> None:
        for index in range(1, self.agents + 1):
            port = free_port(self.host)
            self.agent_ports.append(port)
            name = f"node-{index}"
            args = [
                "join", "--advertise", f"{self.host}:{port}", "--runtime", self.runtime,
                "--name", name, "--state-dir", str(self.state_dir / name),
                "--heartbeat", self.heartbeat,
            ]
            if self.runtime == "docker":
                args += ["--docker-host", self.docker_host]
            self._spawn(name, args)
            self.progress(f"agent {name} starting on {self.host}:{port}")

    def _start_manager(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        discovery = "nodes://" + ",".join(f"{self.host}:{p}" for p in self.agent_ports)
        self._spawn("manager", [
            "manage", "-H", self.url, "--strategy", self.strategy,
            "--heartbeat", self.heartbeat,
            *self.extra_manager_args, discovery,
        ])
        self.progress(f"manager starting on {self.url}")

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.state_dir is not None
        logfile = open(self.state_dir / f"{name}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._procs[name] = subprocess.Popen(
            [sys.executable, "-m", "flock", *args],
            stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        logfile.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            self.check_children()
            healthy = self.healthy_nodes()
            if healthy != seen and healthy >= 0:
                self.progress(f"{healthy}/{self.agents} nodes healthy")
                seen = healthy
            if healthy == self.agents:
                return
            time.sleep(0.2)
        raise ClusterError(
            f"the cluster was not ready after {timeout:.0f}s "
            f"({max(seen, 0)}/{self.agents} nodes healthy); see the logs in {self.state_dir}"
        )

    def check_children(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self.log_tail(name)
                raise ClusterError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        assert self.state_dir is not None
        path = self.state_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---------------------------------------------------------------- query
    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        """One Docker API call to the manager; (status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.http_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw = answer.read()
                status = answer.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def healthy_nodes(self) -> int:
        """How many nodes `docker info` shows as Healthy; -1 if the manager is not up."""
        try:
            status, info = self.api("GET", "/info")
        except (OSError, urllib.error.URLError):
            return -1
        if status != 200 or not isinstance(info, dict):
            return -1
        pairs = info.get("SystemStatus") or []
        return sum(1 for key, value in pairs if key.strip().endswith("Status")
                   and value == "Healthy")

    # ----------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop everything started here. Containers of a temporary exec cluster are
        removed first: their supervisors outlive the agents by design."""
        if self._temporary and self.runtime == "exec" and "manager" in self._procs:
            self._remove_all_containers()
        for name in ["manager", *[n for n in self._procs if n != "manager"]]:
            proc = self._procs.get(name)
            if proc is not None:
                _terminate(proc)
        self._procs.clear()
        if self._temporary and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _remove_all_containers(self) -> None:
        try:
            status, containers = self.api("GET", "/containers/json?all=1")
            if status != 200 or not isinstance(containers, list):
                return
            for container in containers:
                self.api("DELETE", f"/containers/{container['Id']}?force=1")
        except (OSError, urllib.error.URLError) as exc:
            log.warning("could not remove the cluster's containers: %s", exc)


def _terminate(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)

"""A whole Flock cluster in one test process: real engines (started by the caller),
one agent per engine with the docker runtime and one Manager, both in-process on an
asyncio loop in a thread, driven from the test with the real docker CLI and plain HTTP.

Most integration modules get theirs from the shared `cluster` fixture
(tests/integration/conftest.py), declared by a module-level `CLUSTER` dict of this
class's options; those with engines of their own build one here directly, as a context
manager (`with Cluster(...) as made:`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence

from flock.agent.cli import run_agent
from flock.manager.api.client_limits import ClientLimits
from flock.manager.app import Manager, ManagerConfig
from tests.conftest import free_port
from tests.support.engines import Engine


class LoopThread:
    """An asyncio loop in a thread: agents and manager run there, tests drive them
    from outside with the CLI, the SDK and plain HTTP."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def agent_args(engine: Engine, addr: str, name: str, state_dir: str,
               labels: Sequence[str] = ()) -> argparse.Namespace:
    return argparse.Namespace(
        advertise=addr, listen="", runtime="docker", docker_host=engine.url,
        state_dir=state_dir, name=name, label=list(labels), heartbeat="20s",
        ttl="60s", discovery="")


class Cluster:
    """Agents named `names` in front of `engines`, one Manager over them all."""

    def __init__(self, engines: Sequence[Engine], tmp_path, names: Sequence[str],
                 strategy: str = "spread",
                 labels: Callable[[str], Sequence[str]] = lambda name: (),
                 client_limits: ClientLimits | None = None,
                 agent_options: Callable[[str], dict] = lambda name: {},
                 manager_options: dict | None = None) -> None:
        """`agent_options(name)`: `flock join` options (argparse names) that replace the
        defaults of that node's agent, e.g. a tcp:// docker_host with TLS.
        `manager_options`: more ManagerConfig fields (e.g. classic's refresh flags)."""
        self.engines = list(engines)
        self.names = list(names)
        self.lt = LoopThread()
        self.stops: list[asyncio.Event] = []
        self.agent_futures = []
        self.addrs: list[str] = []
        try:
            for engine, name in zip(self.engines, self.names, strict=True):
                addr = f"127.0.0.1:{free_port()}"
                stop = self.lt.run(_event())
                self.stops.append(stop)
                args = agent_args(engine, addr, name, str(tmp_path / name), labels(name))
                vars(args).update(agent_options(name))
                self.agent_futures.append(self.lt.spawn(run_agent(args, stop)))
                self.addrs.append(addr)
            self.port = free_port()
            self.url = f"tcp://127.0.0.1:{self.port}"
            self.manager = Manager(ManagerConfig(
                discovery="nodes://" + ",".join(self.addrs), hosts=[self.url], heartbeat=2.0,
                failure_retry=1, strategy=strategy,
                client_limits=client_limits or ClientLimits(), **(manager_options or {})))
            self.lt.run(self.manager.start())
            count = len(self.engines)
            wait_for(lambda: len(self.manager.state.healthy_nodes()) == count, 30,
                     "healthy nodes")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def grpc_addr(self) -> str:
        """The ClusterService's TCP address: "" unless the cluster was made with
        manager_options={"grpc_addr": "127.0.0.1:0"} (then the port it got)."""
        return self.manager.grpc_address

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", "-H", self.url, *args], capture_output=True,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc

    def api(self, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, object, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw, status, head = answer.read(), answer.status, dict(answer.headers)
        except urllib.error.HTTPError as err:
            raw, status, head = err.read(), err.code, dict(err.headers)
        try:
            return status, json.loads(raw) if raw else None, head
        except ValueError:
            return status, raw.decode(), head

    def node_of(self, container: str) -> str:
        """The name of the node a container is on, as the manager's inspect says."""
        return self.docker("inspect", "-f", "{{.Node.Name}}", container).stdout.decode().strip()

    def container_ids(self) -> dict[str, set[str]]:
        """Engine socket -> IDs of every container on it (all states)."""
        return {engine.socket: set(engine_container_ids(engine)) for engine in self.engines}

    def remove_new_containers(self, before: dict[str, set[str]]) -> None:
        """Remove what was made since `before` and wait until the manager forgot it."""
        gone = []
        for engine in self.engines:
            made = [cid for cid in engine_container_ids(engine) if cid not in before[engine.socket]]
            if made:
                engine.docker("rm", "-f", *made, check=False)
            gone += made
        state = self.manager.state
        wait_for(lambda: not any(state.container(cid) for cid in gone), what="events")

    def close(self) -> None:
        if hasattr(self, "manager"):
            with contextlib.suppress(Exception):
                self.lt.run(self.manager.stop())
        for stop in self.stops:
            self.lt.loop.call_soon_threadsafe(stop.set)
        for future in self.agent_futures:
            with contextlib.suppress(Exception):
                future.result(15)
        self.lt.close()


async def _event() -> asyncio.Event:
    return asyncio.Event()


def unique_name(prefix: str = "c") -> str:
    """`web` -> `web-1a2b3c`: tests share one cluster, so no two may pick one name."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def engine_container_ids(engine: Engine) -> list[str]:
    return engine.docker("ps", "-aq", "--no-trunc", check=False).stdout.decode().split()


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)

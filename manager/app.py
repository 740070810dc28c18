"""The manager: discovery, cluster state, node sync, scheduler and the Docker API front.

`Manager` wires the parts and owns their lifetimes; `flock manage` (manager/cli.py) and
the tests build one from a ManagerConfig and call `start()` / `stop()`.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from aiohttp import web

import discovery
from manager.api.docker.app import DEFAULT_API_VERSION, build_app, version_tuple
from manager.cluster.agent_client import AgentClient
from manager.cluster.state import ClusterState
from manager.cluster.sync import NodeWatcher
from manager.scheduler.scheduler import Scheduler

log = logging.getLogger("flock.manager")


class ConfigError(ValueError):
    """A manager option that cannot work; the message names it."""


@dataclass
class ManagerConfig:
    discovery: str
    hosts: list[str] = field(default_factory=lambda: ["tcp://127.0.0.1:2375"])
    strategy: str = "spread"
    filters: list[str] | None = None
    heartbeat: float = 20.0
    overcommit: float = 0.05
    failure_retry: int = 3
    name: str = ""  # shown by `docker info`; the host name by default


@dataclass(frozen=True)
class Listen:
    scheme: str  # tcp | unix
    host: str = ""
    port: int = 0
    path: str = ""


def parse_host(text: str) -> Listen:
    """`-H` value: tcp://HOST:PORT, unix:///path, HOST:PORT or :PORT (all interfaces)."""
    value = text.strip()
    if value.startswith("unix://"):
        path = value[len("unix://"):]
        if not path:
            raise ConfigError(f"invalid -H {text!r}: unix:// needs a socket path")
        return Listen("unix", path=path)
    if value.startswith("tcp://"):
        value = value[len("tcp://"):]
    elif "://" in value:
        raise ConfigError(f"invalid -H {text!r}: use tcp://HOST:PORT or unix:///PATH")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"invalid -H {text!r}: expected tcp://HOST:PORT")
    return Listen("tcp", host=host.strip("[]") or "0.0.0.0", port=int(port))


class Manager:
    """One manager process's worth of parts."""

    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        self.listens = [parse_host(h) for h in config.hosts]
        try:
            self.backend = discovery.open_backend(config.discovery)
        except ValueError as exc:
            raise ConfigError(f"discovery: {exc}") from None
        try:
            self.scheduler = Scheduler(config.strategy, config.filters, config.overcommit)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.name = config.name or socket.gethostname()
        self.state = ClusterState()
        self.watcher = NodeWatcher(self.state, self.backend, config.heartbeat,
                                   config.failure_retry)
        self.exec_nodes: dict[str, str] = {}  # exec ID -> node ID
        self._runner: web.AppRunner | None = None
        self.addresses: list[str] = []

    def client(self, node_id: str) -> AgentClient | None:
        return self.watcher.client(node_id)

    def api_version(self) -> str:
        """The lowest API version among healthy nodes (what every node understands)."""
        versions = [n.api_version for n in self.state.healthy_nodes() if n.api_version]
        return min(versions, key=version_tuple) if versions else DEFAULT_API_VERSION

    async def start(self) -> None:
        await self.watcher.start()
        self._runner = web.AppRunner(build_app(self), handler_cancellation=True,
                                     access_log=None)
        await self._runner.setup()
        try:
            for listen in self.listens:
                await self._serve(listen)
        except BaseException:
            await self.stop()
            raise
        log.info("manager %s serving the Docker API on %s", self.name,
                 ", ".join(self.addresses))

    async def _serve(self, listen: Listen) -> None:
        assert self._runner is not None
        if listen.scheme == "unix":
            if os.path.exists(listen.path):
                os.unlink(listen.path)
            site: web.BaseSite = web.UnixSite(self._runner, listen.path)
            await site.start()
            self.addresses.append(f"unix://{listen.path}")
            return
        site = web.TCPSite(self._runner, listen.host, listen.port, reuse_address=True)
        known = set(map(tuple, self._runner.addresses))
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {listen.host}:{listen.port}: "
                              f"{exc.strerror or exc}") from None
        bound = [a for a in self._runner.addresses if tuple(a) not in known]
        port = bound[0][1] if bound else listen.port  # the real port when 0 was asked for
        self.addresses.append(f"tcp://{listen.host}:{port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.watcher.stop()
        for listen in self.listens:
            if listen.scheme == "unix" and os.path.exists(listen.path):
                os.unlink(listen.path)

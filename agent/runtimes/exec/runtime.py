"""ExecRuntime: Flock's embedded container runtime, served as a Docker Engine API on a
unix socket so the agent forwards to it exactly as it does to a real engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import stat
from dataclasses import dataclass, field

from aiohttp import web

from flock.agent.engine_endpoint import Endpoint
from flock.agent.runtimes.base import RuntimeUnavailable
from flock.agent.runtimes.exec import isolation
from flock.agent.runtimes.exec.app import build_app
from flock.agent.runtimes.exec.containers import ContainerManager
from flock.agent.runtimes.exec.events import EventBus
from flock.agent.runtimes.exec.execs import ExecManager
from flock.agent.runtimes.exec.health_monitor import HealthMonitor
from flock.agent.runtimes.exec.images import ImageManager
from flock.agent.runtimes.exec.network import Network, NetworkConfig
from flock.agent.runtimes.exec.store import ContainerStore, ImageStore, engine_id
from flock.agent.runtimes.exec.volumes import VolumeManager


@dataclass
class Core:
    """What the handlers share."""

    state_dir: pathlib.Path
    node_name: str | None
    labels: dict[str, str]
    cpus: int | None
    memory: int | None
    isolated: bool
    engine_id: str
    bus: EventBus
    containers: ContainerManager
    images: ImageManager
    cgroups_memory: bool
    execs: ExecManager
    closing: asyncio.Event = field(default_factory=asyncio.Event)


class ExecRuntime:
    """Containers as supervised processes: isolated with namespaces and chroot when this
    process may do that (root), plain processes otherwise."""

    name = "exec"

    def __init__(self, state_dir: pathlib.Path, node_name: str | None = None,
                 labels: dict[str, str] | None = None, cpus: int | None = None,
                 memory: int | None = None, *, isolate: bool | None = None,
                 network: NetworkConfig | None = None,
                 insecure_registries: tuple[str, ...] = ()) -> None:
        self.state_dir = pathlib.Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.node_name = node_name
        self.labels = dict(labels or {})
        self.cpus = cpus
        self.memory = memory
        probed = isolation.probe()
        self.isolated: bool = probed if isolate is None else (isolate and probed)
        self.network_config = network or NetworkConfig()
        self.insecure_registries = frozenset(insecure_registries)
        self.core: Core | None = None
        self._runner: web.AppRunner | None = None
        self._watch: asyncio.Task | None = None
        self._health: asyncio.Task | None = None

    @property
    def socket_path(self) -> str:
        return str(self.state_dir / "docker.sock")

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.unix(self.socket_path)

    def _build_core(self) -> Core:
        bus = EventBus(self.state_dir / "events.jsonl")
        containers = ContainerManager(ContainerStore(self.state_dir), bus, self.isolated)
        images = ImageManager(ImageStore(self.state_dir), bus, containers.users_of)
        containers.images = images
        images.insecure_registries = self.insecure_registries
        containers.network = self._network(containers)
        containers.volumes = VolumeManager(self.state_dir, bus, containers.volume_users)
        return Core(self.state_dir, self.node_name, self.labels, self.cpus, self.memory,
                    self.isolated, engine_id(self.state_dir), bus, containers, images,
                    isolation.cgroup_available("memory"), ExecManager(containers))

    def _network(self, containers: ContainerManager) -> Network:
        config = self.network_config
        if not self.isolated:
            config = NetworkConfig(config.bridge, config.subnet, enabled=False)
        return Network(self.state_dir, config, engine_id(self.state_dir),
                       lambda: containers.records, lambda r: containers.state(r).running,
                       containers.store.save)

    async def start(self) -> None:
        """Serve on socket_path; containers from an earlier run are picked up from disk."""
        self.core = self._build_core()
        await self.core.containers.network.setup()
        runner = web.AppRunner(build_app(self.core), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        _remove_stale_socket(self.socket_path)
        site = web.UnixSite(runner, self.socket_path)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.core.containers.network.close()
            raise RuntimeUnavailable(
                f"exec runtime: cannot serve on {self.socket_path}: {exc}") from exc
        self._runner = runner
        self._watch = asyncio.get_running_loop().create_task(self.core.containers.watch())
        self._health = asyncio.get_running_loop().create_task(
            HealthMonitor(self.core.containers, self.core.execs).run())

    async def stop(self) -> None:
        """Stop serving. Containers keep running: their shims supervise them."""
        if self.core is not None:
            self.core.closing.set()
            self.core.bus.closing.set()
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
            self._health = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.core is not None and self.core.containers.network is not None:
            await self.core.containers.network.close()
        _remove_stale_socket(self.socket_path)


def _remove_stale_socket(path: str) -> None:
    """Only a socket is ours to remove; anything else there is a configuration error."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)

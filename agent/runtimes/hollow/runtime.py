"""HollowRuntime: a HollowNode served as a Docker Engine API on a unix socket.

The agent's bridge speaks HTTP to a unix socket, so each hollow node gets one; the
aiohttp app and the node are small, which keeps a thousand of them in one process cheap.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from flock.agent.engine_endpoint import Endpoint
from flock.agent.runtimes.base import RuntimeUnavailable
from flock.agent.runtimes.hollow.api import build_app
from flock.agent.runtimes.hollow.store import HollowNode

DEFAULT_CPUS = 2
DEFAULT_MEMORY = 2 << 30
SHUTDOWN_TIMEOUT = 1.0  # seconds a stop gives the requests still open


@dataclass
class _Images:
    records: list[str]


@dataclass
class HollowCore:
    """What the shared /info shape builder reads (the exec runtime's core, duck-typed)."""

    node: HollowNode
    node_name: str
    cpus: int
    memory: int
    labels: dict[str, str] = field(default_factory=dict)
    engine_id: str = field(default_factory=lambda: _engine_id())
    isolated: bool = False
    cgroups_memory: bool = True
    state_dir: Path = Path("/")

    @property
    def containers(self) -> HollowNode:
        return self.node

    @property
    def bus(self):
        return self.node.bus

    @property
    def images(self) -> _Images:
        return _Images(self.node.images)


def _engine_id() -> str:
    """An ID in the Engine's format (12 groups of 4 base32 characters)."""
    raw = secrets.token_hex(24).upper()
    return ":".join(raw[i:i + 4] for i in range(0, 48, 4))


class HollowRuntime:
    """Options: state_dir (where the socket lives; a temporary folder when None),
    node_name, labels, cpus, memory (bytes), images (present from the start; None:
    busybox:latest) and any_image (a create with another image pulls it)."""

    name = "hollow"

    def __init__(self, state_dir: Path | None = None, *, node_name: str | None = None,
                 labels: dict[str, str] | None = None, cpus: int | None = None,
                 memory: int | None = None, images: list[str] | None = None,
                 any_image: bool = False) -> None:
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(
            tempfile.mkdtemp(prefix="flock-hollow-"))
        self.core = HollowCore(HollowNode(images, any_image), node_name or socket.gethostname(),
                               cpus or DEFAULT_CPUS, memory or DEFAULT_MEMORY,
                               dict(labels or {}))
        self._runner: web.AppRunner | None = None

    @property
    def node(self) -> HollowNode:
        return self.core.node

    @property
    def socket_path(self) -> str:
        return str(self.state_dir / "docker.sock")

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.unix(self.socket_path)

    async def start(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
            # A stop cuts the requests still open (a wait on a container that runs
            # on) after a second, as a stopping engine does: aiohttp's default minute
            # outlived every caller's patience and left the socket's folder behind.
            runner = web.AppRunner(build_app(self.core), access_log=None,
                                   handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
            await runner.setup()
            await web.UnixSite(runner, self.socket_path).start()
        except OSError as exc:
            raise RuntimeUnavailable(
                f"hollow runtime cannot serve {self.socket_path}: {exc}") from exc
        self._runner = runner

    async def stop(self) -> None:
        self.node.bus.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._own_dir:
            with contextlib.suppress(OSError):
                self.state_dir.rmdir()

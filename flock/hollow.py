"""`flock hollow`: many hollow agents in one process, for scale tests and benchmarks.

Each agent is a real `flock join` agent (its own gRPC server on loopback, its own node
name and engine ID) over a hollow runtime, so a manager cannot tell them from agents on
real machines. Registration goes through discovery as agents do: `register` every
heartbeat for backends that keep registrations (etcd, token); for `file://`, whose
registrations are the file's lines, the fleet writes its addresses into the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from flock.agent.call_link import CallLinkServer, LinkedNode
from flock.agent.cli import JoinError, parse_labels, start_call_link
from flock.agent.runtimes.hollow import HollowRuntime
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.agent.runtimes.hollow.sizes import parse_memory
from flock.agent.server import make_server
from flock.common import event_loop, open_files
from flock.common.durations import parse_duration
from flock.common.gc_freezer import THRESHOLDS, Freezer
from flock.common.signals import stop_on_signals

log = logging.getLogger("flock.hollow")


class HollowError(ValueError):
    """A `flock hollow` option that cannot work; the message names it."""


@dataclass
class FleetConfig:
    agents: int
    discovery: str = ""
    host: str = "127.0.0.1"
    base_port: int = 0  # 0: any free port for each agent
    cpus: int = 2
    memory: int = 2 << 30
    labels: dict[str, str] = field(default_factory=dict)
    images: list[str] | None = None  # present on every node; None: busybox:latest
    any_image: bool = False  # a create with another image pulls it
    name_prefix: str = "hollow"
    heartbeat: float = 5.0
    ttl: float = 15.0
    calls_port: int | None = 0  # the shared call link's port (0: a free one); None: off


@dataclass
class _Agent:
    runtime: HollowRuntime
    server: object
    address: str


class HollowFleet:
    """N hollow agents in this event loop: `await start()`, then `addresses`; `stop()`."""

    def __init__(self, config: FleetConfig) -> None:
        if config.agents < 1:
            raise HollowError(f"invalid --agents {config.agents}: must be at least 1")
        if config.base_port and not 0 < config.base_port + config.agents - 1 < 65536:
            raise HollowError(f"invalid --base-port {config.base_port}: the ports of "
                              f"{config.agents} agents do not fit below 65536")
        self.config = config
        self.agents: list[_Agent] = []
        self._backend = _open_backend(config.discovery)
        self._dir = Path(tempfile.mkdtemp(prefix="flock-hollow-"))
        self._register: asyncio.Task | None = None
        self._linked: dict[str, LinkedNode] = {}  # engine ID -> the node's call handlers
        self._link: CallLinkServer | None = None
        self._calls_address = ""

    @property
    def addresses(self) -> list[str]:
        return [agent.address for agent in self.agents]

    async def start(self, progress=lambda text: None) -> None:
        width = len(str(self.config.agents))
        try:
            await self._start_link()
            for index in range(self.config.agents):
                name = f"{self.config.name_prefix}-{index + 1:0{width}d}"
                self.agents.append(await self._start_agent(index, name))
                if (index + 1) % 100 == 0:
                    progress(f"{index + 1}/{self.config.agents} hollow agents serving")
            await self._announce()
        except BaseException:
            await self.stop()
            raise

    async def _start_agent(self, index: int, name: str) -> _Agent:
        cfg = self.config
        runtime = HollowRuntime(self._dir / str(index), node_name=name, labels=cfg.labels,
                                cpus=cfg.cpus, memory=cfg.memory, images=cfg.images,
                                any_image=cfg.any_image)
        await runtime.start()
        port = cfg.base_port + index if cfg.base_port else 0
        service = HollowAgentService(runtime, "", name, cfg.labels)
        try:
            server, bound = make_server(service, f"{cfg.host}:{port}")
        except ValueError as exc:
            await runtime.stop()
            raise HollowError(f"agent {name}: {exc}") from None
        service.address = f"{cfg.host}:{bound}"
        service.calls_address = self._calls_address
        self._linked[runtime.core.engine_id] = service.linked()
        await server.start()
        return _Agent(runtime, server, service.address)

    async def _start_link(self) -> None:
        async def resolve(node_id: str) -> LinkedNode | None:
            return self._linked.get(node_id)

        try:
            self._link, port = await start_call_link(resolve, self.config.host,
                                                     self.config.calls_port)
        except JoinError as exc:
            raise HollowError(str(exc)) from None
        if self._link is not None:
            self._calls_address = f"{self.config.host}:{port}"

    async def _announce(self) -> None:
        from flock.discovery import FileBackend

        if self._backend is None:
            return
        if isinstance(self._backend, FileBackend):
            _write_atomically(self._backend.path, "".join(a + "\n" for a in self.addresses))
            return
        self._register = asyncio.create_task(self._register_loop())

    async def _register_loop(self) -> None:
        """Each agent re-registers every heartbeat, at its own jittered moment, so a
        thousand registrations do not hit discovery in the same instant."""
        async def one(address: str) -> None:
            await asyncio.sleep(random.uniform(0, self.config.heartbeat))
            while True:
                try:
                    await self._backend.register(address, self.config.ttl)
                except Exception as exc:  # noqa: BLE001 - discovery away: retry next beat
                    log.warning("cannot register %s: %s", address, exc)
                await asyncio.sleep(self.config.heartbeat)

        await asyncio.gather(*(one(a) for a in self.addresses))

    async def stop(self) -> None:
        try:
            if self._register is not None:
                self._register.cancel()
                with contextlib.suppress(BaseException):
                    await self._register
            await asyncio.gather(*(a.server.stop(grace=1) for a in self.agents),
                                 return_exceptions=True)
            if self._link is not None:
                await self._link.stop()
                self._link = None
            await asyncio.gather(*(a.runtime.stop() for a in self.agents),
                                 return_exceptions=True)
            self.agents.clear()
            if self._backend is not None and hasattr(self._backend, "close"):
                with contextlib.suppress(Exception):
                    await self._backend.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def _open_backend(url: str):
    if not url:
        return None
    from flock import discovery
    try:
        return discovery.open_backend(url)
    except ValueError as exc:
        raise HollowError(f"invalid --discovery {url!r}: {exc}") from None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# ------------------------------------------------------------------ command line
def register(subparsers) -> None:
    """Add the `hollow` sub-command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "hollow", help="run many hollow agents in one process (scale tests)",
        description="Run N agents whose containers exist only in memory.")
    parser.add_argument("--agents", type=int, required=True, metavar="N",
                        help="how many hollow agents to run")
    parser.add_argument("--discovery", default="", metavar="URL",
                        help="where to register (file:// is written, etcd:// and token:// "
                             "are registered in every heartbeat)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--base-port", type=int, default=0, metavar="P",
                        help="agent i listens on P+i (default: free ports)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each node (default 2)")
    parser.add_argument("--memory", default="2g", help="memory of each node (default 2g)")
    parser.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="label of every node (repeatable)")
    parser.add_argument("--images", default=None, metavar="REF,REF",
                        help="images present on every node (default busybox:latest)")
    parser.add_argument("--any-image", action="store_true",
                        help="a create with another image succeeds (pulled on the spot)")
    parser.add_argument("--name-prefix", default="hollow", help="node names are PREFIX-NNN")
    parser.add_argument("--heartbeat", default="5s", help="discovery refresh period")
    parser.add_argument("--ttl", default="15s", help="discovery registration lifetime")
    parser.add_argument("--calls-port", default="0", metavar="PORT|off",
                        help="port of the call link all the agents share (default 0: a "
                             "free port; off: their managers call over gRPC only)")
    parser.set_defaults(func=main)


def config_from_args(args) -> FleetConfig:
    """FleetConfig from parsed options; HollowError names the option that is wrong."""
    from flock.agent.cli import check_address, parse_calls_port

    try:
        check_address("--host", f"{args.host}:1")
        calls_port = parse_calls_port(getattr(args, "calls_port", "0"))
        labels = parse_labels(args.label)
        memory = parse_memory(args.memory)
        heartbeat, ttl = parse_duration(args.heartbeat), parse_duration(args.ttl)
    except (JoinError, ValueError) as exc:
        raise HollowError(str(exc)) from None
    if args.cpus < 1:
        raise HollowError(f"invalid --cpus {args.cpus}: must be at least 1")
    if heartbeat <= 0 or ttl <= 0:
        raise HollowError("--heartbeat and --ttl must be positive")
    images = [r.strip() for r in args.images.split(",") if r.strip()] if args.images else None
    return FleetConfig(agents=args.agents, discovery=args.discovery, host=args.host,
                       base_port=args.base_port, cpus=args.cpus, memory=memory,
                       labels=labels, images=images, any_image=args.any_image,
                       name_prefix=args.name_prefix,
                       heartbeat=heartbeat, ttl=ttl, calls_port=calls_port)


async def run_fleet(config: FleetConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_on_signals(loop, stop)
    fleet = HollowFleet(config)
    try:
        await fleet.start(progress=lambda text: log.info("%s", text))
        log.info("%d hollow agents ready on %s (%s ... %s)", len(fleet.agents), config.host,
                 fleet.addresses[0], fleet.addresses[-1])
        gc.freeze()  # the fleet's own objects live until the end: never scan them again
        # ...nor the containers made later (common/gc_freezer.py); a scale-test tool never
        # takes a full pass to reclaim what froze with them.
        freezer = Freezer(time.monotonic, thaw_every=math.inf).start()
        print(f"ready {len(fleet.agents)}", flush=True)
        await stop.wait()
        await freezer.stop()
    finally:
        await fleet.stop()


def main(args) -> int:
    try:
        config = config_from_args(args)
        gc.set_threshold(*THRESHOLDS)  # as the manager's
        open_files.raise_limit()  # three or four descriptors per agent
        event_loop.run(run_fleet(config))
    except (HollowError, event_loop.LoopChoiceError) as exc:
        print(f"flock hollow: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0

"""The manager: discovery, cluster state, node sync, scheduler and the Docker API front.

`Manager` wires the parts and owns their lifetimes; `flock manage` (manager/cli.py) and
the tests build one from a ManagerConfig and call `start()` / `stop()`.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import pathlib
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flock import certs, discovery
from flock.certs.exposure import is_loopback, is_wildcard, refusal
from flock.docker_compat.api_version import API_VERSION as DEFAULT_API_VERSION
from flock.docker_compat.api_version import version_tuple
from flock.docker_compat.tls_half_close import HalfCloseTLSSite
from flock.manager.api import malformed_requests
from flock.manager.api.client_limits import ClientLimits
from flock.manager.api.cluster_parts import Cluster, ListingRefresh
from flock.manager.api.docker import ps_json
from flock.manager.api.guarded_server import GuardedRunner
from flock.manager.api.lane.connection import HotLane
from flock.manager.api.shared_port import splitter
from flock.manager.cluster.agent_client import AgentClient
from flock.manager.cluster.call_stream import MAX_OPEN, StreamSlots
from flock.manager.cluster.state import ClusterState
from flock.manager.cluster.sync import MAX_BEATS, NodeWatcher, RefreshRange
from flock.manager.cron.service import CronService
from flock.manager.cron.store import FileStore, Store
from flock.manager.ha import Replication
from flock.manager.http_front import HOT_LANE, build_app
from flock.manager.observability import ManagerMetrics
from flock.manager.observability.gc_pauses import PauseObserver
from flock.manager.observability.local_events import LocalEvents
from flock.manager.placement.create import Placement
from flock.manager.placement.global_copies import GlobalReconciler
from flock.manager.placement.reschedule import Rescheduler
from flock.manager.scheduler.scheduler import Scheduler

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
    max_heartbeats: float = MAX_BEATS  # per second over the cluster; 0: no cap
    call_streams: int = MAX_OPEN  # agents with a DockerCalls stream open at once
    overcommit: float = 0.05
    failure_retry: int = 3
    name: str = ""  # shown by `docker info`; the host name by default
    discovery_url: str | None = None  # the token service, for token://
    replication: bool = False
    advertise: str = ""  # HOST:PORT other managers reach this one's API on
    replication_ttl: float = 15.0
    tls: bool = False  # --tls: the Docker API over TLS
    tlsverify: bool = False  # --tlsverify: ... and only for clients with a cert of the CA
    tls_files: certs.TLSFiles | None = None  # the front's CA, cert and key
    agent_tls_files: certs.TLSFiles | None = None  # mutual TLS to agents; None: plaintext
    insecure: bool = False  # allow a plaintext Docker API on a reachable address
    grpc_addr: str = ""  # --grpc-addr HOST:PORT: ClusterService there too; "" only on -H
    # Header and idle timeouts, connections per client address (client_limits.py).
    client_limits: ClientLimits = field(default_factory=ClientLimits)
    # classic Swarm's manage flags (manager/classic_flags.py): each node's refresh period
    # range (None: --heartbeat ±20%), CORS headers, and re-reads before a `docker ps`.
    refresh: RefreshRange | None = None
    cors: bool = False
    refresh_on_node_filter: bool = False
    container_name_refresh_filter: str = ""
    # What this manager keeps on disk: without etcd discovery, the cron jobs (cron.json).
    # "" means ~/.flock/manager.
    state_dir: str = ""


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
            self.backend = discovery.open_backend(config.discovery, config.discovery_url)
        except ValueError as exc:
            raise ConfigError(f"discovery: {exc}") from None
        self.ha = self._replication(config)
        try:
            self.scheduler = Scheduler(config.strategy, config.filters, config.overcommit)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.name = config.name or socket.gethostname()
        self.front_tls, self.agent_tls = self._load_tls(config)
        self.insecure_listens = self._check_exposure(config)
        self.ssl_context = self._ssl_context()
        if self.ha is not None and self.front_tls is not None:
            self.ha.client_ssl = certs.client_ssl_context(self.front_tls)
        credentials = (certs.grpc_channel_credentials(self.agent_tls)
                       if self.agent_tls is not None else None)
        link_tls = (certs.client_ssl_context(self.agent_tls)
                    if self.agent_tls is not None else None)
        self.state = ClusterState()
        # `docker ps` entries are encoded as records are written (about 15 us each), so
        # that the first `ps -a` after a burst does not encode them all at once (2 s at
        # 100,000 containers).
        ps_json.attach(self.state)
        self.metrics = ManagerMetrics(self.state, self.scheduler.filter_names)
        self._gc_observer = PauseObserver(self.metrics.gc_pause)
        self.scheduler.observer = self.metrics
        call_slots = StreamSlots(config.call_streams)
        self.metrics.call_carriers(call_slots)
        self.metrics.hot_lane(lambda: self.lane.counts() if self.lane is not None
                              else dict.fromkeys(HotLane.COUNTS, 0))
        self.watcher = NodeWatcher(self.state, self.backend, config.heartbeat,
                                   config.failure_retry,
                                   functools.partial(AgentClient, credentials=credentials,
                                                     observer=self.metrics.agent_rpc,
                                                     stream_slots=call_slots,
                                                     link_tls=link_tls),
                                   max_beats=config.max_heartbeats, refresh=config.refresh)
        # The one create path; rescheduling and global copies go through it too.
        self.placement = Placement(self.state, self.scheduler, self.watcher.records,
                                   self.watcher.clients)
        self.rescheduler = Rescheduler(self.placement, interval=config.heartbeat,
                                       is_leader=self.is_primary)
        self.watcher.rescheduler = self.rescheduler
        self.watcher.records.rescheduler = self.rescheduler
        self.global_copies = GlobalReconciler(self.placement, self.is_primary,
                                              interval=max(5.0, 5 * config.heartbeat))
        self.watcher.on_healthy.append(self.global_copies.node_ready)
        if self.ha is not None:
            self.ha.knows = self._knows
        # Cron jobs: fired by the primary only, their runs through the create path;
        # their events join the nodes' in `docker events` and the Events stream.
        self.local_events = LocalEvents()
        self.cron = CronService(self._cron_store(config), self.placement, self.local_events,
                                self.metrics.registry,
                                owner=config.advertise or f"{self.name}/{os.getpid()}",
                                is_primary=self.is_primary)
        # What the fronts get of this manager (api/cluster_parts.py), never the Manager.
        self.cluster = Cluster(
            state=self.state, records=self.watcher.records, clients=self.watcher.clients,
            scheduler=self.scheduler, metrics=self.metrics, this=self, nodes=self.watcher,
            rescheduler=self.rescheduler, global_copies=self.global_copies,
            placement=self.placement, local_events=self.local_events, cron=self.cron,
            listing=ListingRefresh(config.refresh_on_node_filter,
                                   config.container_name_refresh_filter))
        self._api_version: tuple[int, str] = (-1, DEFAULT_API_VERSION)
        self._runner: web.AppRunner | None = None
        self.lane: HotLane | None = None  # api/lane/: the busiest routes' cheaper path
        self.addresses: list[str] = []
        # ClusterService (manager/api/grpc.py): on every -H listener, and on --grpc-addr
        self.grpc_server = None
        self.grpc_address = ""  # what --grpc-addr bound; "" without it
        self._grpc_dir = ""  # the 0700 folder of the private socket -H listeners pass gRPC to

    def _replication(self, config: ManagerConfig) -> Replication | None:
        if not config.replication:
            return None
        from flock.discovery.etcd import EtcdBackend

        if not isinstance(self.backend, EtcdBackend):
            raise ConfigError("--replication needs etcd:// discovery: the managers elect "
                              "their primary in etcd")
        if not config.advertise:
            raise ConfigError("--replication needs --advertise HOST:PORT: the address "
                              "other managers forward writes to")
        from flock.discovery.etcd_client import EtcdClient

        client = EtcdClient([e.addr for e in self.backend.client.endpoints])
        return Replication(client, self.backend.prefix, config.advertise,
                           config.replication_ttl)

    def _cron_store(self, config: ManagerConfig) -> Store:
        """In etcd beside the agents (every manager sees the jobs), else in a file of
        this manager's state folder."""
        from flock.discovery.etcd import EtcdBackend

        if isinstance(self.backend, EtcdBackend):
            from flock.discovery.etcd_client import EtcdClient
            from flock.manager.cron.etcd_store import EtcdStore

            client = EtcdClient([e.addr for e in self.backend.client.endpoints])
            return EtcdStore(client, self.backend.prefix)
        folder = config.state_dir or os.path.join(os.path.expanduser("~"), ".flock",
                                                  "manager")
        return FileStore(pathlib.Path(folder) / "cron.json")

    def _load_tls(self, config: ManagerConfig
                  ) -> tuple[certs.Identity | None, certs.Identity | None]:
        """Both identities, checked now so that a bad file stops the start with a message
        naming it. The front's cert must name every specific address it is served on."""
        front = agent = None
        try:
            if config.tls or config.tlsverify:
                if config.tls_files is None:
                    raise ConfigError("--tls/--tlsverify need --tlscert and --tlskey")
                hosts = [lt.host for lt in self.listens
                         if lt.scheme == "tcp" and not is_wildcard(lt.host)]
                if config.advertise:
                    hosts.append(config.advertise.rpartition(":")[0])
                front = certs.load_identity(config.tls_files, hosts=list(dict.fromkeys(hosts)),
                                            server=True, need_ca=config.tlsverify)
            if config.agent_tls_files is not None:
                agent = certs.load_identity(config.agent_tls_files, role="manager")
        except certs.CertError as exc:
            raise ConfigError(str(exc)) from None
        return front, agent

    def _check_exposure(self, config: ManagerConfig) -> list[str]:
        """The plaintext TCP listeners other machines can reach: refused unless
        --insecure, and then warned about at start and in `docker info`."""
        exposed = [f"tcp://{lt.host}:{lt.port}" for lt in self.listens
                   if lt.scheme == "tcp" and self.front_tls is None and not is_loopback(lt.host)]
        if exposed and not config.insecure:
            raise ConfigError(refusal("-H", exposed[0], "--tlsverify --tlscacert --tlscert "
                                                        "--tlskey"))
        return exposed

    def tls_rows(self) -> list[list[str]]:
        """`docker info` SystemStatus rows saying how each link is protected (none when
        nothing is: the warnings say it then)."""
        rows = []
        if self.front_tls is not None:
            mode = "verify client certs" if self.config.tlsverify else "clients not verified"
            rows.append(["Docker API TLS", f"{mode}; {_expiry(self.front_tls)}"])
        if self.agent_tls is not None:
            rows.append(["Agent TLS", f"mutual; {_expiry(self.agent_tls)}"])
        return rows

    def security_warnings(self) -> list[str]:
        """`docker info` Warnings: plaintext on a reachable address, unverified clients,
        certs that expire within 30 days."""
        out = [f"the Docker API on {addr} has no TLS (--insecure): anyone who can reach it "
               "controls every node" for addr in self.insecure_listens]
        if self.front_tls is not None and not self.config.tlsverify:
            out.append("--tls without --tlsverify: the Docker API is encrypted but any "
                       "client may use it")
        idents = {"Docker API TLS": self.front_tls, "Agent TLS": self.agent_tls}
        return out + certs.expiry_warnings({k: v for k, v in idents.items() if v is not None})

    def _knows(self, ref: str) -> bool:
        try:
            self.state.resolve(ref)
        except LookupError:
            return False
        return True

    def is_primary(self) -> bool:
        """Whether this manager makes the cluster's decisions (always, without --replication)."""
        return self.ha is None or self.ha.is_primary

    def role_rows(self) -> list[list[str]]:
        """`docker info`'s Role (and, replicated, Primary) lines."""
        return self.ha.role_rows() if self.ha is not None else [["Role", "primary"]]

    def primary_address(self) -> str:
        """The primary's Docker API address, for a replica to name; "" when unknown."""
        return self.ha.leader if self.ha is not None else ""

    def api_version(self) -> str:
        """The lowest API version among healthy nodes (what every node understands).
        Asked on every request: cached until the healthy set or a version changes."""
        key = self.state.health_generation
        if self._api_version[0] != key:
            versions = [n.api_version for n in self.state.healthy_nodes() if n.api_version]
            self._api_version = (key, min(versions, key=version_tuple) if versions
                                 else DEFAULT_API_VERSION)
        return self._api_version[1]

    async def start(self) -> None:
        try:
            hot_lane = hot_lane_wanted(os.environ.get("FLOCK_HOT_LANE", ""))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._gc_observer.install()
        if self.ha is not None:
            await self.ha.start()
        await self.watcher.start()
        try:
            await self.cron.start()
        except OSError as exc:  # an unreadable cron.json
            await self.stop()
            raise ConfigError(str(exc)) from None
        self.rescheduler.start()
        self.global_copies.start()
        malformed_requests.install()
        try:
            grpc_socket = await self._start_cluster_service()
        except BaseException:
            await self.stop()
            raise
        forward = self.ha.middleware if self.ha is not None else None
        app = build_app(self.cluster, self.config.cors, forward, hot_lane)
        self.lane = app.get(HOT_LANE)
        self._runner = GuardedRunner(app, self.config.client_limits,
                                     route=_route(splitter(grpc_socket), self.lane),
                                     handler_cancellation=True, access_log=None)
        await self._runner.setup()
        try:
            for listen in self.listens:
                await self._serve(listen)
        except BaseException:
            await self.stop()
            raise
        log.info("manager %s serving the Docker API on %s (%s)", self.name,
                 ", ".join(self.addresses), self._tls_mode())
        for warning in self.security_warnings():
            log.warning("%s", warning)

    async def _start_cluster_service(self) -> str:
        """ClusterService on a private unix socket, which the -H listeners pass gRPC
        connections to (api/shared_port.py), and on --grpc-addr when given. Returns the
        socket's path."""
        from flock.manager.api.grpc import ListenError, start_server

        self._grpc_dir = tempfile.mkdtemp(prefix="flock-grpc-")  # 0700: this user only
        path = os.path.join(self._grpc_dir, "cluster.sock")
        try:
            self.grpc_server, self.grpc_address = await start_server(
                self, self.config.grpc_addr, private_socket=path)
        except ListenError as exc:
            raise ConfigError(str(exc)) from None
        if self.grpc_address:
            log.info("ClusterService on %s too (--grpc-addr)", self.grpc_address)
        return path

    async def _serve(self, listen: Listen) -> None:
        assert self._runner is not None
        if listen.scheme == "unix":
            if os.path.exists(listen.path):
                os.unlink(listen.path)
            site: web.BaseSite = web.UnixSite(self._runner, listen.path)
            await site.start()
            self.addresses.append(f"unix://{listen.path}")
            return
        if self.ssl_context is not None:  # a client's close_notify is a half-close
            site = HalfCloseTLSSite(self._runner, listen.host, listen.port,
                                    ssl_context=self.ssl_context)
        else:
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

    def _tls_mode(self) -> str:
        front = ("TLS, client certs verified" if self.config.tlsverify else "TLS"
                 ) if self.front_tls is not None else "no TLS"
        return f"{front}; agents over {'mutual TLS' if self.agent_tls else 'plaintext'}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.front_tls is None:
            return None
        try:
            context = certs.server_ssl_context(self.front_tls, self.config.tlsverify)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{self.front_tls.files.cert}: cannot use it for TLS: "
                              f"{getattr(exc, 'reason', None) or exc}") from None
        # gRPC clients offer only h2 (and refuse a peer that picks nothing); HTTP/1.1
        # first, so that a client offering both (curl) keeps speaking what aiohttp reads.
        context.set_alpn_protocols(["http/1.1", "h2"])
        return context

    async def stop(self) -> None:
        self._gc_observer.remove()
        if self.grpc_server is not None:
            await self.grpc_server.stop(0)
            self.grpc_server = None
        if self._grpc_dir:
            shutil.rmtree(self._grpc_dir, ignore_errors=True)
            self._grpc_dir = ""
        if self.lane is not None:
            self.lane.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.rescheduler.stop()
        await self.global_copies.stop()
        await self.cron.stop()
        if self.ha is not None:
            await self.ha.stop()
        await self.watcher.stop()
        for listen in self.listens:
            if listen.scheme == "unix" and os.path.exists(listen.path):
                os.unlink(listen.path)


def hot_lane_wanted(choice: str) -> bool:
    """FLOCK_HOT_LANE: on (the default) or off, for comparing the two paths or ruling
    the lane out when a client misbehaves."""
    choice = choice.strip().lower() or "on"
    if choice not in ("on", "off"):
        raise ValueError(f"FLOCK_HOT_LANE={choice!r}: use on or off")
    return choice == "on"


Route = Callable[[Callable[[], Any]], Callable[[], Any]]


def _route(split: Route, lane: HotLane | None) -> Route:
    """aiohttp's protocol factory wrapped: the gRPC split first, then the hot lane."""
    if lane is None:
        return split
    return lambda make_http: split(lane.wrap(make_http))


def _expiry(ident: certs.Identity) -> str:
    left = ident.expires - datetime.datetime.now(datetime.UTC)
    return f"cert expires {ident.expires:%Y-%m-%d} (in {max(left.days, 0)} days)"

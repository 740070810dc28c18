"""`flock manage`: run a manager serving the Docker API for the cluster in <discovery>."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from flock.certs import TLSFiles, default_cert_path
from flock.common import event_loop, open_files
from flock.common.durations import parse_duration
from flock.common.gc_freezer import THRESHOLDS, Freezer
from flock.common.signals import ignore_from_now, stop_on_signals
from flock.discovery.options import DiscoveryOptionError
from flock.discovery.options import resolve as resolve_discovery
from flock.manager import classic_flags
from flock.manager.api.client_limits import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_PER_CLIENT,
    ClientLimits,
)
from flock.manager.app import ConfigError, Manager, ManagerConfig
from flock.manager.cluster.call_stream import MAX_OPEN
from flock.manager.cluster.sync import MAX_BEATS

log = logging.getLogger("flock.manager")

DEFAULT_HOST = "tcp://127.0.0.1:2375"


def register(subparsers) -> None:
    """Add the `manage` sub-command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "manage", help="run a manager: one Docker API over the cluster's nodes",
        description="Serve the Docker Remote API for the cluster found in <discovery>.",
    )
    parser.add_argument("discovery", nargs="?", default=None,
                        help="nodes://HOST:PORT,..., HOST:PORT,..., file:///PATH, "
                             "etcd://HOST:PORT/PREFIX or token://TOKEN (default "
                             "$SWARM_DISCOVERY)")
    parser.add_argument("-H", "--host", action="append", default=[], metavar="URL",
                        help="address to serve on, repeatable (default $SWARM_HOST, "
                             f"comma-separated, else {DEFAULT_HOST})")
    parser.add_argument("--strategy", default=None,
                        choices=["spread", "binpack", "random"],
                        help="placement strategy (default $SWARM_STRATEGY, else spread)")
    parser.add_argument("-f", "--filter", action="append", default=None, metavar="NAME",
                        help="scheduler filter, repeatable; replaces the default chain")
    parser.add_argument("--heartbeat", default="5s", help="node refresh period (default 5s)")
    parser.add_argument("--max-heartbeats", type=float, default=MAX_BEATS, metavar="N",
                        help="at most N heartbeats per second over the whole cluster: "
                             "past N x heartbeat nodes, each node beats less often "
                             f"(default {MAX_BEATS:g}; 0: no cap)")
    parser.add_argument("--call-streams", type=int, default=MAX_OPEN, metavar="N",
                        help="at most N agents have a call link or a gRPC stream for the "
                             "manager's calls open at once; calls to the others go unary, at "
                             "two to three times the CPU each side. A stream holds about "
                             f"40 KiB each side (default {MAX_OPEN}; 0: every call unary)")
    parser.add_argument("--engine-failure-retry", type=int, default=3, metavar="N",
                        help="failed refreshes in a row before a node is unhealthy")
    parser.add_argument("--cluster-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="e.g. swarm.overcommit=0.05")
    parser.add_argument("--discovery-url", default=None, metavar="URL",
                        help="token service for token:// (default $FLOCK_DISCOVERY_URL)")
    parser.add_argument("--replication", action="store_true",
                        help="run several managers: one primary elected in etcd, replicas "
                             "forward writes to it")
    parser.add_argument("--advertise", "--addr", default=None, metavar="HOST:PORT",
                        help="this manager's API address for the other managers (default "
                             "$SWARM_ADVERTISE)")
    parser.add_argument("--grpc-addr", default="", metavar="HOST:PORT",
                        help="the gRPC ClusterService (flock nodes/ps/explain), always on "
                             "every -H address, on an address of its own too; loopback "
                             "only without TLS (default: none)")
    parser.add_argument("--replication-ttl", default="15s",
                        help="leader lease: a dead primary is replaced within about this")
    parser.add_argument("--state-dir", default="", metavar="DIR",
                        help="where this manager keeps its cron jobs without etcd discovery "
                             "(DIR/cron.json; default ~/.flock/manager)")
    add_client_limit_arguments(parser)
    add_tls_arguments(parser)
    classic_flags.add_arguments(parser)
    parser.set_defaults(func=main)


def add_client_limit_arguments(parser) -> None:
    """What a Docker API client connection may do (manager/api/client_limits.py)."""
    parser.add_argument("--read-header-timeout", default=f"{HEADER_TIMEOUT:g}s",
                        metavar="DURATION",
                        help="close a connection whose request head takes longer, counted "
                             f"from its first byte (default {HEADER_TIMEOUT:g}s as dockerd; 0: "
                             "none)")
    parser.add_argument("--idle-timeout", default=f"{IDLE_TIMEOUT:g}s", metavar="DURATION",
                        help="close a connection that sends nothing for this long, before "
                             f"its first request or between two (default {IDLE_TIMEOUT:g}s; "
                             "0: none)")
    parser.add_argument("--max-client-conns", type=int, default=MAX_PER_CLIENT, metavar="N",
                        help="connections one client address may hold open at once; more "
                             f"are answered 503 and closed (default {MAX_PER_CLIENT}; 0: no "
                             "cap)")


def client_limits(args) -> ClientLimits:
    """ClientLimits from the flags; ConfigError names a bad one."""
    timeouts = {}
    for flag, default in (("read_header_timeout", HEADER_TIMEOUT),
                          ("idle_timeout", IDLE_TIMEOUT)):
        text = getattr(args, flag, None)
        try:
            timeouts[flag] = default if text is None else parse_duration(text)
        except ValueError as exc:
            raise ConfigError(f"--{flag.replace('_', '-')}: {exc}") from None
    conns = getattr(args, "max_client_conns", MAX_PER_CLIENT)
    try:
        return ClientLimits(timeouts["read_header_timeout"], timeouts["idle_timeout"], conns)
    except ValueError:
        raise ConfigError("--read-header-timeout, --idle-timeout and --max-client-conns "
                          "take 0 (no limit) or more") from None


def add_tls_arguments(parser) -> None:
    """dockerd's TLS flags for the Docker API, and the same for the calls to agents."""
    default = default_cert_path()
    parser.add_argument("--tls", action="store_true",
                        help="serve the Docker API over TLS (implied by --tlsverify)")
    parser.add_argument("--tlsverify", action="store_true",
                        help="TLS, and only clients with a cert signed by --tlscacert get in")
    parser.add_argument("--tlscacert", default=None, metavar="FILE",
                        help=f"CA that client certs must be signed by (default {default}/ca.pem)")
    parser.add_argument("--tlscert", default=None, metavar="FILE",
                        help=f"this manager's cert (default {default}/cert.pem)")
    parser.add_argument("--tlskey", default=None, metavar="FILE",
                        help=f"this manager's key (default {default}/key.pem)")
    for name, what in (("cacert", "CA the agents' certs are signed by"),
                       ("cert", "client cert (role manager) shown to agents"),
                       ("key", "key of --agent-tlscert")):
        parser.add_argument(f"--agent-tls{name}", default=None, metavar="FILE",
                            help=f"mutual TLS to agents: {what} (default: --tls{name}; "
                                 "on with --tlsverify or any --agent-tls* flag)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow serving the Docker API without TLS on a non-loopback "
                             "address (anyone who reaches it controls every node)")


def tls_config(args) -> dict:
    """The TLS fields of ManagerConfig from the flags; ConfigError when cert flags are
    given without TLS being turned on (a plaintext API the user thinks is protected)."""
    tls, verify = getattr(args, "tls", False), getattr(args, "tlsverify", False)
    named = {k: getattr(args, f"tls{k}", None) for k in ("cacert", "cert", "key")}
    agent = {k: getattr(args, f"agent_tls{k}", None) for k in ("cacert", "cert", "key")}
    if any(named.values()) and not (tls or verify):
        raise ConfigError("--tlscacert/--tlscert/--tlskey given without --tlsverify or "
                          "--tls: add --tlsverify to require client certs (or --tls)")
    base = default_cert_path()
    front = TLSFiles(named["cacert"] or str(base / "ca.pem"),
                     named["cert"] or str(base / "cert.pem"),
                     named["key"] or str(base / "key.pem"))
    agent_files = None
    if verify or any(agent.values()):
        agent_files = TLSFiles(agent["cacert"] or front.ca, agent["cert"] or front.cert,
                               agent["key"] or front.key)
    return {"tls": tls or verify, "tlsverify": verify,
            "tls_files": front if (tls or verify) else None,
            "agent_tls_files": agent_files, "insecure": getattr(args, "insecure", False)}


def config_from_args(args) -> ManagerConfig:
    """A ManagerConfig from parsed arguments; ConfigError names a bad option."""
    try:
        heartbeat = parse_duration(args.heartbeat)
    except ValueError as exc:
        raise ConfigError(f"--heartbeat: {exc}") from None
    if heartbeat <= 0:
        raise ConfigError("--heartbeat must be positive")
    max_heartbeats = getattr(args, "max_heartbeats", MAX_BEATS)
    if not max_heartbeats >= 0:  # NaN too
        raise ConfigError(f"--max-heartbeats {max_heartbeats:g}: give a number of beats per "
                          "second, or 0 for no cap")
    call_streams = getattr(args, "call_streams", MAX_OPEN)
    if call_streams < 0:
        raise ConfigError(f"--call-streams {call_streams}: give a number of streams, or 0 "
                          "for every call unary")
    if args.engine_failure_retry < 1:
        raise ConfigError("--engine-failure-retry must be at least 1")
    try:
        classic_flags.check(args)
        refresh = classic_flags.refresh_range(args, heartbeat)
        overcommit = classic_flags.overcommit(args.cluster_opt)
        discovery = resolve_discovery(args.discovery, getattr(args, "discovery_opt", []))
    except (classic_flags.ClassicFlagError, DiscoveryOptionError) as exc:
        raise ConfigError(str(exc)) from None
    if not discovery:
        raise ConfigError("discovery required to manage a cluster. See 'flock manage "
                          "--help'.")
    advertise = classic_flags.advertise(args.advertise)
    try:
        replication_ttl = parse_duration(args.replication_ttl)
    except ValueError as exc:
        raise ConfigError(f"--replication-ttl: {exc}") from None
    if replication_ttl < 1:
        raise ConfigError("--replication-ttl must be at least 1s")
    if advertise:
        host, sep, port = advertise.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"invalid --advertise {advertise!r}: expected HOST:PORT")
    return ManagerConfig(
        discovery=discovery, hosts=classic_flags.hosts(args.host) or [DEFAULT_HOST],
        strategy=classic_flags.strategy(args.strategy, "spread"),
        filters=args.filter, heartbeat=heartbeat, max_heartbeats=max_heartbeats,
        call_streams=call_streams,
        overcommit=overcommit, refresh=refresh,
        failure_retry=args.engine_failure_retry, discovery_url=args.discovery_url,
        replication=args.replication, advertise=advertise,
        cors=getattr(args, "cors", False),
        refresh_on_node_filter=getattr(args, "refresh_on_node_filter", False),
        container_name_refresh_filter=getattr(args, "container_name_refresh_filter", ""),
        replication_ttl=replication_ttl, grpc_addr=getattr(args, "grpc_addr", ""),
        client_limits=client_limits(args), state_dir=getattr(args, "state_dir", ""),
        **tls_config(args),
    )


async def run_manager(args, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set); ConfigError for bad options."""
    manager = Manager(config_from_args(args))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = stop_on_signals(loop, stop)
    # A process-wide policy, so here and not in Manager (tests run managers inside the
    # test process): common/gc_freezer.py says why. Before the start, which makes the
    # nodes' connections: a first pass over those took 357 ms at 10,000 nodes.
    freezer = Freezer(lambda: manager.metrics.last_request).start()
    try:
        await manager.start()
        await stop.wait()
        log.info("manager stopping")
    finally:
        try:
            await freezer.stop()
            await manager.stop()
        finally:
            # Only now: a second SIGTERM during the stop must not kill the manager
            # half-way, leaving its private socket's folder behind.
            ignore_from_now(loop, signals)


def main(args) -> int:
    """Entry point for the assembled `flock` command: exit status."""
    # Young passes every 50,000 net allocations, what survives them frozen
    # (common/gc_freezer.py says why and what was measured).
    gc.set_threshold(*THRESHOLDS)
    open_files.raise_limit()  # a channel per node, and a call link for most
    try:
        event_loop.run(run_manager(args))
    except (ConfigError, event_loop.LoopChoiceError) as exc:
        print(f"flock manage: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0

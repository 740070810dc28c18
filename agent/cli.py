"""`flock join`: run the agent of this machine.

The agent serves the Agent gRPC service from a runtime and, given a discovery URL,
registers its advertised address there every heartbeat, so a manager (or etcd) that was
away finds it again. Stopping the agent leaves the containers running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

from flock.agent.call_link import CallLinkServer
from flock.agent.engine_endpoint import DEFAULT_DOCKER_HOST, is_unix_socket, parse_docker_host
from flock.agent.metrics import AgentMetrics, serve_metrics
from flock.agent.runtimes import RUNTIME_NAMES, RuntimeUnavailable, make_runtime
from flock.agent.server import AgentService, make_server
from flock.certs import (
    CertError,
    Identity,
    TLSFiles,
    default_cert_path,
    load_identity,
    server_ssl_context,
)
from flock.certs.exposure import is_loopback, refusal
from flock.common import event_loop
from flock.common.durations import parse_duration
from flock.common.signals import ignore_from_now, stop_on_signals

log = logging.getLogger("flock.agent")


ENV_ADVERTISE = "SWARM_ADVERTISE"  # classic's --advertise default (cli/flags.go)


class JoinError(ValueError):
    """A `flock join` option that cannot work; the message names it."""


def register(subparsers) -> None:
    """Add the `join` sub-command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "join", help="run this machine's agent and join a cluster",
        description="Run the agent: serve this node's runtime to Flock managers.",
    )
    parser.add_argument("discovery", nargs="?", default="",
                        help="discovery URL to register in (nodes://, file://, etcd://, "
                             "...; default $SWARM_DISCOVERY)")
    parser.add_argument("--advertise", "--addr", default=None, metavar="HOST:PORT",
                        help="address managers use to reach this agent")
    parser.add_argument("--listen", default="", metavar="HOST:PORT",
                        help="address to listen on (default: the --advertise address)")
    parser.add_argument("--runtime", choices=RUNTIME_NAMES, default="auto",
                        help="docker (local engine), exec (embedded), auto (docker if it "
                             "answers)")
    parser.add_argument("--docker-host", default=None, metavar="URL",
                        help="the engine of the docker runtime: unix:///path or "
                             "tcp://HOST:PORT (default $DOCKER_HOST, else "
                             "unix:///var/run/docker.sock)")
    parser.add_argument("--docker-tlsverify", action="store_true",
                        help="talk TLS to a tcp:// engine: verify it with ca.pem and present "
                             "cert.pem/key.pem from --docker-cert-path (default: on when "
                             "$DOCKER_TLS_VERIFY is set)")
    parser.add_argument("--docker-cert-path", default=None, metavar="DIR",
                        help="folder of the engine's ca.pem, cert.pem, key.pem (default "
                             "$DOCKER_CERT_PATH, else ~/.docker)")
    parser.add_argument("--state-dir", default=str(Path.home() / ".flock" / "agent"),
                        help="state folder of the exec runtime")
    parser.add_argument("--exec-bridge", default="", metavar="NAME",
                        help="exec runtime: the bridge containers are attached to (default "
                             "flock<8 hex of the engine ID>; `none`: containers use the "
                             "host's network)")
    parser.add_argument("--exec-subnet", default="", metavar="CIDR",
                        help="exec runtime: the bridge's IPv4 subnet (default: a free /24 of "
                             "10.210.0.0/16, kept in the state folder)")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        metavar="HOST:PORT",
                        help="exec runtime: a registry pulled from over plain HTTP "
                             "(repeatable; 127.0.0.0/8 and localhost always are)")
    parser.add_argument("--hollow-cpus", type=int, default=None, metavar="N",
                        help="hollow runtime: CPUs the node reports (default 2)")
    parser.add_argument("--hollow-memory", default=None, metavar="SIZE",
                        help="hollow runtime: memory the node reports, e.g. 2g (default 2g)")
    parser.add_argument("--hollow-images", default=None, metavar="REF,REF",
                        help="hollow runtime: the images present (default busybox:latest)")
    parser.add_argument("--hollow-any-image", action="store_true",
                        help="hollow runtime: create with any image, as if pulled first")
    parser.add_argument("--name", default=None, help="node name (default: the engine's)")
    parser.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="node label (repeatable)")
    parser.add_argument("--heartbeat", default="5s", help="discovery refresh period (default 5s)")
    parser.add_argument("--ttl", default="15s",
                        help="discovery registration lifetime (default 15s)")
    parser.add_argument("--discovery-url", default=None, metavar="URL",
                        help="token service for token:// (default $FLOCK_DISCOVERY_URL)")
    parser.add_argument("--discovery-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="discovery option, repeatable: kv.path=PATH (etcd://)")
    parser.add_argument("--delay", default="0s", metavar="DURATION",
                        help="wait a random time in [0s, DURATION] before registering, so "
                             "that agents started together do not register together")
    default = default_cert_path()
    parser.add_argument("--tlsverify", action="store_true",
                        help="mutual TLS: serve with --tlscert and answer only managers "
                             "whose client cert (role manager) is signed by --tlscacert")
    parser.add_argument("--tlscacert", default=None, metavar="FILE",
                        help=f"CA of the managers' certs (default {default}/ca.pem)")
    parser.add_argument("--tlscert", default=None, metavar="FILE",
                        help="this agent's server cert; it must name the --advertise host "
                             f"(default {default}/cert.pem)")
    parser.add_argument("--tlskey", default=None, metavar="FILE",
                        help=f"this agent's key (default {default}/key.pem)")
    parser.add_argument("--metrics-addr", default="", metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics "
                             "(default: off)")
    parser.add_argument("--calls-port", default="0", metavar="PORT|off",
                        help="port of the call link, where managers send short Docker "
                             "calls cheaper than over gRPC, on the --listen host with the "
                             "same TLS (default 0: a free port; off: gRPC only)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow listening without TLS on a non-loopback address "
                             "(anyone who reaches it controls this machine's containers)")
    parser.set_defaults(func=main)


def load_tls(args, advertise: str, listen: str) -> Identity | None:
    """The agent's checked TLS identity, or None for plaintext, which is allowed only on
    loopback unless --insecure. JoinError names the file or flag that cannot work."""
    verify = getattr(args, "tlsverify", False)
    named = {k: getattr(args, f"tls{k}", None) for k in ("cacert", "cert", "key")}
    if not verify:
        if any(named.values()):
            raise JoinError("--tlscacert/--tlscert/--tlskey given without --tlsverify: add "
                            "--tlsverify to serve over mutual TLS")
        host = listen.rpartition(":")[0]
        if not is_loopback(host) and not getattr(args, "insecure", False):
            flag = "--listen" if getattr(args, "listen", "") else "--advertise"
            raise JoinError(refusal(flag, listen, "--tlsverify --tlscacert --tlscert --tlskey",
                                    local="127.0.0.1"))
        return None
    base = default_cert_path()
    files = TLSFiles(named["cacert"] or str(base / "ca.pem"),
                     named["cert"] or str(base / "cert.pem"),
                     named["key"] or str(base / "key.pem"))
    try:
        return load_identity(files, hosts=[advertise.rpartition(":")[0]], server=True)
    except CertError as exc:
        raise JoinError(str(exc)) from None


def engine_options(args, env: Mapping[str, str] = os.environ
                   ) -> tuple[str, ssl.SSLContext | None]:
    """The docker runtime's engine and TLS context, from the flags, else the docker CLI's
    variables as it reads them: DOCKER_HOST, DOCKER_TLS_VERIFY (any non-empty value),
    DOCKER_CERT_PATH (else ~/.docker). The variables' TLS is for a tcp:// engine: left
    over from `eval $(flock machine env ...)`, they do not turn a unix socket into an
    error (--docker-tlsverify does). JoinError names the flag or file that cannot work,
    before anything starts."""
    host = getattr(args, "docker_host", None) or env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    verify = getattr(args, "docker_tlsverify", False) or (
        bool(env.get("DOCKER_TLS_VERIFY")) and not is_unix_socket(host))
    folder = getattr(args, "docker_cert_path", None)
    if folder and not verify:
        raise JoinError("--docker-cert-path given without --docker-tlsverify: add "
                        "--docker-tlsverify to talk TLS to the engine")
    if getattr(args, "runtime", "docker") not in ("docker", "auto"):
        return host, None
    tls = None
    if verify:
        from flock.certs import engine_client_context

        try:
            tls = engine_client_context(folder or env.get("DOCKER_CERT_PATH")
                                        or Path.home() / ".docker")
        except (CertError, ssl.SSLError) as exc:
            raise JoinError(f"--docker-tlsverify: {exc}") from None
    try:
        parse_docker_host(host, tls)
    except ValueError as exc:
        raise JoinError(str(exc)) from None
    return host, tls


def parse_labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise JoinError(f"invalid --label {item!r}: expected key=value")
        labels[key] = value
    return labels


def hollow_options(args) -> dict:
    """The --hollow-* flags as make_runtime options (absent ones are left out)."""
    from flock.agent.runtimes.hollow.sizes import parse_memory

    opts: dict = {}
    cpus = getattr(args, "hollow_cpus", None)
    if cpus is not None:
        if cpus < 1:
            raise JoinError(f"invalid --hollow-cpus {cpus}: must be at least 1")
        opts["cpus"] = cpus
    if getattr(args, "hollow_memory", None):
        try:
            opts["memory"] = parse_memory(args.hollow_memory)
        except ValueError as exc:
            raise JoinError(f"--hollow-memory: {exc}") from None
    if getattr(args, "hollow_images", None):
        opts["images"] = [r.strip() for r in args.hollow_images.split(",") if r.strip()]
    if getattr(args, "hollow_any_image", False):
        opts["any_image"] = True
    return opts


def exec_network_options(args) -> dict:
    """--exec-bridge/--exec-subnet as make_runtime options, the subnet checked now."""
    bridge = getattr(args, "exec_bridge", "") or ""
    subnet = getattr(args, "exec_subnet", "") or ""
    if subnet:
        try:
            net = ipaddress.ip_network(subnet)
        except ValueError as exc:
            raise JoinError(f"invalid --exec-subnet {subnet!r}: {exc}") from None
        if net.version != 4 or net.num_addresses < 4:
            raise JoinError(f"invalid --exec-subnet {subnet!r}: an IPv4 subnet of at least "
                            f"4 addresses (a /30 or larger)")
    if len(bridge) > 15:
        raise JoinError(f"invalid --exec-bridge {bridge!r}: interface names have at most "
                        f"15 characters")
    return {"bridge": bridge, "subnet": subnet} if bridge or subnet else {}


def check_address(flag: str, text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JoinError(f"invalid {flag} {text!r}: expected HOST:PORT")
    return text


def _durations(args) -> tuple[float, float, float]:
    """--heartbeat, --ttl and --delay in seconds. As in classic's join (cli/join.go), a
    registration must outlive the heartbeat that renews it."""
    values = []
    for flag in ("heartbeat", "ttl", "delay"):
        try:
            values.append(parse_duration(getattr(args, flag, None) or "0s"))
        except ValueError as exc:
            raise JoinError(f"--{flag}: {exc}") from None
        if values[-1] <= 0 and flag != "delay":
            raise JoinError(f"--{flag} must be positive")
    heartbeat, ttl, delay = values
    if args.discovery and ttl <= heartbeat:
        raise JoinError("--ttl must be strictly superior to the heartbeat value")
    return heartbeat, ttl, delay


def parse_calls_port(text: str) -> int | None:
    """--calls-port: a port (0 for a free one), or None for `off`; JoinError else."""
    text = str(text).strip().lower()
    if text == "off":
        return None
    if not text.isdigit() or int(text) > 65535:
        raise JoinError(f"invalid --calls-port {text!r}: a port (0-65535, 0 for a free "
                        "one) or off")
    return int(text)


async def start_call_link(resolve, host: str, port: int | None, tls: Identity | None = None,
                          metrics: AgentMetrics | None = None
                          ) -> tuple[CallLinkServer | None, int]:
    """The call link on `host`, with the agent's TLS (callers must show a client cert
    of its CA), its calls counted in `metrics`: (server, bound port), or (None, 0)
    when --calls-port is off. JoinError names the flag when it cannot listen."""
    if port is None:
        return None, 0
    context = server_ssl_context(tls, verify=True) if tls is not None else None
    server = CallLinkServer(resolve, context,
                            metrics.docker_call if metrics is not None else None,
                            metrics.rpc if metrics is not None else None)
    try:
        return server, await server.start(host, port)
    except OSError as exc:
        raise JoinError(f"cannot listen on {host}:{port} for --calls-port: "
                        f"{exc.strerror or exc}") from None


def _advertise(args) -> str:
    """--advertise/--addr, else $SWARM_ADVERTISE (classic's cli/flags.go flJoinAdvertise)."""
    advertise = (args.advertise or "").strip() or os.environ.get(ENV_ADVERTISE, "").strip()
    if not advertise:
        raise JoinError("missing mandatory --advertise flag")  # classic's cli/join.go
    return check_address("--advertise", advertise)


def _resolve_discovery(args) -> str:
    """The discovery URL (else $SWARM_DISCOVERY) with --discovery-opt applied."""
    from flock.discovery.options import DiscoveryOptionError, resolve

    try:
        return resolve(args.discovery, getattr(args, "discovery_opt", []))
    except DiscoveryOptionError as exc:
        raise JoinError(str(exc)) from None


async def _register_loop(backend, url: str, advertise: str, heartbeat: float,
                         ttl: float, delay: float = 0.0) -> None:
    """Keep the registration fresh. When discovery is away (etcd down, token service
    unreachable) retry with a backoff capped at the heartbeat; never fatal: the agent
    keeps serving its containers meanwhile. `delay`: classic's --delay, a random wait
    before the first registration."""
    if delay > 0:
        wait = random.uniform(0, delay)
        log.info("waiting %.1fs before registering in %s (--delay)", wait, url)
        await asyncio.sleep(wait)
    backoff = 0.0
    while True:
        try:
            await backend.register(advertise, ttl)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - discovery away: retry
            backoff = min(heartbeat, max(0.5, backoff * 2))
            log.warning("cannot register %s in %s: %s; retrying in %.1fs",
                        advertise, url, exc, backoff)
            await asyncio.sleep(backoff)
            continue
        if backoff:
            log.info("registered %s in %s again", advertise, url)
        backoff = 0.0
        await asyncio.sleep(heartbeat)


def _open_discovery(args):
    """The discovery backend of `args`, or None; JoinError for a URL that cannot work."""
    if not args.discovery:
        return None
    from flock import discovery
    try:
        return discovery.open_backend(args.discovery, getattr(args, "discovery_url", None))
    except ValueError as exc:
        raise JoinError(f"invalid discovery {args.discovery!r}: {exc}") from None


async def run_agent(args, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set). JoinError/RuntimeUnavailable
    when the options or the runtime cannot work."""
    advertise = _advertise(args)
    args.discovery = _resolve_discovery(args)
    listen = check_address("--listen", args.listen) if args.listen else advertise
    metrics_addr = getattr(args, "metrics_addr", "")
    if metrics_addr:
        check_address("--metrics-addr", metrics_addr)
    heartbeat, ttl, delay = _durations(args)
    labels = parse_labels(args.label)
    calls_port = parse_calls_port(getattr(args, "calls_port", "0"))
    tls = load_tls(args, advertise, listen)
    docker_host, docker_tls = engine_options(args)
    backend = _open_discovery(args)  # a bad URL fails now, not in the loop
    try:
        runtime = make_runtime(args.runtime, docker_host=docker_host, docker_tls=docker_tls,
                               state_dir=Path(args.state_dir).expanduser(),
                               node_name=args.name, labels=labels, **hollow_options(args),
                               **exec_network_options(args),
                               insecure_registries=getattr(args, "insecure_registry", []))
    except ValueError as exc:
        raise JoinError(str(exc)) from None
    await runtime.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = stop_on_signals(loop, stop)
    tasks: list[asyncio.Task] = []
    metrics, metrics_runner, link = AgentMetrics(), None, None
    try:
        try:
            service = AgentService(runtime, advertise, args.name, labels,
                                   state_dir=Path(args.state_dir).expanduser())
            server, port = make_server(service, listen, tls, metrics)
        except ValueError as exc:
            raise JoinError(str(exc)) from None
        if metrics_addr:  # before the agent serves: a bad address stops nothing running
            metrics_runner = await _serve_metrics(metrics, metrics_addr)
        link, link_port = await start_call_link(service.resolve_link,
                                                listen.rpartition(":")[0].strip("[]"),
                                                calls_port, tls,
                                                metrics)
        if link is not None:
            service.calls_address = f"{advertise.rpartition(':')[0]}:{link_port}"
        await server.start()
        log.info("agent %s (runtime %s, %s) listening on port %d%s (%s)",
                 advertise, runtime.name, runtime.endpoint, port,
                 f", call link on {link_port}" if link is not None else "",
                 "mutual TLS, managers only" if tls else "no TLS")
        if tls is None and not is_loopback(listen.rpartition(":")[0]):
            log.warning("agent listening on %s without TLS (--insecure): anyone who can reach "
                        "it controls this machine's containers", listen)
        if backend is not None:
            tasks.append(asyncio.create_task(
                _register_loop(backend, args.discovery, advertise, heartbeat, ttl, delay)))
        await stop.wait()
        log.info("agent stopping; containers keep running")
        await server.stop(grace=2)
        service.later_reads.close()
        if service.calls is not None:
            await service.calls.close()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if backend is not None and hasattr(backend, "close"):
            with contextlib.suppress(Exception):
                await backend.close()
        try:
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            if link is not None:
                await link.stop()
            await runtime.stop()
        finally:
            # Only now, as `flock manage` does: a second SIGTERM during the stop must
            # not kill the agent before its runtime has stopped.
            ignore_from_now(loop, signals)



async def _serve_metrics(metrics: AgentMetrics, addr: str):
    try:
        runner, port = await serve_metrics(metrics, addr)
    except OSError as exc:
        raise JoinError(f"cannot listen on {addr} for --metrics-addr: "
                        f"{exc.strerror or exc}") from None
    log.info("metrics on http://%s:%d/metrics", addr.rpartition(":")[0], port)
    return runner


def main(args) -> int:
    """Entry point for the assembled `flock` command: exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        event_loop.run(run_agent(args))
    except (JoinError, RuntimeUnavailable, event_loop.LoopChoiceError) as exc:
        print(f"flock join: error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, JoinError) else 1
    return 0

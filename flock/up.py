"""`flock up`: a manager and N agents on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from flock.local_cluster import ClusterError, LocalCluster


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "up", help="run a local cluster (a manager and N agents) until Ctrl-C",
        description="Start a manager and N agents on this machine, print the DOCKER_HOST "
        "to use, and keep running until Ctrl-C, then stop everything it started.",
    )
    add_cluster_flags(parser)
    parser.add_argument("-H", "--host", default="tcp://127.0.0.1:2375",
                        help="where the manager listens (default tcp://127.0.0.1:2375)")
    parser.set_defaults(func=run)


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=2, help="number of agents (default 2)")
    parser.add_argument("--runtime", choices=["auto", "docker", "exec"], default="auto",
                        help="auto: the local Docker Engine for a single agent when one "
                        "answers, the embedded exec runtime otherwise")
    parser.add_argument("--strategy", choices=["spread", "binpack", "random"], default="spread")
    parser.add_argument("--state-dir", default=None,
                        help="keep state here (default: a temporary folder, removed at exit)")
    parser.add_argument("--docker-host", default="unix:///var/run/docker.sock",
                        help="the engine the docker runtime drives")


def cluster_from_args(args: argparse.Namespace, host: str = "127.0.0.1", port: int = 0):
    import pathlib

    return LocalCluster(
        agents=args.agents, runtime=args.runtime, strategy=args.strategy,
        state_dir=pathlib.Path(args.state_dir) if args.state_dir else None,
        docker_host=args.docker_host, host=host, port=port,
        progress=lambda message: print(f"flock up: {message}", file=sys.stderr, flush=True),
    )


def parse_tcp(url: str) -> tuple[str, int]:
    rest = url.removeprefix("tcp://")
    host, sep, port = rest.rpartition(":")
    if not url.startswith("tcp://") or not sep or not port.isdigit():
        raise ClusterError(f"invalid -H {url!r}: expected tcp://HOST:PORT")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_tcp(args.host)
        cluster = cluster_from_args(args, host, port)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        cluster.start()
    except ClusterError as exc:
        print(f"flock up: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"# {cluster.agents} nodes ({cluster.runtime} runtime); "
              f"logs in {cluster.state_dir}. Ctrl-C stops the cluster.", flush=True)
        # The flock commands need nothing more: the ClusterService shares the port.
        print(f"export DOCKER_HOST={cluster.url}", flush=True)
        while not stop.wait(1):
            cluster.check_children()
    except KeyboardInterrupt:
        pass
    except ClusterError as exc:
        print(f"flock up: {exc}", file=sys.stderr)
        return 1
    finally:
        print("flock up: stopping", file=sys.stderr, flush=True)
        cluster.stop()
    return 0

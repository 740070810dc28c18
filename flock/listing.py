"""`flock list <discovery>`: the agent addresses a discovery backend holds now.

classic Swarm's `list` flags too (cli/list.go): `--timeout` (default 10s, "Timed out"
when the backend has not answered by then), `--discovery-opt`, and $SWARM_DISCOVERY when
no URL is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from flock.common.durations import parse_duration
from flock.discovery import DiscoveryError, open_backend
from flock.discovery.options import DiscoveryOptionError, resolve


class ListError(ValueError):
    """A `flock list` option that cannot work; the message says which."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("list", help="list the agents registered in a discovery backend")
    parser.add_argument("discovery", nargs="?", default=None,
                        help="nodes://H:P,..., file:///PATH, etcd://H:P/PREFIX, token://ID "
                             "(default $SWARM_DISCOVERY)")
    parser.add_argument("--discovery-url", default=None,
                        help="the token service for token:// (default: $FLOCK_DISCOVERY_URL)")
    parser.add_argument("--timeout", default="10s", metavar="DURATION",
                        help="give up when the backend has not answered by then (default 10s)")
    parser.add_argument("--discovery-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="discovery option, repeatable: kv.path=PATH (etcd://)")
    parser.set_defaults(func=run)


def options(args: argparse.Namespace) -> tuple[str, float]:
    """(discovery URL, timeout in seconds); ListError names what is wrong."""
    try:
        url = resolve(args.discovery, getattr(args, "discovery_opt", []))
    except DiscoveryOptionError as exc:
        raise ListError(str(exc)) from None
    if not url:
        raise ListError("discovery required to list a cluster. See 'flock list --help'.")
    try:
        timeout = parse_duration(getattr(args, "timeout", None) or "10s")
    except ValueError as exc:
        raise ListError(f"invalid --timeout: {exc}") from None
    if timeout <= 0:
        raise ListError("--timeout should be a positive number")
    return url, timeout


async def fetch(url: str, discovery_url: str | None, timeout: float) -> list[str]:
    backend = open_backend(url, discovery_url)
    try:
        return await asyncio.wait_for(backend.fetch(), timeout)
    except TimeoutError:
        raise DiscoveryError("Timed out") from None
    finally:
        if hasattr(backend, "close"):
            await backend.close()


def run(args: argparse.Namespace) -> int:
    try:
        url, timeout = options(args)
        for addr in asyncio.run(fetch(url, args.discovery_url, timeout)):
            print(addr)
    except (DiscoveryError, ListError) as exc:
        print(f"flock list: {exc}", file=sys.stderr)
        return 1
    return 0

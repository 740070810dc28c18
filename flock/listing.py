"""`flock list <discovery>`: the agent addresses a discovery backend holds now."""

from __future__ import annotations

import argparse
import asyncio
import sys

from discovery import DiscoveryError, open_backend


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("list", help="list the agents registered in a discovery backend")
    parser.add_argument("discovery",
                        help="nodes://H:P,..., file:///PATH, etcd://H:P/PREFIX, token://ID")
    parser.add_argument("--discovery-url", default=None,
                        help="the token service for token:// (default: $FLOCK_DISCOVERY_URL)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        for addr in asyncio.run(open_backend(args.discovery, args.discovery_url).fetch()):
            print(addr)
    except DiscoveryError as exc:
        print(f"flock list: {exc}", file=sys.stderr)
        return 1
    return 0

"""`flock token serve` (run the token service) and `flock create` (get a new token)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from flock.common.signals import stop_on_signals
from flock.discovery.backend import DiscoveryError
from flock.discovery.token import ENV_URL, create_token
from flock.discovery.token_service import serve


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `token` and `create` sub-commands."""
    token = subparsers.add_parser("token", help="Flock's discovery token service")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    server = actions.add_parser("serve", help="serve token:// discovery over HTTP")
    server.add_argument("--addr", default="127.0.0.1:8500", metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:8500)")
    server.add_argument("--state", default="", metavar="FILE",
                        help="keep the clusters in this JSON file across restarts")
    server.set_defaults(func=run_serve)

    create = subparsers.add_parser("create", help="create a cluster and print its token")
    create.add_argument("--discovery-url", default=None, metavar="URL",
                        help=f"the token service (default ${ENV_URL})")
    create.set_defaults(func=run_create)


def run_create(args: argparse.Namespace) -> int:
    try:
        print(asyncio.run(create_token(args.discovery_url)))
    except DiscoveryError as exc:
        print(f"flock create: {exc}", file=sys.stderr)
        return 1
    return 0


def run_serve(args: argparse.Namespace) -> int:
    host, sep, port = args.addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        print(f"flock token serve: invalid --addr {args.addr!r}: expected HOST:PORT",
              file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(host or "0.0.0.0", int(port), Path(args.state) if args.state else None))
    except DiscoveryError as exc:
        print(f"flock token serve: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(host: str, port: int, state: Path | None) -> None:
    runner = await serve(host, port, state)
    print(f"token service on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_on_signals(loop, stop)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """`python -m flock.discovery.token_cli token serve|create ...`: the same commands, usable
    before (or without) the assembled `flock` command."""
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="flock")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    register(commands)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

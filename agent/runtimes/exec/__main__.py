"""`python -m flock.agent.runtimes.exec --state-dir D [--socket S] [--name N]`: serve the exec
runtime on its own until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal

from flock.agent.runtimes.exec.network import NetworkConfig
from flock.agent.runtimes.exec.runtime import ExecRuntime


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"labels are key=value, got {text!r}")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flock.agent.runtimes.exec",
                                     description="Serve Flock's exec runtime.")
    parser.add_argument("--state-dir", required=True, type=pathlib.Path)
    parser.add_argument("--socket", help="unix socket path (default: STATE_DIR/docker.sock)")
    parser.add_argument("--name", help="node name reported by info (default: host name)")
    parser.add_argument("--label", action="append", type=_label, default=[])
    parser.add_argument("--cpus", type=int)
    parser.add_argument("--memory", type=int, help="bytes")
    parser.add_argument("--bridge", default="",
                        help="bridge of the containers (default flock<8 hex of the engine "
                             "ID>; none: the host's network)")
    parser.add_argument("--subnet", default="", help="the bridge's IPv4 subnet (default: "
                                                      "a free /24 of 10.210.0.0/16)")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        metavar="HOST:PORT", help="a registry to reach over plain HTTP "
                        "(repeatable; loopback ones always are)")
    parser.add_argument("--no-isolation", action="store_true",
                        help="run containers as plain processes even as root")
    return parser.parse_args(argv)


class _SocketRuntime(ExecRuntime):
    """The runtime with its socket somewhere other than the state folder."""

    def __init__(self, socket: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._socket = socket

    @property
    def socket_path(self) -> str:
        return self._socket


async def serve(args: argparse.Namespace) -> None:
    kwargs = dict(state_dir=args.state_dir, node_name=args.name, labels=dict(args.label),
                  cpus=args.cpus, memory=args.memory,
                  isolate=False if args.no_isolation else None,
                  network=NetworkConfig.from_options(args.bridge, args.subnet),
                  insecure_registries=tuple(args.insecure_registry))
    runtime = _SocketRuntime(args.socket, **kwargs) if args.socket else ExecRuntime(**kwargs)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    await runtime.start()
    logging.info("exec runtime serving on %s (isolated: %s)", runtime.socket_path,
                 runtime.isolated)
    print(f"listening on unix://{runtime.socket_path}", flush=True)
    await done.wait()
    await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()

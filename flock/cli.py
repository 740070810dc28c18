"""The `flock` command: each program registers its own sub-commands here.

The manager owns `manage`, the agent `join`, the local-cluster helpers `up` and `demo`,
discovery `list`; this module only assembles them and turns a top-level error into a
message and an exit code.
"""

from __future__ import annotations

import argparse

from flock.logs import setup_logging
from flock.version import VersionAction


def build_parser() -> argparse.ArgumentParser:
    from agent.cli import register as register_join
    from certs.cli import register as register_certs
    from discovery.token_cli import register as register_token
    from flock.cluster_cli import register as register_cluster
    from flock.demo import register as register_demo
    from flock.hollow import register as register_hollow
    from flock.listing import register as register_list
    from flock.up import register as register_up
    from manager.cli import register as register_manage
    from provisioner.cli import register as register_machine

    parser = argparse.ArgumentParser(
        prog="flock",
        description="One Docker API over many machines: a cluster scheduler and provisioner.",
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument(
        "-l", "--log-level", default="info",
        choices=["debug", "info", "warning", "error"], help="log level (default: info)",
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text lines, or one JSON object per line (default: text)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    register_manage(commands)
    register_join(commands)
    register_up(commands)
    register_demo(commands)
    register_list(commands)
    register_token(commands)
    register_certs(commands)
    register_cluster(commands)
    register_hollow(commands)
    register_machine(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130

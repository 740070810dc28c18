"""The `flock` command: each program registers its own sub-commands here.

The manager owns `manage`, the agent `join`, the local-cluster helpers `up` and `demo`,
discovery `list`; this module only assembles them and turns a top-level error into a
message and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from flock.common.logs import setup_logging
from flock.common.version import VersionAction

# The module that registers each command. Only the one a command line asks for is
# imported: `flock machine ls` need not load the manager, the agent and gRPC (about
# two thirds of a plain start, seconds on a loaded or emulated machine). Help, a typo
# or no command load them all. tests/unit/test_cli_commands.py keeps this in step.
REGISTRARS = {
    "manage": "flock.manager.cli", "join": "flock.agent.cli", "up": "flock.up",
    "demo": "flock.demo", "list": "flock.listing", "token": "flock.discovery.token_cli",
    "create": "flock.discovery.token_cli",
    "certs": "flock.certs.cli", **dict.fromkeys(
        ("nodes", "ps", "explain", "run", "node", "drain", "activate", "events"),
        "flock.cluster_cli"),
    "cron": "flock.cron_cli", "hollow": "flock.hollow", "machine": "flock.provisioner.cli",
}
MODULES = list(dict.fromkeys(REGISTRARS.values()))  # in the order help lists them
_VALUED = ("-l", "--log-level", "--log-format")  # top-level options that take a value
_SWITCHES = ("--debug", "--experimental")  # top-level options that take none
# classic Swarm's global flags (cli/cli.go): its logrus levels beyond ours, and --debug
# (or $DEBUG, read as Go's strconv.ParseBool) meaning debug unless a level is given.
_CLASSIC_LEVELS = {"warn": "warning", "fatal": "critical", "panic": "critical"}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def command_word(argv: list[str]) -> str | None:
    """The command an argument list asks for, or None when it cannot be told without
    the whole parser (help, an unknown option before the command)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg.startswith("--log-") and "=" in arg or arg in _SWITCHES:
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (given the argument list) one with only the command it
    asks for when that is known."""
    module = REGISTRARS.get(command_word(argv)) if argv is not None else None
    parser = argparse.ArgumentParser(
        prog="flock",
        description="One Docker API over many machines: a cluster scheduler and provisioner.",
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument(
        "-l", "--log-level", default=None,
        choices=["debug", "info", "warning", "error", *_CLASSIC_LEVELS],
        help="log level (default: info; debug with --debug)",
    )
    parser.add_argument("--debug", action="store_true",
                        help="debug mode: --log-level debug unless one is given (default: "
                             "on when $DEBUG is true)")
    parser.add_argument("--experimental", action="store_true",
                        help="accepted for classic Swarm's command lines: Flock has no "
                             "features behind such a switch")
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text lines, or one JSON object per line (default: text)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in [module] if module else MODULES:
        importlib.import_module(name).register(commands)
    return parser


def log_level(args: argparse.Namespace) -> str:
    """-l, else debug for --debug or $DEBUG, else info; classic's names mapped to ours."""
    level = args.log_level
    if level is None:
        debug = getattr(args, "debug", False) or os.environ.get("DEBUG", "") in _TRUE
        level = "debug" if debug else "info"
    return _CLASSIC_LEVELS.get(level, level)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    setup_logging(log_level(args), args.log_format)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130

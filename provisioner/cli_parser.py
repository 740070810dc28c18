"""How `flock machine` reads its command line: Docker Machine's help, version and usage
errors on top of argparse.

Scripts written for `docker-machine` check exit codes and read its messages, so a bad
command line is answered as Docker Machine 0.16.2 answers it (cmd/docker-machine/machine.go,
commands/commands.go, codegangsta/cli's command.go) rather than with argparse's defaults:
- help starts with `Usage:`; `flock machine` alone prints the app help and exits 0;
- an unknown command is `flock machine: 'x' is not a flock machine command. See 'flock
  machine --help'.`, an unknown or malformed flag `Incorrect Usage.` with the command's
  help, both exit 1 (argparse would exit 2; Docker Machine exits 0 after a bad flag, a
  bug: see docs/machine-compat.md);
- positional arguments beyond what a command takes get that command's own error
  (`extra_error`), e.g. "Error: Expected one machine name as an argument".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

APP = "flock machine"
USAGE_PREFIX = "Usage: "
EXIT_USAGE = 1


def version_text() -> str:
    """`flock machine version X, build REV`, as `docker-machine version 0.16.2, build
    bd45ab13` (cli.ShowVersion with machine.go's version.FullVersion())."""
    from flock.common.version import __version__, revision

    return f"{APP} version {__version__}, build {revision()}"


class MachineHelpFormatter(argparse.HelpFormatter):
    """argparse's layout, with Docker Machine's `Usage:` (argparse writes `usage:`)."""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, USAGE_PREFIX if prefix is None else prefix)


class MachineParser(argparse.ArgumentParser):
    """A parser that fails like Docker Machine: the command's own message, exit 1.

    `extra_error(extras)` gives the message for positional arguments the command does not
    take; without it they are refused like an unknown flag."""

    extra_error: Callable[[list[str]], str] | None = None

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", MachineHelpFormatter)
        kwargs["exit_on_error"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        try:
            namespace, extras = super().parse_known_args(args, namespace)
        except argparse.ArgumentError as exc:
            self.error(str(exc), argument=exc.argument_name, message=exc.message)
        flags = [a for a in extras if a.startswith("-") and a != "-"]
        if flags:
            name = flags[0].lstrip("-").split("=", 1)[0]
            self.error(f"flag provided but not defined: -{name}")
        if extras:
            if self.extra_error is None:
                self.error(f"unexpected arguments: {' '.join(extras)}")
            self.fail(self.extra_error(extras))
        return namespace, []

    def error(self, text: str, argument: str | None = None, message: str = "") -> None:
        """`Incorrect Usage.`, this command's help, then what was wrong; exit 1. An unknown
        command is cmdNotFound's one line instead."""
        commands = getattr(self, "commands_metavar", None)
        if commands and argument == commands and message.startswith("invalid choice: "):
            word = message.split("'")[1] if "'" in message else message
            self.fail(f"{APP}: '{word}' is not a {APP} command. See '{APP} --help'.")
        sys.stderr.write(f"Incorrect Usage.\n\n{self.format_help()}\n{text}\n")
        sys.stderr.flush()
        self.exit(EXIT_USAGE)

    def fail(self, text: str) -> None:
        """A command-line error that is the command's own (no help): message, exit 1."""
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
        self.exit(EXIT_USAGE)


def machine_subparsers(parser: argparse.ArgumentParser, metavar: str = "COMMAND"):
    """The sub-command table of `parser`, whose parsers are MachineParsers; an unknown
    command is reported by name (see MachineParser.error)."""
    parser.commands_metavar = metavar
    return parser.add_subparsers(dest="machine_command", metavar=metavar, title="Commands",
                                 prog=APP, parser_class=MachineParser)


def as_machine_parser(subparsers: argparse._SubParsersAction, name: str,
                      **kwargs) -> MachineParser:
    """`subparsers.add_parser(name)` built as a MachineParser, for a table (flock's own)
    whose parsers are plain ArgumentParsers."""
    saved = subparsers._parser_class  # noqa: SLF001 - argparse has no per-parser class
    subparsers._parser_class = MachineParser  # noqa: SLF001
    try:
        return subparsers.add_parser(name, **kwargs)
    finally:
        subparsers._parser_class = saved  # noqa: SLF001


class VersionAction(argparse.Action):
    """`-v/--version`: the version line, exit 0."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version"):
        super().__init__(option_strings=option_strings, dest=dest, default=default,
                         nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_text() + "\n")
        sys.stdout.flush()
        parser.exit(0)


def extra_arguments(extras: list[str]) -> str:
    """create's message (commands/create.go), with Go's %v of a string slice."""
    return f"Invalid command line. Found extra arguments [{' '.join(extras)}]"


def expected_one(_extras: list[str]) -> str:
    return "Error: Expected one machine name as an argument"   # commands/commands.go


def too_many(_extras: list[str]) -> str:
    return "Error: Too many arguments given"   # commands/commands.go


def driver_in(args: list[str]) -> str | None:
    """The value of -d/--driver anywhere in `args` (before `--`), as Docker Machine's
    flagHackLookup finds it, so `create -h -d generic` shows generic's flags too."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-d", "--driver", "-driver") and i + 1 < len(args):
            return args[i + 1]
        for prefix in ("--driver=", "-driver=", "-d="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None

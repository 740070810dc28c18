"""The `flock` entry point loads only the module of the command asked for (flock/cli.py):
its table of commands must match what the modules register, and a provisioner command
must not pull in the manager, the agent or gRPC."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from flock.cli import MODULES, REGISTRARS, build_parser, command_word


def test_the_table_names_every_command_each_module_registers():
    registered = {}
    for module in MODULES:
        parser = argparse.ArgumentParser()
        commands = parser.add_subparsers()
        importlib.import_module(module).register(commands)
        registered.update(dict.fromkeys(commands.choices, module))
    assert registered == REGISTRARS


@pytest.mark.parametrize(("argv", "word"), [
    (["machine", "ls"], "machine"),
    (["-l", "debug", "--log-format", "json", "nodes"], "nodes"),
    (["--log-level=debug", "--log-format=json", "join", "-h"], "join"),
    (["--help"], None), (["--version"], None), ([], None), (["-l"], None),
])
def test_the_command_word(argv, word):
    assert command_word(argv) == word


def test_a_known_command_gets_only_its_own_parser_and_anything_else_all():
    def choices(argv):
        parser = build_parser(argv)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(sub.choices)

    assert choices(["machine", "ls"]) == {"machine"}
    assert choices(["drain", "n1"]) == set(n for n, m in REGISTRARS.items()
                                           if m == "flock.cluster_cli")
    assert choices(["machnie"]) == set(REGISTRARS)  # a typo: argparse lists them all
    assert choices(["--help"]) == set(REGISTRARS)
    with pytest.raises(SystemExit) as exc:
        build_parser(["machnie"]).parse_args(["machnie"])
    assert exc.value.code == 2


def test_flock_machine_does_not_load_the_manager_the_agent_or_grpc():
    code = ("import sys; from flock.cli import main; main(['machine', '-s', sys.argv[1], "
            "'ls', '-q']); print(sorted(m for m in "
            "('flock.manager.app', 'flock.agent.server', 'grpc') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, "/nonexistent-flock-store"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"

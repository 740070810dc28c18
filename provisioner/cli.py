"""`flock machine`: Docker Machine's commands, flags and output, over Flock's drivers.

This module only declares the command line; each sub-command lives in
provisioner/commands/. A sub-command sets `machine_run(args, store) -> exit code`; a
MachineError it raises becomes its message on stderr and exit code 1, and argparse's own
errors (an unknown flag) exit 2, so shell scripts can tell what happened.
"""

from __future__ import annotations

import argparse
import sys

from provisioner.commands import err
from provisioner.commands.create import add_create_parser, cmd_create
from provisioner.commands.lifecycle import (
    cmd_kill,
    cmd_provision,
    cmd_regenerate_certs,
    cmd_restart,
    cmd_rm,
    cmd_start,
    cmd_stop,
    cmd_upgrade,
)
from provisioner.commands.listing import DEFAULT_TIMEOUT, cmd_active, cmd_ls
from provisioner.commands.query import cmd_inspect, cmd_ip, cmd_status, cmd_url, cmd_version
from provisioner.commands.shellenv import SHELLS, cmd_config, cmd_env
from provisioner.commands.transfer import cmd_export, cmd_import
from provisioner.errors import MachineError
from provisioner.store import ENV_STORAGE_PATH, Store


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `machine` to the `flock` command."""
    parser = subparsers.add_parser(
        "machine", help="create and manage machines (Docker Machine's commands)",
        description="Create machines at a provider (none, generic, libvirt, amazonec2), "
                    "provision Flock on them and point docker at them.")
    parser.add_argument("-s", "--storage-path", default=None, metavar="PATH",
                        help="the machine store (default ~/.flock/machine) "
                             f"[${ENV_STORAGE_PATH}]")
    parser.set_defaults(func=main)
    commands = parser.add_subparsers(dest="machine_command", metavar="COMMAND")
    commands.required = True

    add_create_parser(commands).set_defaults(machine_run=cmd_create)
    _ls(commands)
    p = commands.add_parser("inspect", help="the machine's record as JSON")
    p.add_argument("-f", "--format", default="", help="Go template, e.g. "
                   "'{{.Driver.IPAddress}}' or '{{json .HostOptions}}'")
    _name(p).set_defaults(machine_run=cmd_inspect)
    _names(commands.add_parser("ip", help="the IP of one or more machines"), cmd_ip)
    _name(commands.add_parser("url", help="the Docker URL of a machine")) \
        .set_defaults(machine_run=cmd_url)
    _name(commands.add_parser("status", help="the state of a machine")) \
        .set_defaults(machine_run=cmd_status)
    _names(commands.add_parser("start", help="start machines"), cmd_start)
    _names(commands.add_parser("stop", help="stop machines gracefully"), cmd_stop)
    _names(commands.add_parser("restart", help="restart machines"), cmd_restart)
    _names(commands.add_parser("kill", help="stop machines at once"), cmd_kill)
    p = commands.add_parser("rm", help="remove machines (at the provider and locally)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("-f", "--force", action="store_true", help="remove the local record even "
                   "when the provider call fails (implies -y)")
    p.set_defaults(machine_run=cmd_rm)
    _env(commands)
    p = commands.add_parser("config", help="the docker flags to reach a machine")
    p.add_argument("--swarm", action="store_true", help="the manager of a --swarm-master")
    _name(p).set_defaults(machine_run=cmd_config)
    p = commands.add_parser("active", help="the machine DOCKER_HOST points at")
    _timeout(p)
    p.set_defaults(machine_run=cmd_active)
    _names(commands.add_parser("upgrade", help="reinstall Flock and the engine, restart"),
           cmd_upgrade)
    p = commands.add_parser("regenerate-certs", help="new TLS certificates for machines")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    _names(p, cmd_regenerate_certs)
    _names(commands.add_parser("provision", help="run the whole provisioning again"),
           cmd_provision)
    p = commands.add_parser("version", help="Flock's version, or a machine's engine version")
    p.add_argument("name", nargs="?", metavar="NAME")
    _timeout(p)
    p.set_defaults(machine_run=cmd_version)
    _transfer(commands)
    _remote(commands)


def _name(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("name", nargs="?", metavar="NAME",
                   help='machine name (default: the machine called "default")')
    return p


def _names(p: argparse.ArgumentParser, run) -> None:
    p.add_argument("names", nargs="*", metavar="NAME",
                   help='machine names (default: the machine called "default")')
    p.set_defaults(machine_run=run)


def _timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"how long to wait for each machine (default {DEFAULT_TIMEOUT:g})")


def _ls(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ls", help="list machines")
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="driver=, state=, name= (regex), swarm= (master name), label=K=V; "
                        "repeatable")
    p.add_argument("-f", "--format", default="", help="Go template, e.g. "
                   "'table {{.Name}}\\t{{.URL}}'")
    _timeout(p)
    p.set_defaults(machine_run=cmd_ls)


def _env(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("env", help="the shell commands that point docker at a machine")
    p.add_argument("--shell", choices=SHELLS, default=None,
                   help="the shell to write for (default: from $SHELL)")
    p.add_argument("--swarm", action="store_true", help="the manager of a --swarm-master")
    p.add_argument("-u", "--unset", action="store_true", help="unset the variables instead")
    p.add_argument("--no-proxy", action="store_true",
                   help="add the machine's IP to NO_PROXY")
    _name(p).set_defaults(machine_run=cmd_env)


def _transfer(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="a machine as a tar.gz (stdout or -o FILE)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", default="", metavar="FILE", help="write to FILE (0600)")
    p.add_argument("--with-secrets", action="store_true",
                   help="include the provider's credentials (secrets.json)")
    p.set_defaults(machine_run=cmd_export)
    p = commands.add_parser("import", help="add a machine from an export")
    p.add_argument("file", metavar="FILE", help="the archive, or - for stdin")
    p.add_argument("name", nargs="?", metavar="NAME", help="a new name for the machine")
    p.set_defaults(machine_run=cmd_import)


def _remote(commands: argparse._SubParsersAction) -> None:
    """`ssh` and `scp`, from provisioner/commands/remote.py."""
    try:
        from provisioner.commands.remote import register as register_remote
    except ModuleNotFoundError as exc:
        if exc.name != "provisioner.commands.remote":
            raise
        return
    register_remote(commands)


def main(args: argparse.Namespace) -> int:
    run = getattr(args, "machine_run", None)
    if run is None:
        err("flock machine: no command given (see flock machine --help)")
        return 2
    store = Store(args.storage_path)
    try:
        return int(run(args, store) or 0)
    except MachineError as exc:
        err(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # `flock machine ls | head`: the reader left; nothing more to say.
        sys.stderr.close()
        return 0

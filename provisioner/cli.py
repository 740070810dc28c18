"""`flock machine`: Docker Machine's commands, flags and output, over Flock's drivers.

This module only declares the command line; each sub-command lives in
provisioner/commands/. A sub-command sets `machine_run(args, store) -> exit code`; a
MachineError it raises becomes its message on stderr and exit code 1. Usage errors (an
unknown flag or command, an argument too many) are Docker Machine's too, exit 1
(provisioner/cli_parser.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from flock.provisioner import settings
from flock.provisioner.cli_parser import (
    APP,
    VersionAction,
    as_machine_parser,
    expected_one,
    machine_subparsers,
    too_many,
)
from flock.provisioner.commands import err, out
from flock.provisioner.commands.create import add_create_parser, cmd_create
from flock.provisioner.commands.lifecycle import (
    cmd_kill,
    cmd_provision,
    cmd_regenerate_certs,
    cmd_restart,
    cmd_rm,
    cmd_start,
    cmd_stop,
    cmd_upgrade,
)
from flock.provisioner.commands.listing import DEFAULT_TIMEOUT, cmd_active, cmd_ls
from flock.provisioner.commands.mount import register as register_mount
from flock.provisioner.commands.query import cmd_inspect, cmd_ip, cmd_status, cmd_url, cmd_version
from flock.provisioner.commands.shellenv import SHELLS, cmd_config, cmd_env
from flock.provisioner.commands.transfer import cmd_export, cmd_import
from flock.provisioner.errors import MachineError
from flock.provisioner.store import ENV_STORAGE_PATH, Store


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `machine` to the `flock` command."""
    parser = as_machine_parser(
        subparsers, "machine", help="create and manage machines (Docker Machine's commands)",
        usage=f"{APP} [OPTIONS] COMMAND [arg...]",
        description="Create machines at a provider (none, generic, libvirt, amazonec2), "
                    "provision Flock on them and point docker at them.",
        epilog=f"Run '{APP} COMMAND --help' for more information on a command.")
    parser.add_argument("-s", "--storage-path", default=None, metavar="PATH",
                        help="the machine store (default ~/.docker/machine, Docker "
                             "Machine's; ~/.flock/machine when only that one exists) "
                             f"[${ENV_STORAGE_PATH}, $FLOCK_MACHINE_STORAGE_PATH]")
    _global_flags(parser)
    commands = machine_subparsers(parser)
    parser.set_defaults(func=main, machine_app=parser, machine_commands=commands.choices)

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
    p.add_argument("names", nargs="*", metavar="NAME")
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
    p.extra_error = too_many
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
    p.extra_error = expected_one
    _timeout(p)
    p.set_defaults(machine_run=cmd_version)
    _transfer(commands)
    _remote(commands)
    register_mount(commands)
    p = commands.add_parser("help", help="the help of flock machine, or of one command")
    p.add_argument("topic", nargs="?", metavar="COMMAND")
    p.extra_error = too_many
    p.set_defaults(machine_run=None)


def _name(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("name", nargs="?", metavar="NAME",
                   help='machine name (default: the machine called "default")')
    p.extra_error = expected_one
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
    p.extra_error = too_many
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
    p.extra_error = expected_one
    p.add_argument("-o", "--output", default="", metavar="FILE", help="write to FILE (0600)")
    p.add_argument("--with-secrets", action="store_true",
                   help="include the provider's credentials (secrets.json)")
    p.set_defaults(machine_run=cmd_export)
    p = commands.add_parser("import", help="add a machine from an export")
    p.add_argument("file", metavar="FILE", help="the archive, or - for stdin")
    p.add_argument("name", nargs="?", metavar="NAME", help="a new name for the machine")
    p.extra_error = too_many
    p.set_defaults(machine_run=cmd_import)


def _remote(commands: argparse._SubParsersAction) -> None:
    """`ssh` and `scp`, from provisioner/commands/remote.py."""
    try:
        from flock.provisioner.commands.remote import register as register_remote
    except ModuleNotFoundError as exc:
        if exc.name != "flock.provisioner.commands.remote":
            raise
        return
    register_remote(commands)


def _global_flags(parser: argparse.ArgumentParser) -> None:
    """Docker Machine's global flags (cmd/docker-machine/machine.go). Each also reads its
    MACHINE_* variable; a flag given wins (flag > MACHINE_* > FLOCK_*)."""
    parser.add_argument("-v", "--version", action=VersionAction)
    parser.add_argument("-D", "--debug", action="store_true",
                        help="debug output on stderr [$MACHINE_DEBUG]")
    for flag, what in TLS_FLAGS.items():
        parser.add_argument(f"--{flag}", default=None, metavar="FILE",
                            help=f"{what} [${_env_name(flag)}]")
    parser.add_argument("--native-ssh", action="store_true",
                        help="accepted: Flock's SSH is always native (paramiko) "
                             "[$MACHINE_NATIVE_SSH]")
    for flag in ("github-api-token", "bugsnag-api-token"):
        parser.add_argument(f"--{flag}", default=None, metavar="TOKEN",
                            help=f"accepted and unused: Flock asks neither GitHub nor "
                                 f"BugSnag [${_env_name(flag)}]")


TLS_FLAGS = {
    "tls-ca-cert": "the CA that signs machine certs (default: the store's certs/ca.pem)",
    "tls-ca-key": "the private key of --tls-ca-cert",
    "tls-client-cert": "the client cert docker uses (default: the store's certs/cert.pem)",
    "tls-client-key": "the private key of --tls-client-cert",
}


def _env_name(flag: str) -> str:
    return "MACHINE_" + flag.upper().replace("-", "_")


def _setup_debug(args: argparse.Namespace) -> None:
    """-D/--debug or MACHINE_DEBUG (read as Go's ParseBool, as machine.go does): debug
    records of provisioner.* (the version, the store, each SSH command) reach flock's log
    handler on stderr. --native-ssh/MACHINE_NATIVE_SSH is read the same way, so a bad value
    is refused; its value changes nothing (paramiko is native)."""
    settings.NATIVE_SSH.enabled(args.native_ssh)
    debug = settings.DEBUG.enabled(args.debug)
    logging.getLogger("flock.provisioner").setLevel(logging.DEBUG if debug else logging.NOTSET)


def _store(args: argparse.Namespace) -> Store:
    """The store, with the --tls-* flags over MACHINE_TLS_* over FLOCK_MACHINE_TLS_*."""
    tls = settings.tls_paths(args.tls_ca_cert, args.tls_ca_key, args.tls_client_cert,
                             args.tls_client_key)
    return Store(args.storage_path, tls=tls)


def show_help(args: argparse.Namespace) -> int:
    """`flock machine`, `flock machine help [COMMAND]`: the app's or a command's help on
    stdout, exit 0 (an unknown topic: an error, exit 1)."""
    topic = getattr(args, "topic", None)
    if not topic:
        out(args.machine_app.format_help().rstrip("\n"))
        return 0
    command = args.machine_commands.get(topic)
    if command is None:
        err(f"No help topic for '{topic}'")
        return 1
    out(command.format_help().rstrip("\n"))
    return 0


def main(args: argparse.Namespace) -> int:
    if args.machine_command in (None, "help"):
        return show_help(args)
    log = logging.getLogger("flock.provisioner.cli")
    try:
        _setup_debug(args)
        if log.isEnabledFor(logging.DEBUG):   # the version asks git: only when shown
            from flock.provisioner.cli_parser import version_text

            log.debug("%s", version_text())
        store = _store(args)
        log.debug("store %s, command %s", store.root, args.machine_command)
        return int(args.machine_run(args, store) or 0)
    except MachineError as exc:
        err(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # `flock machine ls | head`: the reader left; nothing more to say.
        sys.stderr.close()
        return 0

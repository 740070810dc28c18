"""`flock machine ssh` and `flock machine scp`: a shell or a command on a machine, and files
to, from and between machines, over the machine's own SSH key and known_hosts.

`ssh NAME -- COMMAND` streams the command's output and exits with its exit code (255 when
SSH itself fails, as ssh does), so scripts can use it like ssh. Without a command, on a
terminal, it opens a login shell with a pty. `scp` copies over SFTP; `-r` copies folders,
and a copy between two machines goes through a temporary folder here.
"""

from __future__ import annotations

import argparse
import posixpath
import sys
import tempfile
from pathlib import Path

from flock.provisioner.commands import DEFAULT_MACHINE, running_over_ssh
from flock.provisioner.drivers import Driver
from flock.provisioner.errors import MachineError
from flock.provisioner.host import NAME_RE, Host
from flock.provisioner.ssh import KNOWN_HOSTS, Connection, connect, interactive
from flock.provisioner.store import Store

CONNECT_TIMEOUT = 15.0   # the machine is Running: SSH should answer soon


class SSHFailed(MachineError):
    """SSH itself failed (not the remote command): 255, as ssh exits."""

    exit_code = 255


def register(commands: argparse._SubParsersAction) -> None:
    """Add `ssh` and `scp` to `flock machine`."""
    p = commands.add_parser(
        "ssh", help="log into a machine, or run a command there",
        description="Log into a machine with SSH, or run COMMAND there (put -- before it "
                    "when it has options). The exit code is the command's; 255 when SSH "
                    "itself fails.")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help=f'machine name (default: the machine called "{DEFAULT_MACHINE}")')
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the command to run (default: an interactive login shell)")
    p.set_defaults(machine_run=cmd_ssh)
    p = commands.add_parser(
        "scp", help="copy files to, from and between machines",
        description="Copy files over SFTP. A path on a machine is NAME:PATH (relative to the "
                    "SSH user's home); several sources need a folder as the target.")
    p.add_argument("-r", "--recursive", action="store_true", help="copy folders recursively")
    p.add_argument("paths", nargs="+", metavar="[NAME:]PATH", help="sources, then the target")
    p.set_defaults(machine_run=cmd_scp)


# --- shared ------------------------------------------------------------------------------------
def _open(store: Store, name: str) -> tuple[Host, Driver, Connection]:
    host, driver = running_over_ssh(store, name, ": log into that host by your own means")
    try:
        conn = connect(driver.ssh_details(), store.machine_dir(name) / KNOWN_HOSTS,
                       timeout=min(CONNECT_TIMEOUT, host.options.ssh_timeout), step="SSH")
    except MachineError as exc:
        raise SSHFailed(f'machine "{name}": {exc}') from None
    return host, driver, conn


# --- ssh ---------------------------------------------------------------------------------------
def cmd_ssh(args: argparse.Namespace, store: Store) -> int:
    command = list(args.command or [])
    if command[:1] == ["--"]:
        command = command[1:]
    name = args.name or DEFAULT_MACHINE
    if not args.name and not store.exists(DEFAULT_MACHINE):
        raise MachineError(f'Error: No machine name specified and no "{DEFAULT_MACHINE}" '
                           "machine exists")
    _, _, conn = _open(store, name)
    with conn:
        text = " ".join(command)
        terminal = sys.stdin.isatty() and sys.stdout.isatty()
        if terminal:
            return interactive(conn, text or None)
        if not text:
            text = 'exec "${SHELL:-/bin/sh}" -s'   # a shell reading the piped script
        out, err = sys.stdout.buffer, sys.stderr.buffer
        result = conn.run(text, stdout=lambda b: (out.write(b), out.flush()),
                          stderr=lambda b: (err.write(b), err.flush()),
                          stdin=sys.stdin.buffer, keep=0)
        return result.exit_code


# --- scp ---------------------------------------------------------------------------------------
def split(spec: str) -> tuple[str, str]:
    """('', path) for a local path, (machine, path) for NAME:PATH. A colon after a slash
    (./a:b, /x:y) is part of a local path, as for scp."""
    head, sep, rest = spec.partition(":")
    if sep and head and "/" not in head and NAME_RE.match(head):
        return head, _remote_path(rest)
    return "", spec


def _remote_path(path: str) -> str:
    if path in ("", "~", "~/"):
        return "."
    return path[2:] if path.startswith("~/") else path


def cmd_scp(args: argparse.Namespace, store: Store) -> int:
    if len(args.paths) < 2:
        raise MachineError("scp needs a source and a target: flock machine scp [-r] "
                           "[NAME:]SRC... [NAME:]DST")
    *sources, target = [split(p) for p in args.paths]
    if not target[0] and not any(m for m, _ in sources):
        raise MachineError("none of the paths is on a machine (NAME:PATH): use cp for local "
                           "copies")
    conns: dict[str, Connection] = {}
    try:
        def conn(name: str) -> Connection:
            if name not in conns:
                conns[name] = _open(store, name)[2]
            return conns[name]

        many = len(sources) > 1
        if target[0]:
            into_dir = conn(target[0]).is_dir(target[1])
        else:
            into_dir = Path(target[1]).is_dir()
        if many and not into_dir:
            where = f"{target[0]}:{target[1]}" if target[0] else target[1]
            raise MachineError(f"{where}: not a directory (several sources need a folder "
                               "as the target)")
        for machine, path in sources:
            _copy(conn, machine, path, target, into_dir, args.recursive)
    finally:
        for c in conns.values():
            c.close()
    return 0


def _copy(conn, machine: str, path: str, target: tuple[str, str], into_dir: bool,
          recursive: bool) -> None:
    dest_machine, dest = target
    base = posixpath.basename(path.rstrip("/")) or path
    try:
        if not machine:                       # here -> machine
            source = Path(path)
            if not source.exists():
                raise MachineError(f"{path}: no such file or directory")
            final = posixpath.join(dest, source.name) if into_dir else dest
            conn(dest_machine).put(source, final, recursive=recursive)
        elif not dest_machine:                # machine -> here
            final = Path(dest) / base if into_dir else Path(dest)
            conn(machine).get(path, final, recursive=recursive)
        else:                                 # machine -> machine, through here
            with tempfile.TemporaryDirectory(prefix="flock-scp-") as tmp:
                local = Path(tmp) / base
                conn(machine).get(path, local, recursive=recursive)
                final = posixpath.join(dest, base) if into_dir else dest
                conn(dest_machine).put(local, final, recursive=recursive)
    except OSError as exc:
        where = f"{dest_machine}:{dest}" if dest_machine else dest
        source = f"{machine}:{path}" if machine else path
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MachineError(f"copying {source} to {where} failed: {reason}") from None


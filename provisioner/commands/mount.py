"""`flock machine mount [-u] [NAME:]PATH [MOUNTPOINT]`: a machine's folder here, with sshfs.

As Docker Machine's commands/mount.go: the source is NAME:PATH (USER@NAME:PATH picks
the SSH user; no NAME: is the machine called "default"), the mount point defaults to PATH,
and `-u` unmounts with fusermount. sshfs is given the machine's own key, port and user.
Unlike Docker Machine, which turns host-key checking off, the machine's known_hosts
(written by provisioning) is used, and BatchMode keeps sshfs from waiting on a password
prompt in a script.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import subprocess

from flock.provisioner.commands import DEFAULT_MACHINE, running_over_ssh
from flock.provisioner.errors import MachineError
from flock.provisioner.ssh import KNOWN_HOSTS
from flock.provisioner.store import Store

WRONG_NUMBER = "Improper number of arguments"   # commands/scp.go errWrongNumberArguments


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "mount", help="mount or unmount a folder of a machine here (sshfs)",
        description="Mount PATH of machine NAME at MOUNTPOINT (default: PATH) with sshfs, "
                    "or unmount it with -u (fusermount).")
    p.add_argument("-u", "--unmount", action="store_true", help="unmount instead of mount")
    p.add_argument("source", nargs="?", metavar="[USER@]NAME:PATH")
    p.add_argument("mountpoint", nargs="?", metavar="MOUNTPOINT")
    p.extra_error = lambda _extras: WRONG_NUMBER
    p.set_defaults(machine_run=cmd_mount)


def split_source(spec: str) -> tuple[str, str, str]:
    """(user, machine, path) of `[USER@]NAME:PATH`, or ('', "default", spec) without a
    colon, as getInfoForSshfsArg reads it."""
    head, sep, path = spec.partition(":")
    if not sep:
        return "", DEFAULT_MACHINE, spec
    user, at, name = head.partition("@")
    return (user, name, path) if at else ("", head, path)


def location(user: str, host: str, path: str) -> str:
    """USER@HOST:PATH for sshfs, an IPv6 host in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{user}@{host}:{path}"


def sshfs_argv(sshfs: str, where: str, mountpoint: str, port: int, key: str,
               known_hosts: str) -> list[str]:
    return [sshfs, "-o", f"Port={port}", "-o", f"IdentityFile={key}",
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes",
            where, mountpoint]


def _tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if not path:
        raise MachineError(f"You must have a copy of the {name} binary locally to use {what}")
    return path


def cmd_mount(args: argparse.Namespace, store: Store) -> int:
    if not args.source:
        raise MachineError(WRONG_NUMBER)
    user, name, path = split_source(args.source)
    mountpoint = args.mountpoint or path
    if args.unmount:
        fusermount = _tool("fusermount", "the unmount option")
        return 0 if subprocess.run([fusermount, "-u", mountpoint]).returncode == 0 else 1
    sshfs = _tool("sshfs", "the mount feature")
    _, driver = running_over_ssh(store, name, " to mount over")
    ssh = driver.ssh_details()
    argv = sshfs_argv(sshfs, location(user or ssh.user, ssh.host, path), mountpoint,
                      ssh.port, ssh.key_path, str(store.machine_dir(name) / KNOWN_HOSTS))
    return 0 if subprocess.run(argv).returncode == 0 else 1

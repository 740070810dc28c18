"""Changing machines: `start`, `stop`, `restart`, `kill`, `rm`, `upgrade`, `provision`,
`regenerate-certs`, with Docker Machine's messages and confirmations.

Beyond Docker Machine: after a start or restart the machine's IP is checked against its
server cert, and a machine that came back with a new IP gets a new cert at once (and
says so) instead of failing later with an x509 error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from types import ModuleType

from flock.provisioner import machine_certs
from flock.provisioner.commands import (
    describe,
    err,
    load_driver,
    out,
    run_each,
    target_names,
)
from flock.provisioner.drivers import Driver
from flock.provisioner.errors import HostNotRunning, InvalidName, MachineError, MachineNotFound
from flock.provisioner.host import Host, check_name
from flock.provisioner.states import State
from flock.provisioner.store import ForeignDriver, Store

IP_POLL = 1.0


def provision_module() -> ModuleType:
    try:
        from flock.provisioner import provision
    except ImportError as exc:
        raise MachineError("provisioning over SSH is not available in this installation "
                           f"({exc})") from None
    return provision


def confirm(question: str) -> bool | None:
    """Docker Machine's `QUESTION (y/n): `; an answer starting with y means yes, None is no
    answer at all (stdin closed), which each command treats as Docker Machine does."""
    sys.stdout.write(f"{question} (y/n): ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stdout.write("\n")
        return None
    return answer.strip().lower().startswith("y")


def _say(names: list[str], name: str) -> Callable[[str], None]:
    return (lambda text: out(f"({name}) {text}")) if len(names) > 1 else out


def _loaded(store: Store, name: str) -> tuple[Host, Driver]:
    host = store.load(name)
    return host, load_driver(store, host)


def _running(host: Host, driver: Driver) -> None:
    if driver.state() is not State.RUNNING:
        raise HostNotRunning(host.name)


def _ssh_only(host: Host, driver: Driver, what: str) -> None:
    if not driver.has_ssh:
        raise MachineError(f'machine "{host.name}" uses the {host.driver_name} driver: Flock '
                           f"cannot reach it over SSH to {what} it; do that at the engine "
                           "itself")


def current_ip(host: Host, driver: Driver) -> str:
    """The IP after a start: a booting machine may need a while to get one."""
    deadline = time.monotonic() + max(host.options.ssh_timeout, 1.0)
    while True:
        try:
            return driver.ip()
        except MachineError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(IP_POLL)


def follow_ip(store: Store, host: Host, driver: Driver, say: Callable[[str], None]) -> None:
    """Give the machine a new server cert when its IP is no longer in the current one."""
    ip = current_ip(host, driver)
    if machine_certs.server_cert_covers(store, host, ip):
        return
    before = ", ".join(host.options.auth.server_ips) or "no IP"
    say(f'Machine "{host.name}" now has the IP {ip}, which its server certificate does not '
        f"name (it was made for {before}): regenerating the certificates")
    if driver.has_ssh:
        provision_module().install_certs(store, host, driver, say)
    else:
        machine_certs.write_server_cert(store, host, [ip])
    store.save(host)


def cmd_start(args: argparse.Namespace, store: Store) -> int:
    names = target_names(store, args.names)

    def one(name: str) -> None:
        host, driver = _loaded(store, name)
        out(f'Starting "{name}"...')
        if driver.state() is State.RUNNING:
            raise MachineError(f'Machine "{name}" is already running.')
        driver.start()
        out(f'Machine "{name}" was started.')
        follow_ip(store, host, driver, _say(names, name))

    code = run_each(names, one)
    if code == 0:
        out("Started machines may have new IP addresses. You may need to re-run the "
            "`flock machine env` command.")
    return code


def cmd_restart(args: argparse.Namespace, store: Store) -> int:
    names = target_names(store, args.names)

    def one(name: str) -> None:
        host, driver = _loaded(store, name)
        out(f'Restarting "{name}"...')
        if driver.state() is State.RUNNING:
            driver.restart()
        else:
            driver.start()
        follow_ip(store, host, driver, _say(names, name))

    code = run_each(names, one)
    if code == 0:
        out("Restarted machines may have new IP addresses. You may need to re-run the "
            "`flock machine env` command.")
    return code


def _stopper(store: Store, verb: str, past: str, act: Callable[[Driver], None]):
    def one(name: str) -> None:
        _, driver = _loaded(store, name)
        out(f'{verb} "{name}"...')
        if driver.state() is State.STOPPED:
            raise MachineError(f'Machine "{name}" is already stopped.')
        act(driver)
        out(f'Machine "{name}" was {past}.')
    return one


def cmd_stop(args: argparse.Namespace, store: Store) -> int:
    return run_each(target_names(store, args.names),
                    _stopper(store, "Stopping", "stopped", lambda d: d.stop()))


def cmd_kill(args: argparse.Namespace, store: Store) -> int:
    return run_each(target_names(store, args.names),
                    _stopper(store, "Killing", "killed", lambda d: d.kill()))


def cmd_rm(args: argparse.Namespace, store: Store) -> int:
    """Remove at the provider, then the local record; with -f the record goes even when
    the provider call failed (the failure is printed, so leftovers can be found). As in
    Docker Machine (commands/rm.go), no answer to the question (stdin closed) removes
    nothing and is not an error."""
    names = list(args.names)
    if not names:
        raise MachineError("Error: Expected to get one or more machine names as arguments")
    out(f"About to remove {', '.join(names)}")
    out("WARNING: This action will delete both local reference and remote instance.")
    if not (args.y or args.force) and not confirm("Are you sure?"):
        err("Nothing removed.")
        return 0
    failed = False
    for name in names:
        try:
            check_name(name)   # a name no machine can have does not exist
            host, driver = _loaded(store, name)
            driver.remove()
        except Exception as exc:  # noqa: BLE001 - reported; -f removes the record anyway
            message = f'Error removing host "{name}": {describe(exc)}'
            if isinstance(exc, ForeignDriver):   # not Flock's to remove, even with -f
                err(message)
                failed = True
                continue
            if not args.force:
                hint = ("" if isinstance(exc, MachineNotFound) else
                        f'\nRun "flock machine rm -f {name}" to remove the local record '
                        "anyway (and check the provider for what is left)")
                err(message + hint)
                failed = True
                continue
            err(message)
            if isinstance(exc, InvalidName):
                continue
        if store.machine_dir(name).exists():
            store.remove(name)
            out(f"Successfully removed {name}")
        else:
            err(f'Can\'t remove "{name}": {name} does not exist.')
    return 1 if failed else 0


def cmd_upgrade(args: argparse.Namespace, store: Store) -> int:
    names = target_names(store, args.names)

    def one(name: str) -> None:
        host, driver = _loaded(store, name)
        _ssh_only(host, driver, "upgrade")
        _running(host, driver)
        say = _say(names, name)
        say("Upgrading Flock and the engine...")
        provision_module().upgrade_host(store, host, driver, say)
        store.save(host)
        say(f'Machine "{name}" was upgraded.')

    return run_each(names, one)


def cmd_provision(args: argparse.Namespace, store: Store) -> int:
    names = target_names(store, args.names)

    def one(name: str) -> None:
        host, driver = _loaded(store, name)
        _ssh_only(host, driver, "provision")
        _running(host, driver)
        say = _say(names, name)
        try:
            provision_module().provision_host(store, host, driver, say)
        except Exception as exc:
            host.error = describe(exc)
            store.save(host)
            raise
        host.error = ""
        store.save(host)
        say(f'Machine "{name}" was provisioned.')

    return run_each(names, one)


def cmd_regenerate_certs(args: argparse.Namespace, store: Store) -> int:
    names = target_names(store, args.names)
    if not args.force:
        answer = confirm("Regenerate TLS machine certs?  Warning: this is irreversible.")
        if answer is None:   # Docker Machine returns confirmInput's error: exit 1
            raise MachineError("no answer (stdin is closed): pass -f to regenerate without "
                               "asking")
        if not answer:
            err("Nothing regenerated.")
            return 0

    def one(name: str) -> None:
        host, driver = _loaded(store, name)
        say = _say(names, name)
        # none: Docker Machine fails too (it finds no SSH to provision the certs over)
        _ssh_only(host, driver, "install new certificates on")
        say("Regenerating TLS certificates")
        _running(host, driver)
        provision_module().install_certs(store, host, driver, say)
        store.save(host)

    return run_each(names, one)

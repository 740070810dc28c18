"""Questions about one machine: `inspect`, `ip`, `url`, `status`, `version`.

`inspect` prints the record in Docker Machine's shape (Driver, DriverName, HostOptions
with EngineOptions/SwarmOptions/AuthOptions, Name) so that templates written for
`docker-machine inspect --format` keep working, e.g. `{{.Driver.IPAddress}}`; a field the
record lacks prints `<no value>`, as Go's text/template does.
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

from flock.provisioner import template
from flock.provisioner.commands import (
    docker_url,
    load_driver,
    machine_ip,
    out,
    run_each,
    target_names,
)
from flock.provisioner.commands.engine import engine_version
from flock.provisioner.drivers import Driver
from flock.provisioner.errors import HostNotRunning, MachineError
from flock.provisioner.host import Host
from flock.provisioner.machine_certs import machine_tls_files
from flock.provisioner.machine_config import to_config
from flock.provisioner.states import State
from flock.provisioner.store import Store, own_driver


def inspect_document(store: Store, host: Host, driver: Driver | None) -> dict[str, Any]:
    """The machine as `docker-machine inspect` shows one: its config.json (Docker Machine's
    ConfigVersion 3 layout, Flock's fields beside), with the IP and SSH details the driver
    gives now where it can answer."""
    if not own_driver(host.driver_name) and host.raw:
        return copy.deepcopy(host.raw)   # another tool's machine: shown exactly as it is
    doc = to_config(host, store.root)
    drv = doc["Driver"]
    if driver is not None:
        try:
            drv["IPAddress"] = driver.ip()
        except Exception:  # noqa: BLE001 - a stopped machine has no IP: keep what is stored
            pass
        if driver.has_ssh:
            try:
                ssh = driver.ssh_details()
                drv.update(SSHUser=ssh.user, SSHPort=ssh.port, SSHKeyPath=ssh.key_path)
            except Exception:  # noqa: BLE001
                pass
    return doc


def cmd_inspect(args: argparse.Namespace, store: Store) -> int:
    [name] = target_names(store, [args.name] if args.name else [])
    tmpl = None
    if args.format:
        try:
            tmpl = template.parse(args.format.replace("\\t", "\t").replace("\\n", "\n"))
        except template.TemplateError as exc:
            # commands/inspect.go's words
            raise MachineError(f"Template parsing error: {exc}") from None
    host = store.load(name)
    try:
        driver: Driver | None = load_driver(store, host)
    except MachineError:
        driver = None   # the record is still worth showing (e.g. a driver not installed)
    doc = inspect_document(store, host, driver)
    if tmpl is None:
        out(json.dumps(doc, indent=4))
        return 0
    try:
        out(tmpl.render(doc, missing_keys=True))   # Go executes it on a map of the JSON
    except template.TemplateError as exc:
        raise MachineError(f"--format: {exc}") from None
    return 0


def cmd_ip(args: argparse.Namespace, store: Store) -> int:
    def one(name: str) -> None:
        host = store.load(name)
        out(machine_ip(host, load_driver(store, host)))

    return run_each(target_names(store, args.names), one, parallel=False)


def cmd_url(args: argparse.Namespace, store: Store) -> int:
    [name] = target_names(store, [args.name] if args.name else [])
    host = store.load(name)
    driver = load_driver(store, host)
    if driver.state() is not State.RUNNING:
        raise HostNotRunning(name)
    out(docker_url(host, driver))
    return 0


def cmd_status(args: argparse.Namespace, store: Store) -> int:
    [name] = target_names(store, [args.name] if args.name else [])
    host = store.load(name)
    out(str(load_driver(store, host).state()))
    return 0


def cmd_version(args: argparse.Namespace, store: Store) -> int:
    """Without a name: `flock machine version X, build REV`. With one: the machine's
    engine version (commands/version.go)."""
    if not args.name:
        from flock.provisioner.cli_parser import version_text

        out(version_text())
        return 0
    host = store.load(args.name)
    driver = load_driver(store, host)
    if driver.state() is not State.RUNNING:
        raise HostNotRunning(args.name)
    url = docker_url(host, driver)
    out(engine_version(url, *machine_tls_files(store, host), timeout=args.timeout))
    return 0

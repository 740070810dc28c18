"""Questions about one machine: `inspect`, `ip`, `url`, `status`, `version`.

`inspect` prints the record in Docker Machine's shape (Driver, DriverName, HostOptions
with EngineOptions/SwarmOptions/AuthOptions, Name) so that templates written for
`docker-machine inspect --format` keep working, e.g. `{{.Driver.IPAddress}}`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from provisioner import template
from provisioner.commands import (
    docker_url,
    load_driver,
    machine_ip,
    out,
    run_each,
    target_names,
)
from provisioner.commands.engine import engine_version
from provisioner.drivers import Driver
from provisioner.errors import HostNotRunning, MachineError
from provisioner.host import Host
from provisioner.machine_certs import machine_tls_files
from provisioner.states import State
from provisioner.store import Store


def inspect_document(store: Store, host: Host, driver: Driver | None) -> dict[str, Any]:
    """The machine as `docker-machine inspect` shows one. The driver is asked for its IP
    (and SSH details); the stored record answers when it cannot."""
    folder = store.machine_dir(host.name)
    drv: dict[str, Any] = {"MachineName": host.name, "StorePath": str(store.root),
                           **host.driver}
    if driver is not None:
        try:
            drv["IPAddress"] = driver.ip()
        except Exception:  # noqa: BLE001 - a stopped machine has no IP: keep what is stored
            drv.setdefault("IPAddress", "")
        if driver.has_ssh:
            try:
                ssh = driver.ssh_details()
                drv.update(SSHUser=ssh.user, SSHPort=ssh.port, SSHKeyPath=ssh.key_path)
            except Exception:  # noqa: BLE001
                pass
    drv.setdefault("IPAddress", "")
    opts = host.options
    engine, swarm, auth = opts.engine, opts.swarm, opts.auth
    ca, cert, key = machine_tls_files(store, host)
    return {
        "ConfigVersion": host.version,
        "Driver": drv,
        "DriverName": host.driver_name,
        "HostOptions": {
            "EngineOptions": {
                "Runtime": engine.runtime, "Port": engine.port,
                "Labels": [f"{k}={v}" for k, v in engine.labels.items()],
                "ArbitraryFlags": list(engine.opts), "Env": list(engine.env),
                "TlsVerify": True,
            },
            "SwarmOptions": {
                "IsSwarm": swarm.agent or swarm.master, "Master": swarm.master,
                "Discovery": swarm.discovery, "Strategy": swarm.strategy,
                "ArbitraryFlags": list(swarm.opts), "Address": swarm.addr,
                "AgentPort": swarm.agent_port, "ManagerPort": swarm.manager_port,
                "Host": f"tcp://0.0.0.0:{swarm.manager_port}",
            },
            "AuthOptions": {
                "CertDir": str(store.certs_dir),
                "CaCertPath": str(ca),
                "CaPrivateKeyPath": str(store.certs_dir / "ca-key.pem"),
                "ClientCertPath": str(cert),
                "ClientKeyPath": str(key),
                "ServerCertPath": str(folder / auth.server_cert),
                "ServerKeyPath": str(folder / auth.server_key),
                "ServerCertSANs": list(auth.extra_sans),
                "ServerIPs": list(auth.server_ips),
                "StorePath": str(folder),
            },
            "InstallDir": opts.install_dir,
            "SSHTimeout": opts.ssh_timeout,
            "ProvisionTimeout": opts.provision_timeout,
        },
        "Name": host.name,
        "Error": host.error,
        "Created": host.created,
    }


def cmd_inspect(args: argparse.Namespace, store: Store) -> int:
    [name] = target_names(store, [args.name] if args.name else [])
    tmpl = None
    if args.format:
        try:
            tmpl = template.parse(args.format.replace("\\t", "\t").replace("\\n", "\n"))
        except template.TemplateError as exc:
            raise MachineError(f"--format: {exc}") from None
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
        out(tmpl.render(doc))
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
    """Without a name: Flock's own version. With one: the machine's engine version."""
    if not args.name:
        from flock.version import version_line

        out(version_line())
        return 0
    host = store.load(args.name)
    driver = load_driver(store, host)
    if driver.state() is not State.RUNNING:
        raise HostNotRunning(args.name)
    url = docker_url(host, driver)
    out(engine_version(url, *machine_tls_files(store, host), timeout=args.timeout))
    return 0

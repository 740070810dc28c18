"""What every `flock machine` sub-command shares: loading a machine and its driver, its
URLs, the default machine name, and running one action over several machines.

Commands print results on stdout and errors on stderr, and return the exit code: 0 when
everything worked, 1 when anything failed (after doing what could be done, as Docker
Machine does for `stop a b c`).
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Callable

from flock.provisioner.drivers import Driver, driver_class
from flock.provisioner.errors import HostNotRunning, MachineError
from flock.provisioner.host import Host
from flock.provisioner.states import State
from flock.provisioner.store import ForeignDriver, Store, own_driver

DEFAULT_MACHINE = "default"


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def describe(exc: BaseException) -> str:
    """A failure in one sentence: our own errors as they are, others with their type."""
    if isinstance(exc, MachineError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def load_driver(store: Store, host: Host) -> Driver:
    if not own_driver(host.driver_name):
        raise ForeignDriver(host.name, host.driver_name)
    cls = driver_class(host.driver_name)
    return cls.load(host.name, store.machine_dir(host.name), host.driver,
                    store.load_secrets(host.name))


def running_over_ssh(store: Store, name: str, without_ssh: str) -> tuple[Host, Driver]:
    """The machine and its driver, for a command that needs SSH to a running machine
    (ssh, scp, mount); `without_ssh` ends the refusal for a driver without SSH."""
    host = store.load(name)
    driver = load_driver(store, host)
    if not driver.has_ssh:
        raise MachineError(f'machine "{name}" uses the {host.driver_name} driver, which has '
                           f"no SSH{without_ssh}")
    if driver.state() is not State.RUNNING:
        raise HostNotRunning(name)
    return host, driver


def target_names(store: Store, names: list[str] | None) -> list[str]:
    """The machines a command acts on: those named, else Docker Machine's "default"."""
    if names:
        return names
    if store.exists(DEFAULT_MACHINE):
        return [DEFAULT_MACHINE]
    raise MachineError(f'Error: No machine name(s) specified and no "{DEFAULT_MACHINE}" '
                       "machine exists")


def host_port(host: str, port: int) -> str:
    """HOST:PORT, with brackets around an IPv6 address."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def machine_ip(host: Host, driver: Driver) -> str:
    """The machine's IP; HostNotRunning when it has none because it is not running."""
    try:
        return driver.ip()
    except MachineError:
        if driver.state() is not State.RUNNING:
            raise HostNotRunning(host.name) from None
        raise


def docker_url(host: Host, driver: Driver) -> str:
    """The machine's own Docker endpoint (`tcp://IP:2376`). A machine with the exec
    runtime has none: the error says to use its cluster's manager instead."""
    if host.options.engine.runtime == "exec":
        hint = (f'use its manager: flock machine env --swarm {host.name}'
                if host.options.swarm.master else
                "point docker at its cluster's manager instead: flock machine env --swarm "
                "MASTER (the machine made with --swarm-master)")
        raise MachineError(f'machine "{host.name}" runs the exec runtime: it has no Docker '
                           f"endpoint of its own; {hint}")
    url = driver.url()
    if url:
        return url
    return f"tcp://{host_port(machine_ip(host, driver), host.options.engine.port)}"


def swarm_url(host: Host, driver: Driver) -> str:
    """The Docker endpoint of the manager a --swarm-master runs (`tcp://IP:3376`)."""
    if not host.options.swarm.master:
        raise MachineError(f'"{host.name}" is not a swarm master: --swarm needs the machine '
                           "made with --swarm-master")
    ip = machine_ip(host, driver)
    return f"tcp://{host_port(ip, host.options.swarm.manager_port)}"


def listed_url(host: Host, driver: Driver) -> str:
    """The URL `ls` shows and `active` compares: the engine's, or for an exec-runtime
    master its manager's, or '' when the machine has no Docker endpoint."""
    if host.options.engine.runtime == "exec":
        return swarm_url(host, driver) if host.options.swarm.master else ""
    return docker_url(host, driver)


def run_each(names: list[str], action: Callable[[str], None], parallel: bool = True) -> int:
    """Run `action(name)` for every machine (in threads when `parallel`), print each
    failure as `Error: ...` on stderr; 1 if any failed."""
    failures: dict[str, str] = {}

    def one(name: str) -> None:
        try:
            action(name)
        except Exception as exc:  # noqa: BLE001 - one machine's failure must not stop the rest
            failures[name] = describe(exc)

    if parallel and len(names) > 1:
        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for name in names:
            one(name)
    for name in names:
        if name in failures:
            err(failures[name] if len(names) == 1 else f'Error with machine "{name}": '
                f"{failures[name]}")
    return 1 if failures else 0

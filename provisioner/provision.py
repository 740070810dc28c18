"""Provisioning a machine over SSH, the same for every driver: wait for SSH, detect the
OS, install Python (and the Docker Engine for the docker runtime), install Flock offline
from a wheelhouse built here, write its certs and configuration, start the engine, the
agent and the manager, and wait until each answers.

Every step is reported through `progress` and every failure is a MachineError naming its
step. Re-running is safe: what runs is stopped, Flock is reinstalled, everything starts
again (containers survive: the engine runs with --live-restore).
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable, Iterator

from flock.provisioner import bundle, machine_certs
from flock.provisioner.drivers.base import Driver
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host
from flock.provisioner.provisioning import checks, services
from flock.provisioner.provisioning.layout import Layout
from flock.provisioner.provisioning.target import FILES_STEP, INSTALL_STEP, Target
from flock.provisioner.ssh import KNOWN_HOSTS, Connection, Result, connect
from flock.provisioner.store import Store

Progress = Callable[[str], None]
STOP_STEP = "Stopping Flock's services"
CRASHES = 3   # a service that exited this often while we wait for it will not answer
START_STEP = {services.ENGINE: "Starting the engine", services.AGENT: "Starting the agent",
              services.MANAGER: "Starting the manager"}


def provision_host(store: Store, host: Host, driver: Driver, progress: Progress) -> None:
    """Everything, from a bare host to answering services (or a MachineError naming the
    step). Sets host.options.auth.server_ips; the caller saves the host."""
    services.check_options(host)
    layout = Layout(host.options.install_dir)
    ip = _ip(driver)
    with _session(store, host, driver, progress) as target:
        info = target.probe()
        progress(f"Provisioning {info.pretty or info.id} with "
                 f"{'systemd' if target.systemd else 'supervised processes (no systemd)'}")
        progress("Installing Python")
        python = target.ensure_python()
        dockerd = _dockerd(host, target, progress)
        wheels = bundle.wheelhouse(store.cache_dir, python, progress)
        _stop(target, layout, progress)
        progress(INSTALL_STEP)
        folder = target.upload_wheels(wheels, layout, progress)
        target.install_flock(wheels, layout, python, folder)
        progress(FILES_STEP)
        machine_certs.write_server_cert(store, host, [ip])
        _configure(store, host, target, layout, ip, dockerd)
        _start(store, host, target, layout, ip, progress, services.names_for(host))


def upgrade_host(store: Store, host: Host, driver: Driver, progress: Progress) -> None:
    """A new Flock (this checkout's, or FLOCK_WHEELHOUSE's) on the machine, and its agent
    and manager restarted. The engine keeps running (started if it was not), and so do
    the containers."""
    services.check_options(host)
    layout = Layout(host.options.install_dir)
    ip = _ip(driver)
    names = services.names_for(host)
    with _session(store, host, driver, progress) as target:
        target.probe()
        progress("Installing Python")
        python = target.ensure_python()
        dockerd = _dockerd(host, target, progress)
        wheels = bundle.wheelhouse(store.cache_dir, python, progress)
        progress(INSTALL_STEP)
        folder = target.upload_wheels(wheels, layout, progress)
        flock_services = [n for n in names if n != services.ENGINE]
        if flock_services:
            progress(STOP_STEP)
            _services(target, layout, "stop", flock_services, STOP_STEP, check=False)
        target.install_flock(wheels, layout, python, folder)
        progress(FILES_STEP)
        if not machine_certs.server_cert_covers(store, host, ip):
            progress(f"The machine's IP is now {ip}: making a new server certificate")
            machine_certs.write_server_cert(store, host, [ip])
        _configure(store, host, target, layout, ip, dockerd)
        _start(store, host, target, layout, ip, progress, names)


def install_certs(store: Store, host: Host, driver: Driver, progress: Progress) -> None:
    """A new server cert for the machine's current IP, installed there, and the services
    restarted with it (and with the new IP in their configuration)."""
    services.check_options(host)
    layout = Layout(host.options.install_dir)
    ip = _ip(driver)
    progress(f"Making a new server certificate for {ip}")
    machine_certs.write_server_cert(store, host, [ip])
    with _session(store, host, driver, progress) as target:
        target.probe()
        dockerd = _dockerd(host, target, progress, install=False)
        progress(FILES_STEP)
        _configure(store, host, target, layout, ip, dockerd)
        names = services.names_for(host)
        progress(STOP_STEP)
        _services(target, layout, "stop", names, STOP_STEP)
        _start(store, host, target, layout, ip, progress, names)


def run_services(host: Host, driver: Driver, action: str, timeout: float = 30.0,
                 names: list[str] | None = None) -> Result:
    """`flock-services ACTION` on a provisioned machine (start, stop, restart, kill,
    status, disable): what the generic driver's start/stop/kill/remove do."""
    layout = Layout(host.options.install_dir)
    with _connection(driver, timeout) as conn:
        target = Target(conn, time.monotonic() + max(timeout, 90.0))
        target.probe_user()
        return _services(target, layout, action, names or [], f"{action.capitalize()} "
                         "Flock's services", check=False, missing_ok=True)


# --- the pieces ---------------------------------------------------------------------------------
def _ip(driver: Driver) -> str:
    try:
        return driver.ip()
    except MachineError as exc:
        raise MachineError(str(exc), step=exc.step or "Getting the machine's IP") from None


@contextlib.contextmanager
def _connection(driver: Driver, timeout: float,
                progress: Progress | None = None) -> Iterator[Connection]:
    details = driver.ssh_details()
    conn = connect(details, driver.machine_dir / KNOWN_HOSTS, timeout=timeout,
                   progress=progress)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _session(store: Store, host: Host, driver: Driver, progress: Progress) -> Iterator[Target]:
    with _connection(driver, host.options.ssh_timeout, progress) as conn:
        yield Target(conn, time.monotonic() + host.options.provision_timeout)


def _dockerd(host: Host, target: Target, progress: Progress, install: bool = True) -> str:
    if host.options.engine.runtime != "docker":
        return ""
    if install:
        progress("Installing the Docker Engine")
    return target.ensure_dockerd(progress)


def _services(target: Target, layout: Layout, action: str, names: list[str], step: str,
              check: bool = True, missing_ok: bool = False) -> Result:
    script = shlex.quote(layout.services_script)
    command = f"{script} {action} {' '.join(names)}".strip()
    if missing_ok:
        command = (f"if [ -x {script} ]; then {command}; else echo 'Flock is not installed in "
                   f"{layout.install_dir}: provision the machine first (flock machine "
                   "provision NAME)' >&2; exit 4; fi")
    return target.run(command, step, check=check, what=f"flock-services {action}")


def _stop(target: Target, layout: Layout, progress: Progress) -> None:
    """Stop what an earlier provisioning started (its own script knows what it was)."""
    script = shlex.quote(layout.services_script)
    if target.run(f"test -x {script}", STOP_STEP, check=False).exit_code == 0:
        progress(STOP_STEP)
        target.run(f"{script} stop", STOP_STEP, check=False)


def _configure(store: Store, host: Host, target: Target, layout: Layout, ip: str,
               dockerd: str) -> None:
    """Certs, the services' files, and (with systemd) the units enabled."""
    folder = store.machine_dir(host.name)
    auth = host.options.auth
    plan = services.plan(host, layout, ip, dockerd, target.systemd)
    files = services.files(plan, layout, target.systemd,
                           services.daemon_config(host.options.engine))
    files[layout.cert("ca.pem")] = ((folder / auth.ca_cert).read_bytes(), 0o644)
    files[layout.cert("server.pem")] = ((folder / auth.server_cert).read_bytes(), 0o644)
    files[layout.cert("server-key.pem")] = ((folder / auth.server_key).read_bytes(), 0o600)
    target.run("mkdir -p " + " ".join(shlex.quote(f) for f in layout.folders()), FILES_STEP)
    target.install_files(files, FILES_STEP)
    if target.systemd:
        wanted = [services.UNITS[s.name] for s in plan]
        unwanted = [u for n, u in services.UNITS.items() if u not in wanted]
        target.run("systemctl disable --now " + " ".join(unwanted) + " 2>/dev/null; rm -f "
                   + " ".join(f"{services.UNIT_DIR}/{u}" for u in unwanted) + "; true",
                   FILES_STEP, check=False)
        target.run("systemctl daemon-reload" + (f" && systemctl enable {' '.join(wanted)}"
                                                if wanted else ""), FILES_STEP)


def _start(store: Store, host: Host, target: Target, layout: Layout, ip: str,
           progress: Progress, names: list[str]) -> None:
    ctx = checks.client_context(store.certs_dir)
    opts = host.options
    for name in names:
        step = START_STEP[name]
        progress(step)
        _services(target, layout, "start", [name], step)
        if name == services.ENGINE:
            what = f"the engine's TLS endpoint https://{ip}:{opts.engine.port}/_ping"
            check = lambda: checks.ping(ip, opts.engine.port, ctx)  # noqa: E731
        elif name == services.AGENT:
            what = f"the agent on {ip}:{opts.swarm.agent_port}"
            check = lambda: checks.port_open(ip, opts.swarm.agent_port)  # noqa: E731
        else:
            what = f"the manager's TLS endpoint https://{ip}:{opts.swarm.manager_port}/_ping"
            check = lambda: checks.ping(ip, opts.swarm.manager_port, ctx)  # noqa: E731
        checks.wait_until(check, target.deadline, step, what,
                          lambda n=name: _log_tail(target, layout, n),
                          lambda n=name: _crashing(target, layout, n))


def _crashing(target: Target, layout: Layout, name: str) -> str:
    """Why waiting for `name` is pointless ('' when it is not): it keeps exiting."""
    script = shlex.quote(layout.services_script)
    try:
        result = target.conn.run(target.wrap(f"{script} restarts {name}"), timeout=20)
        count = int(result.text.strip().splitlines()[-1].rpartition(":")[2])
    except (MachineError, ValueError, IndexError):
        return ""
    if count >= CRASHES:
        return f"the {name} exited {count} times since it was started"
    return ""


def _log_tail(target: Target, layout: Layout, name: str) -> str:
    if target.systemd:
        command = f"journalctl -u {services.UNITS[name]} -n 25 --no-pager"
    else:
        command = f"tail -n 25 {shlex.quote(f'{layout.log}/{name}.log')}"
    result = target.conn.run(target.wrap(command), timeout=20)
    return result.text or result.tail()

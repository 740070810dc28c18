"""The generic driver: a host that already exists, reached over SSH.

As Docker Machine's generic driver, nothing is made at a provider: `create` only takes
the SSH key (--generic-ssh-key, copied into the machine folder as id_rsa; without it, the
key pair made for the machine, whose id_rsa.pub must then be authorized on the host), and
the state is Running when the host's SSH port answers.

What Flock does differently, because the host is not ours to power off:
- `restart` restarts Flock's services there (engine, agent, manager) instead of Docker
  Machine's `sudo shutdown -r now`: rebooting a server someone else runs things on is
  not what a user asking to bounce a machine's engine expects (and brings the supervised
  services, where there is no systemd, back only by `provision`);
- `stop` and `kill` refuse, saying how to stop Flock's services by hand, since a host
  that answers SSH is Running whatever its services do;
- `rm` stops and disables Flock's services on the host when it can reach it (so the
  machine leaves its cluster instead of registering forever) and leaves the files under
  install_dir in place (the engine's images and volumes are data); an unreachable host
  does not keep the record from going.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

from flock.certs.files import PUBLIC_MODE, SECRET_MODE, write_file
from flock.provisioner.drivers.base import Driver, Progress, SSHDetails
from flock.provisioner.errors import DriverError, MachineError
from flock.provisioner.states import State

DEFAULT_USER = "root"
DEFAULT_PORT = 22
STATE_TIMEOUT = 3.0
REMOVE_TIMEOUT = 15.0
ENV = {"ip": "GENERIC_IP_ADDRESS", "user": "GENERIC_SSH_USER", "key": "GENERIC_SSH_KEY",
       "port": "GENERIC_SSH_PORT", "engine_port": "GENERIC_ENGINE_PORT"}
DEFAULT_KEY = "~/.ssh/id_rsa"   # drivers/generic/generic.go: the --generic-ssh-key default


class GenericDriver(Driver):
    name = "generic"

    def __init__(self, machine_name: str, machine_dir: Path, ip: str = "",
                 user: str = DEFAULT_USER, port: int = DEFAULT_PORT, key: str = "") -> None:
        super().__init__(machine_name, machine_dir)
        self.ip_address = ip
        self.user = user
        self.port = port
        self.ssh_key = key   # the key given at create (informational once copied)
        # The key SSH uses: relative to machine_dir, or absolute. Flock copies the key as
        # id_rsa; Docker Machine as the given key's own name, or none ('': its user's
        # default key, ~/.ssh/id_rsa) when no --generic-ssh-key was given.
        self.key_path = "id_rsa"

    # --- flags and records -------------------------------------------------------------------
    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--generic-ip-address", default=None, metavar="IP",
                            help="generic driver: the host's IP address or name (required) "
                                 f"[${ENV['ip']}]")
        parser.add_argument("--generic-ssh-user", default=None, metavar="USER",
                            help=f"generic driver: SSH user, root or one with password-less "
                                 f"sudo (default {DEFAULT_USER}) [${ENV['user']}]")
        parser.add_argument("--generic-ssh-key", default=None, metavar="PATH",
                            help="generic driver: a private key the host accepts, copied into "
                                 f"the machine folder (default {DEFAULT_KEY} when it exists, "
                                 "else the machine's own new key, which the host must then "
                                 f"accept) [${ENV['key']}]")
        parser.add_argument("--generic-ssh-port", default=None, type=int, metavar="PORT",
                            help=f"generic driver: SSH port (default {DEFAULT_PORT}) "
                                 f"[${ENV['port']}]")
        parser.add_argument("--generic-engine-port", default=None, type=int, metavar="PORT",
                            help="generic driver: the engine's TLS port, Docker Machine's "
                                 "name for --engine-port (default 2376) "
                                 f"[${ENV['engine_port']}]")

    @classmethod
    def from_flags(cls, machine_name: str, machine_dir: Path,
                   args: argparse.Namespace) -> GenericDriver:
        ip = (getattr(args, "generic_ip_address", None) or os.environ.get(ENV["ip"], "")).strip()
        if not ip:
            raise MachineError("the generic driver needs --generic-ip-address: the address of "
                               "an existing host that runs an SSH server")
        if any(c.isspace() or c in "/@" for c in ip) or ip.startswith("-"):
            raise MachineError(f"--generic-ip-address {ip!r} is not an IP address or host "
                               "name: give e.g. --generic-ip-address 192.0.2.10")
        user = getattr(args, "generic_ssh_user", None) or os.environ.get(ENV["user"]) \
            or DEFAULT_USER
        if any(c.isspace() or c in "@:/" for c in user):
            raise MachineError(f"--generic-ssh-user {user!r} is not a user name")
        port = getattr(args, "generic_ssh_port", None)
        if port is None:
            text = os.environ.get(ENV["port"], "")
            try:
                port = int(text) if text else DEFAULT_PORT
            except ValueError:
                raise MachineError(f"${ENV['port']}={text!r} is not a port number") from None
        if not 0 < port < 65536:
            raise MachineError(f"--generic-ssh-port {port} is not a port (1-65535)")
        key = getattr(args, "generic_ssh_key", None) or os.environ.get(ENV["key"], "")
        if not key and Path(DEFAULT_KEY).expanduser().is_file():
            key = DEFAULT_KEY
        if key:
            key = str(Path(key).expanduser().resolve())
        return cls(machine_name, machine_dir, ip, user, port, key)

    def to_dict(self) -> dict[str, Any]:
        # Docker Machine's field names, so `inspect -f '{{.Driver.IPAddress}}'` works.
        return {"IPAddress": self.ip_address, "SSHUser": self.user, "SSHPort": self.port,
                "SSHKey": self.ssh_key, "SSHKeyPath": self.key_path}

    @classmethod
    def load(cls, machine_name: str, machine_dir: Path, data: dict[str, Any],
             secrets: dict[str, Any]) -> GenericDriver:
        driver = cls(machine_name, machine_dir, str(data.get("IPAddress", "")),
                     str(data.get("SSHUser") or DEFAULT_USER),
                     int(data.get("SSHPort") or DEFAULT_PORT), str(data.get("SSHKey", "")))
        driver.key_path = str(data.get("SSHKeyPath", "id_rsa"))
        return driver

    # --- lifecycle ---------------------------------------------------------------------------
    def pre_create_check(self) -> None:
        if self.ssh_key:
            from flock.provisioner.ssh import load_key

            if not Path(self.ssh_key).is_file():
                raise MachineError(f"--generic-ssh-key {self.ssh_key}: no such file: give the "
                                   "private key the host accepts")
            load_key(self.ssh_key)

    def create(self, progress: Progress) -> None:
        """Nothing to make: take the SSH key. Provisioning then waits for SSH."""
        if not self.ssh_key:
            progress(f"No --generic-ssh-key: using the machine's own key; the host must "
                     f"accept {self.machine_dir / 'id_rsa.pub'}")
            return
        from flock.provisioner.ssh import load_key, public_line

        progress(f"Importing SSH key {self.ssh_key}")
        load_key(self.ssh_key)
        target = self.machine_dir / "id_rsa"
        write_file(target, Path(self.ssh_key).read_bytes(), SECRET_MODE)
        write_file(self.machine_dir / "id_rsa.pub",
                   (public_line(target, self.machine_name) + "\n").encode(), PUBLIC_MODE)

    def remove(self) -> None:
        """Stop and disable Flock's services when the host answers; never fails."""
        if self.state() is not State.RUNNING or not Path(self._key_file()).exists():
            return
        try:
            self._services("disable", REMOVE_TIMEOUT)
        except MachineError:
            pass   # the host is not ours: forgetting it must not depend on it

    def start(self) -> None:
        if self.state() is not State.RUNNING:
            raise DriverError(f"{self._where()} does not answer on SSH, and the generic "
                              "driver cannot power on a host: start it yourself")

    def stop(self) -> None:
        raise DriverError(self._not_ours("stop"))

    def kill(self) -> None:
        raise DriverError(self._not_ours("kill"))

    def restart(self) -> None:
        """Restart Flock's services (not the host: see the module's docstring)."""
        self.start()
        result = self._services("restart", 30.0)
        if result.exit_code != 0:
            raise DriverError(f"restarting Flock's services on {self._where()} failed:\n"
                              f"{result.tail()}")

    # --- questions ---------------------------------------------------------------------------
    def state(self) -> State:
        try:
            with socket.create_connection((self.ip_address, self.port), timeout=STATE_TIMEOUT):
                return State.RUNNING
        except socket.gaierror:
            return State.ERROR
        except OSError:
            return State.STOPPED

    def ip(self) -> str:
        if not self.ip_address:
            raise MachineError(f'machine "{self.machine_name}" has no IP address recorded')
        return self.ip_address

    def ssh_details(self) -> SSHDetails:
        return SSHDetails(self.ip_address, self.port, self.user, self._key_file())

    # --- helpers -----------------------------------------------------------------------------
    def _key_file(self) -> str:
        if not self.key_path:
            return str(Path.home() / ".ssh" / "id_rsa")
        return str(self.machine_dir / self.key_path)   # an absolute key_path stays as it is

    def _where(self) -> str:
        return f"{self.user}@{self.ip_address}:{self.port}"

    def _not_ours(self, verb: str) -> str:
        install = self._install_dir()
        sudo = "" if self.user == "root" else "sudo "
        return (f"the generic driver does not {verb} hosts it did not create ({self._where()} "
                f"stays up). To {verb} Flock's services there: flock machine ssh "
                f"{self.machine_name} -- {sudo}{install}/bin/flock-services {verb}")

    def _install_dir(self) -> str:
        from flock.provisioner.store import Store

        try:
            return Store(self.machine_dir.parent.parent).load(self.machine_name) \
                .options.install_dir
        except MachineError:
            from flock.provisioner.host import DEFAULT_INSTALL_DIR

            return DEFAULT_INSTALL_DIR

    def _services(self, action: str, timeout: float):
        from flock.provisioner.provision import run_services
        from flock.provisioner.store import Store

        host = Store(self.machine_dir.parent.parent).load(self.machine_name)
        return run_services(host, self, action, timeout=timeout)


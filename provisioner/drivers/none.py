"""The `none` driver: a Docker endpoint that already exists (`--url tcp://IP:PORT`).

As in Docker Machine (drivers/none/driver.go), `--url` is stored as given, whatever it
is, and nothing is dialled at create; nothing is made, started, stopped or restarted: the
machine is always Running, it has no SSH, and removing it only forgets it. `env` and
`config` are where the URL is checked (commands/env.go: the engine must answer TLS with
the machine's certs). Flock still makes it a server cert in the store (for the URL's
address, when it has one), so a user can give that cert to the engine.
"""

from __future__ import annotations

import argparse
import ipaddress
import urllib.parse
from pathlib import Path
from typing import Any

from flock.provisioner.drivers.base import Driver, Progress
from flock.provisioner.errors import DriverError, MachineError
from flock.provisioner.states import State


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of a tcp://HOST:PORT URL; MachineError saying what to pass instead."""
    hint = "give the engine's address as tcp://IP:PORT, e.g. --url tcp://192.0.2.10:2376"
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.scheme != "tcp":
        raise MachineError(f"--url {url!r} is not a tcp:// URL: {hint}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise MachineError(f"--url {url!r} has a bad port: {hint}") from None
    if not host or not port or parsed.path not in ("", "/") or parsed.query:
        raise MachineError(f"--url {url!r} needs a host and a port and nothing else: {hint}")
    return host, port


class NoneDriver(Driver):
    name = "none"
    has_ssh = False

    def __init__(self, machine_name: str, machine_dir: Path, url: str = "") -> None:
        super().__init__(machine_name, machine_dir)
        self.url_ = url

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=None, metavar="tcp://IP:PORT",
                            help="none driver: the URL of an existing Docker Engine (required "
                                 "with -d none)")

    @classmethod
    def from_flags(cls, machine_name: str, machine_dir: Path,
                   args: argparse.Namespace) -> NoneDriver:
        url = getattr(args, "url", None) or ""
        if not url:
            raise MachineError("--url option is required when no driver is selected: give "
                               "the address of an existing Docker Engine, e.g. --url "
                               "tcp://192.0.2.10:2376")
        return cls(machine_name, machine_dir, url)

    def to_dict(self) -> dict[str, Any]:
        return {"URL": self.url_}

    @classmethod
    def load(cls, machine_name: str, machine_dir: Path, data: dict[str, Any],
             secrets: dict[str, Any]) -> NoneDriver:
        return cls(machine_name, machine_dir, str(data.get("URL", "")))

    def create(self, progress: Progress) -> None:
        progress(f"Using the existing engine at {self.url_}")

    def remove(self) -> None:
        """Nothing to delete at a provider: the engine is not ours."""

    def start(self) -> None:
        """Always running: nothing to start."""

    def stop(self) -> None:
        raise DriverError("hosts without a driver cannot be stopped: stop the engine at "
                          f"{self.url_} yourself")

    def restart(self) -> None:
        raise DriverError("hosts without a driver cannot be restarted: restart the engine at "
                          f"{self.url_} yourself")

    def kill(self) -> None:
        raise DriverError("hosts without a driver cannot be killed: stop the engine at "
                          f"{self.url_} yourself")

    def state(self) -> State:
        return State.RUNNING

    def ip(self) -> str:
        host, _ = parse_url(self.url_)
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return host   # a DNS name: what clients dial

    def url(self) -> str:
        return self.url_

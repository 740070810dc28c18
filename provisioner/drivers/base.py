"""The one small interface every provider implements (Docker Machine's drivers.Driver).

A driver knows how to make, start, stop and remove one machine at its provider, how to
ask the provider for its state and IP, and how to reach it over SSH. It knows nothing of
TLS, the agent or the store's layout: provisioning is done over SSH by provision.py for
every driver alike.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from flock.provisioner.errors import MachineError
from flock.provisioner.states import State

Progress = Callable[[str], None]   # called with a short step description ("Waiting for IP")


@dataclass(frozen=True)
class SSHDetails:
    host: str
    port: int
    user: str
    key_path: str   # absolute path of the private key on this machine


class Driver(ABC):
    """One machine at one provider.

    `machine_dir` is the machine's store folder (the SSH key pair lives there as id_rsa /
    id_rsa.pub). A driver's persistent record is `to_dict()` (stored in config.json) plus
    `secrets()` (stored 0600 in secrets.json, never in config.json); `load` rebuilds the
    driver from both.
    """

    name: ClassVar[str]
    has_ssh: ClassVar[bool] = True   # False for `none`: nothing to provision

    def __init__(self, machine_name: str, machine_dir: Path) -> None:
        self.machine_name = machine_name
        self.machine_dir = Path(machine_dir)

    # --- flags and records -------------------------------------------------------------
    @classmethod  # noqa: B027 - an optional hook: no flags by default
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        """Add this driver's `--<driver>-*` flags to `flock machine create`. Defaults must
        be None or the documented default; environment variables are read in from_flags."""

    @classmethod
    @abstractmethod
    def from_flags(cls, machine_name: str, machine_dir: Path,
                   args: argparse.Namespace) -> Driver:
        """A driver for a new machine; MachineError when a flag is missing or wrong."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The record kept in config.json: no secrets, paths relative to machine_dir."""

    def secrets(self) -> dict[str, Any]:
        return {}

    @classmethod
    @abstractmethod
    def load(cls, machine_name: str, machine_dir: Path, data: dict[str, Any],
             secrets: dict[str, Any]) -> Driver:
        """The driver of a stored machine, from to_dict() and secrets()."""

    # --- lifecycle ---------------------------------------------------------------------
    def pre_create_check(self) -> None:  # noqa: B027 - optional hook, nothing by default
        """Fail early (bad credentials, missing image, taken name at the provider) before
        anything is made."""

    @abstractmethod
    def create(self, progress: Progress) -> None:
        """Make the machine and wait until it runs and has an IP. On failure, undo what was
        made at the provider before raising (nothing billed or leaked silently); whatever
        could not be undone stays in to_dict() so `rm` can finish the job."""

    @abstractmethod
    def remove(self) -> None:
        """Delete the machine at the provider. Something already gone is not an error."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def restart(self) -> None:
        self.stop()
        self.start()

    @abstractmethod
    def kill(self) -> None: ...

    # --- questions ---------------------------------------------------------------------
    @abstractmethod
    def state(self) -> State: ...

    @abstractmethod
    def ip(self) -> str:
        """The address clients and the manager use; MachineError if it has none yet."""

    def ssh_details(self) -> SSHDetails:
        raise MachineError(f"driver {self.name} does not support SSH")

    def url(self) -> str:
        """The Docker endpoint, when the driver knows it better than provisioning does
        (`none --url`); '' lets the caller build tcp://IP:ENGINE_PORT."""
        return ""

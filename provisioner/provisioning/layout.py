"""Where a provisioned machine keeps Flock: everything under its install_dir, so that
removing one folder (and the units, with systemd) removes Flock, and two installs on one
host (tests, or a staging copy) never share a file.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from flock.provisioner.errors import MachineError

_UNSAFE = re.compile(r"[^A-Za-z0-9_./+-]")


@dataclass(frozen=True)
class Layout:
    install_dir: str

    def __post_init__(self) -> None:
        path = self.install_dir
        if not path.startswith("/") or posixpath.normpath(path) in ("/", "//") \
                or ".." in path.split("/") or _UNSAFE.search(path):
            raise MachineError(
                f"--install-dir {path!r} cannot be used: give an absolute folder of its own "
                "(not /) made of letters, digits and . _ - + / only, e.g. /opt/flock",
                step="Checking options")

    def _at(self, *parts: str) -> str:
        return posixpath.join(self.install_dir, *parts)

    @property
    def venv(self) -> str:
        return self._at("venv")

    @property
    def flock(self) -> str:
        return self._at("venv", "bin", "flock")

    @property
    def wheelhouse(self) -> str:
        return self._at("wheelhouse")

    @property
    def certs(self) -> str:
        return self._at("certs")

    @property
    def etc(self) -> str:
        return self._at("etc")

    @property
    def bin(self) -> str:
        return self._at("bin")

    @property
    def log(self) -> str:
        return self._at("log")

    @property
    def run(self) -> str:
        return self._at("run")

    @property
    def state(self) -> str:
        """The agent's state (the exec runtime's images and containers)."""
        return self._at("state")

    @property
    def docker_root(self) -> str:
        return self._at("docker")

    @property
    def docker_exec_root(self) -> str:
        return self._at("run", "docker")

    @property
    def docker_socket(self) -> str:
        return self._at("run", "docker.sock")

    @property
    def services_script(self) -> str:
        """start|stop|restart|kill|status of the machine's services."""
        return self._at("bin", "flock-services")

    def cert(self, name: str) -> str:
        return self._at("certs", name)

    def folders(self) -> list[str]:
        return [self.install_dir, self.certs, self.etc, self.bin, self.log, self.run,
                self.state]

"""The machine store: `<root>/certs/` (the CA and the client cert every machine shares) and
`<root>/machines/<name>/` (config.json, secrets.json, the SSH key pair, the TLS files).

It is Docker Machine's store: the same folders and files, config.json in its ConfigVersion
3 layout (provisioner/machine_config.py), at the same default place (~/.docker/machine, or
$MACHINE_STORAGE_PATH: provisioner/settings.py), so `flock machine` works on a store
Docker Machine made and the other way round. A record Flock wrote in its older layout is
rewritten in this one the first time it is read, after a copy of the original is kept as
config.json.bak (Docker Machine's name for the copy its own migrations keep). A machine of
a driver Flock does not have (virtualbox...) is read but never written or removed.

Every write goes to a temporary file that is renamed into place, so an interrupted command
never leaves a half-written config; secrets are created 0600 before a byte is written.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

from flock.certs.files import PUBLIC_MODE, SECRET_MODE, write_file
from flock.provisioner import settings
from flock.provisioner.errors import MachineError, MachineExists, MachineNotFound
from flock.provisioner.host import Host, check_name
from flock.provisioner.machine_config import ConfigError, from_any, from_config, to_config

ENV_STORAGE_PATH = settings.STORAGE_PATH.machine
CONFIG = "config.json"
BACKUP = "config.json.bak"   # libmachine/persist/filestore.go keeps the same after migrating
SECRETS = "secrets.json"   # cloud credentials and the like: never in config.json


def default_root() -> Path:
    return settings.storage_path()


def own_driver(name: str) -> bool:
    from flock.provisioner.drivers import DRIVERS

    return name in DRIVERS


class ForeignDriver(MachineError):
    """A machine of a driver Flock does not have (Docker Machine's virtualbox, a plugin):
    listed, inspected as it is, never written or removed."""

    def __init__(self, name: str, driver_name: str) -> None:
        super().__init__(f'Driver "{driver_name}" not found: Flock does not have it, so it '
                         f'lists machine "{name}" but never changes or removes it (use '
                         "docker-machine for it)")


class Store:
    def __init__(self, root: str | os.PathLike | None = None,
                 tls: settings.TLSPaths | None = None) -> None:
        self.root = (Path(root).expanduser() if root else default_root()).absolute()
        self.tls = tls if tls is not None else settings.tls_paths()

    @property
    def ca_cert_path(self) -> Path:
        return Path(self.tls.ca_cert) if self.tls.ca_cert else self.certs_dir / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return Path(self.tls.ca_key) if self.tls.ca_key else self.certs_dir / "ca-key.pem"

    @property
    def client_cert_path(self) -> Path:
        return (Path(self.tls.client_cert) if self.tls.client_cert
                else self.certs_dir / "cert.pem")

    @property
    def client_key_path(self) -> Path:
        return (Path(self.tls.client_key) if self.tls.client_key
                else self.certs_dir / "key.pem")

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def machines_dir(self) -> Path:
        return self.root / "machines"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def machine_dir(self, name: str) -> Path:
        return self.machines_dir / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.machine_dir(name) / CONFIG).is_file()

    def names(self) -> list[str]:
        if not self.machines_dir.is_dir():
            return []
        return sorted(p.name for p in self.machines_dir.iterdir() if (p / CONFIG).is_file())

    def load(self, name: str) -> Host:
        """The machine's record; one in Flock's older layout is migrated on the way."""
        path = self.machine_dir(name) / CONFIG
        try:
            text = path.read_bytes()
            host, legacy = from_any(json.loads(text), name)
        except FileNotFoundError:
            raise MachineNotFound(name) from None
        except (OSError, ValueError) as exc:
            raise MachineError(f"{path}: cannot read the machine's config ({exc}); fix or "
                               f'remove it with "flock machine rm -f {name}"') from None
        except ConfigError as exc:
            raise MachineError(f"{path}: {exc}") from None
        host.name = name   # the folder names the machine (persist/filestore.go does the same)
        if legacy:
            host = from_config(to_config(host, self.root))   # as the new record reads
            self._migrate(host, text)
        return host

    def _migrate(self, host: Host, original: bytes) -> None:
        """Keep the old record as config.json.bak, then write the new one over it (each
        atomically). A store that cannot be written is still read; it migrates later."""
        folder = self.machine_dir(host.name)
        try:
            write_file(folder / BACKUP, original, _mode(folder / CONFIG))
            self.save(host)
        except OSError:
            pass

    def load_all(self) -> list[Host | MachineError]:
        """Every machine, or for one whose config is broken the error, so `ls` still lists
        the rest."""
        out: list[Host | MachineError] = []
        for name in self.names():
            try:
                out.append(self.load(name))
            except MachineError as exc:
                out.append(exc)
        return out

    def create(self, host: Host) -> Path:
        """A new machine folder; MachineExists if the name is taken, even by another
        process creating the same name at the same moment (the config is linked into
        place, which fails if one is there)."""
        folder = self.machine_dir(host.name)
        if (folder / CONFIG).exists():
            raise MachineExists(host.name)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{CONFIG}.{os.getpid()}.{threading.get_ident()}.new"
        write_file(tmp, self.config_bytes(host), PUBLIC_MODE)
        try:
            os.link(tmp, folder / CONFIG)
        except FileExistsError:
            raise MachineExists(host.name) from None
        finally:
            tmp.unlink(missing_ok=True)
        return folder

    def save(self, host: Host) -> None:
        path = self.machine_dir(host.name) / CONFIG
        self._check_own(host.name, host.driver_name)
        write_file(path, self.config_bytes(host), _mode(path))

    def config_bytes(self, host: Host) -> bytes:
        """config.json as Docker Machine writes it: MarshalIndent with four spaces."""
        return json.dumps(to_config(host, self.root), indent=4).encode() + b"\n"

    def _check_own(self, name: str, driver_name: str) -> None:
        """Refuse to touch a machine of a driver Flock does not have: it belongs to Docker
        Machine (or a plugin of it), and Flock could only break it."""
        if not own_driver(driver_name):
            raise ForeignDriver(name, driver_name)

    def load_secrets(self, name: str) -> dict[str, Any]:
        path = self.machine_dir(name) / SECRETS
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise MachineError(f"{path}: cannot read ({exc})") from None

    def save_secrets(self, name: str, secrets: dict[str, Any]) -> None:
        if secrets:
            write_file(self.machine_dir(name) / SECRETS,
                       json.dumps(secrets, indent=2).encode(), SECRET_MODE)

    def remove(self, name: str) -> None:
        """Forget the machine (its whole folder); refused for another tool's driver."""
        try:
            driver_name = json.loads((self.machine_dir(name) / CONFIG).read_text()) \
                .get("DriverName")
        except (OSError, ValueError, AttributeError):
            driver_name = None   # a broken or old record: `rm -f` must be able to clear it
        if isinstance(driver_name, str):
            self._check_own(name, driver_name)
        shutil.rmtree(self.machine_dir(name), ignore_errors=True)


def _mode(path: Path) -> int:
    """An existing config's mode is kept (Docker Machine writes 0600: its records can hold
    cloud credentials); a new one is PUBLIC_MODE (Flock keeps secrets in secrets.json)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return PUBLIC_MODE

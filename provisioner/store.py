"""The machine store: `<root>/certs/` (the CA and the client cert every machine shares) and
`<root>/machines/<name>/` (config.json, secrets.json, the SSH key pair, the TLS files).

Every write goes to a temporary file that is renamed into place, so an interrupted command
never leaves a half-written config; secrets are created 0600 before a byte is written.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from certs.files import PUBLIC_MODE, SECRET_MODE, write_file
from provisioner.errors import MachineError, MachineExists, MachineNotFound
from provisioner.host import Host, check_name

ENV_STORAGE_PATH = "FLOCK_MACHINE_STORAGE_PATH"
CONFIG = "config.json"
SECRETS = "secrets.json"   # cloud credentials and the like: never in config.json


def default_root() -> Path:
    return Path(os.environ.get(ENV_STORAGE_PATH) or Path.home() / ".flock" / "machine")


class Store:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_root()

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
        path = self.machine_dir(name) / CONFIG
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise MachineNotFound(name) from None
        except (OSError, ValueError) as exc:
            raise MachineError(f"{path}: cannot read the machine's config ({exc}); fix or "
                               f'remove it with "flock machine rm -f {name}"') from None
        return Host.from_dict(data)

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
        write_file(tmp, _config_bytes(host), PUBLIC_MODE)
        try:
            os.link(tmp, folder / CONFIG)
        except FileExistsError:
            raise MachineExists(host.name) from None
        finally:
            tmp.unlink(missing_ok=True)
        return folder

    def save(self, host: Host) -> None:
        write_file(self.machine_dir(host.name) / CONFIG, _config_bytes(host), PUBLIC_MODE)

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
        shutil.rmtree(self.machine_dir(name), ignore_errors=True)


def _config_bytes(host: Host) -> bytes:
    return json.dumps(host.to_dict(), indent=2, sort_keys=True).encode() + b"\n"

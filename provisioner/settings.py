"""Where `flock machine`'s global settings come from, in this order: the flag, Docker
Machine's MACHINE_* variable, Flock's older FLOCK_MACHINE_* alias, the default.

Docker Machine 0.16 reads MACHINE_STORAGE_PATH, MACHINE_DRIVER, MACHINE_DEBUG,
MACHINE_NATIVE_SSH and MACHINE_TLS_{CA_CERT,CA_KEY,CLIENT_CERT,CLIENT_KEY} (the EnvVar of
its global flags in cmd/docker-machine/machine.go and of create's --driver), so scripts
and CI jobs that set them keep working; FLOCK_MACHINE_* were Flock's names before and stay
as aliases, below Docker Machine's so that a shell set up for Docker Machine wins.

Pure apart from reading the environment (given as a mapping, for tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flock.provisioner.errors import MachineError


@dataclass(frozen=True)
class Setting:
    flag: str
    machine: str     # Docker Machine's variable
    flock: str       # Flock's alias

    def value(self, flag_value: str | None = None,
              environ: Mapping[str, str] | None = None) -> str:
        """The flag's value, else the first variable set to something, else ''."""
        if flag_value:
            return flag_value
        env = os.environ if environ is None else environ
        return env.get(self.machine) or env.get(self.flock) or ""

    def enabled(self, flag_value: bool = False,
                environ: Mapping[str, str] | None = None) -> bool:
        """A boolean setting: the flag, else the variable read as Go's strconv.ParseBool
        (as urfave/cli reads a BoolFlag's EnvVar); MachineError for anything else."""
        if flag_value:
            return True
        text = self.value(None, environ)
        if not text:
            return False
        if text in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if text in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        name = self.machine if (environ or os.environ).get(self.machine) else self.flock
        raise MachineError(f"could not parse {text} as bool value for flag "
                           f"{self.flag.lstrip('-')} (${name}): use true or false")


def _setting(flag: str, suffix: str) -> Setting:
    return Setting(flag, f"MACHINE_{suffix}", f"FLOCK_MACHINE_{suffix}")


STORAGE_PATH = _setting("--storage-path", "STORAGE_PATH")
DRIVER = _setting("--driver", "DRIVER")
DEBUG = _setting("--debug", "DEBUG")
NATIVE_SSH = _setting("--native-ssh", "NATIVE_SSH")   # accepted: paramiko is native
TLS_CA_CERT = _setting("--tls-ca-cert", "TLS_CA_CERT")
TLS_CA_KEY = _setting("--tls-ca-key", "TLS_CA_KEY")
TLS_CLIENT_CERT = _setting("--tls-client-cert", "TLS_CLIENT_CERT")
TLS_CLIENT_KEY = _setting("--tls-client-key", "TLS_CLIENT_KEY")


def default_storage_path(home: Path | None = None) -> Path:
    """Docker Machine's ~/.docker/machine, unless only a store Flock made before it
    changed its default (~/.flock/machine) is there: that one goes on being used."""
    home = Path.home() if home is None else home
    docker, flock = home / ".docker" / "machine", home / ".flock" / "machine"
    if not docker.exists() and flock.is_dir():
        return flock
    return docker


def storage_path(flag_value: str | None = None,
                 environ: Mapping[str, str] | None = None) -> Path:
    chosen = STORAGE_PATH.value(flag_value, environ)
    return Path(chosen).expanduser() if chosen else default_storage_path()


@dataclass(frozen=True)
class TLSPaths:
    """The CA and client cert a store signs with and hands out ('' = its own certs/)."""

    ca_cert: str = ""
    ca_key: str = ""
    client_cert: str = ""
    client_key: str = ""


def tls_paths(ca_cert: str | None = None, ca_key: str | None = None,
              client_cert: str | None = None, client_key: str | None = None,
              environ: Mapping[str, str] | None = None) -> TLSPaths:
    """The --tls-* flags (None when not given) over MACHINE_TLS_* over FLOCK_MACHINE_TLS_*,
    as absolute paths."""
    def one(setting: Setting, flag: str | None) -> str:
        text = setting.value(flag, environ)
        return str(Path(text).expanduser().absolute()) if text else ""

    return TLSPaths(one(TLS_CA_CERT, ca_cert), one(TLS_CA_KEY, ca_key),
                    one(TLS_CLIENT_CERT, client_cert), one(TLS_CLIENT_KEY, client_key))

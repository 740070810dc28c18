"""What the store keeps of one machine: its driver's record and the options it was made with.

Only what cannot be asked of the provider lives here. The state (Running, Stopped...) is
never stored: it is always asked of the driver. Paths are relative to the machine's own
folder, so a store can be moved or handed over (`flock machine export`/`import`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from provisioner.errors import InvalidName

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$")

ENGINE_PORT = 2376    # dockerd with TLS, as Docker Machine exposes it
AGENT_PORT = 4000     # `flock join`, as `flock certs init` suggests
MANAGER_PORT = 3376   # `flock manage` on a --swarm-master, Docker Machine's swarm port
DEFAULT_INSTALL_DIR = "/opt/flock"
CONFIG_VERSION = 1


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):  # fullmatch: `$` alone lets "a\n" through
        raise InvalidName(name)
    return name


@dataclass
class EngineOptions:
    """How the machine runs containers. `runtime` docker: the distribution's Docker Engine
    (installed when missing), exposed with TLS on `port`; exec: Flock's embedded runtime,
    no engine and no Docker endpoint of its own."""

    runtime: str = "docker"
    port: int = ENGINE_PORT
    labels: dict[str, str] = field(default_factory=dict)
    opts: list[str] = field(default_factory=list)      # k=v, extra dockerd flags --k=v
    env: list[str] = field(default_factory=list)       # k=v, the engine's environment


@dataclass
class SwarmOptions:
    """Cluster membership: --swarm joins as an agent, --swarm-master also runs a manager."""

    agent: bool = False
    master: bool = False
    discovery: str = ""
    strategy: str = "spread"
    opts: list[str] = field(default_factory=list)      # k=v, extra `flock manage` flags
    addr: str = ""                                     # advertised agent address
    agent_port: int = AGENT_PORT
    manager_port: int = MANAGER_PORT


@dataclass
class AuthOptions:
    """TLS material. Paths are relative to the machine folder (certs shared by the store
    start with ../../certs/). `server_ips` are the IPs the server cert was made for: a
    machine whose IP changed gets a new cert before anything dials it."""

    ca_cert: str = "ca.pem"
    client_cert: str = "cert.pem"
    client_key: str = "key.pem"
    server_cert: str = "server.pem"
    server_key: str = "server-key.pem"
    extra_sans: list[str] = field(default_factory=list)  # --tls-san
    server_ips: list[str] = field(default_factory=list)


@dataclass
class HostOptions:
    engine: EngineOptions = field(default_factory=EngineOptions)
    swarm: SwarmOptions = field(default_factory=SwarmOptions)
    auth: AuthOptions = field(default_factory=AuthOptions)
    install_dir: str = DEFAULT_INSTALL_DIR   # on the machine: venv, config, certs, logs
    ssh_timeout: float = 120.0               # waiting for SSH while the host boots
    provision_timeout: float = 900.0         # the whole provisioning over SSH


@dataclass
class Host:
    """One machine record: `driver` is the driver's own state (its to_dict()), `error` the
    last create/provision failure, shown in `ls`'s ERRORS column until it is fixed."""

    name: str
    driver_name: str
    driver: dict[str, Any] = field(default_factory=dict)
    options: HostOptions = field(default_factory=HostOptions)
    error: str = ""
    created: str = ""
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Host:
        opts = data.get("options") or {}
        options = HostOptions(
            engine=EngineOptions(**opts.get("engine", {})),
            swarm=SwarmOptions(**opts.get("swarm", {})),
            auth=AuthOptions(**opts.get("auth", {})),
            **{k: v for k, v in opts.items() if k not in ("engine", "swarm", "auth")})
        return cls(name=data["name"], driver_name=data["driver_name"],
                   driver=dict(data.get("driver") or {}), options=options,
                   error=data.get("error", ""), created=data.get("created", ""),
                   version=data.get("version", CONFIG_VERSION))

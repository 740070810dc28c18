"""What the store keeps of one machine: its driver's record and the options it was made with.

Only what cannot be asked of the provider lives here. The state (Running, Stopped...) is
never stored: it is always asked of the driver. Paths here are relative to the machine's
own folder, so a store can be moved or handed over (`flock machine export`/`import`);
provisioner/machine_config.py writes them out as Docker Machine's absolute paths.

The fields mirror Docker Machine's libmachine/host (Options), engine, swarm and auth
records, with Flock's own beside them, so a machine Docker Machine made loses nothing
when Flock reads and saves it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from flock.provisioner.errors import InvalidName

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$")

ENGINE_PORT = 2376    # dockerd with TLS, as Docker Machine exposes it
AGENT_PORT = 4000     # `flock join`, as `flock certs init` suggests
CALLS_PORT = AGENT_PORT + 1  # its call link (--calls-port): the manager's short calls
MANAGER_PORT = 3376   # `flock manage` on a --swarm-master, Docker Machine's swarm port
DEFAULT_INSTALL_DIR = "/opt/flock"
CONFIG_VERSION = 3    # Docker Machine's libmachine/version ConfigVersion
LEGACY_VERSION = 1    # the layout Flock wrote before it used Docker Machine's
DEFAULT_INSTALL_URL = "https://get.docker.com"   # libmachine/drivers/utils.go
DEFAULT_SWARM_IMAGE = "swarm:latest"


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
    # Docker Machine's engine.Options that Flock has no flag of its own for:
    dns: list[str] | None = None
    graph_dir: str = ""
    ipv6: bool = False
    insecure_registry: list[str] = field(default_factory=list)
    log_level: str = ""
    storage_driver: str = ""
    selinux_enabled: bool = False
    tls_verify: bool = True
    registry_mirror: list[str] = field(default_factory=list)
    install_url: str = DEFAULT_INSTALL_URL


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
    # Docker Machine's swarm.Options that Flock has no flag of its own for:
    host: str = f"tcp://0.0.0.0:{MANAGER_PORT}"
    image: str = DEFAULT_SWARM_IMAGE
    heartbeat: int = 0
    overcommit: float = 0
    join_opts: list[str] = field(default_factory=list)   # ArbitraryJoinFlags
    env: list[str] | None = None
    experimental: bool = False


@dataclass
class AuthOptions:
    """TLS material. Paths are relative to the machine folder (certs shared by the store
    start with ../../certs/). `server_ips` are the IPs the server cert was made for: a
    machine whose IP changed gets a new cert before anything dials it.

    `ca_cert`, `client_cert` and `client_key` are the copies in the machine folder that
    DOCKER_CERT_PATH points at; the `store_*` paths are where they were copied from (Docker
    Machine's CaCertPath, CaPrivateKeyPath, ClientCertPath, ClientKeyPath): '' is the
    store's own certs/, else the --tls-* file the machine was made with."""

    ca_cert: str = "ca.pem"
    client_cert: str = "cert.pem"
    client_key: str = "key.pem"
    server_cert: str = "server.pem"
    server_key: str = "server-key.pem"
    extra_sans: list[str] = field(default_factory=list)  # --tls-san
    server_ips: list[str] = field(default_factory=list)
    store_ca_cert: str = ""
    store_ca_key: str = ""
    store_client_cert: str = ""
    store_client_key: str = ""
    ca_cert_remote: str = ""
    server_cert_remote: str = ""
    server_key_remote: str = ""


@dataclass
class HostOptions:
    engine: EngineOptions = field(default_factory=EngineOptions)
    swarm: SwarmOptions = field(default_factory=SwarmOptions)
    auth: AuthOptions = field(default_factory=AuthOptions)
    install_dir: str = DEFAULT_INSTALL_DIR   # on the machine: venv, config, certs, logs
    driver: str = ""     # Docker Machine's HostOptions.Driver, Memory and Disk (unused by
    memory: int = 0      # its own drivers either; kept so a record round-trips)
    disk: int = 0
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
    # config.json as read: keys Flock does not know are written back from it unchanged
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Flock's own field names (for tests and debugging; config.json is written by
        provisioner/machine_config.py)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Host:
        """A record in the layout Flock wrote before ConfigVersion 3 (lower-case `name`,
        `driver_name`, `options`), or from to_dict()."""
        opts = data.get("options") or {}
        options = HostOptions(
            engine=EngineOptions(**opts.get("engine", {})),
            swarm=SwarmOptions(**opts.get("swarm", {})),
            auth=AuthOptions(**opts.get("auth", {})),
            **{k: v for k, v in opts.items() if k not in ("engine", "swarm", "auth")})
        return cls(name=data["name"], driver_name=data["driver_name"],
                   driver=dict(data.get("driver") or {}), options=options,
                   error=data.get("error", ""), created=data.get("created", ""),
                   version=data.get("version", LEGACY_VERSION))

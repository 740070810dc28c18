"""config.json in Docker Machine's layout (ConfigVersion 3), to and from a Host.

Docker Machine 0.16 writes `json.MarshalIndent(host, "", "    ")` of libmachine/host.Host:
ConfigVersion, Driver (the driver's own struct, with drivers.BaseDriver's fields flat in
it), DriverName, HostOptions{Driver, Memory, Disk, EngineOptions, SwarmOptions,
AuthOptions}, Name. Flock writes the same names, in the same order, with absolute paths as
Docker Machine does, so that either tool can read the other's store and `inspect -f`
templates work on both; Flock's own fields (Runtime, Port, AgentPort, ManagerPort,
ServerIPs, InstallDir, SSHTimeout, ProvisionTimeout, Error, Created) sit beside them, where
Docker Machine's JSON decoder ignores them.

Two things Flock adds on reading:
- paths under the folder the record was written in are rebased onto where the store is
  now, so a moved or imported store keeps working (Docker Machine's would not);
- every key Flock does not know is kept (Host.raw) and written back, so saving a record
  Docker Machine made loses nothing.

Pure: no I/O; provisioner/store.py reads and writes the files.
"""

from __future__ import annotations

import copy
import os
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

from flock.provisioner.errors import MachineError
from flock.provisioner.host import (
    CONFIG_VERSION,
    ENGINE_PORT,
    MANAGER_PORT,
    AuthOptions,
    EngineOptions,
    Host,
    HostOptions,
    SwarmOptions,
)

# Driver keys that only restate the host's own options: rebuilt on every write.
_DERIVED_DRIVER_KEYS = ("MachineName", "StorePath", "SwarmMaster", "SwarmHost",
                        "SwarmDiscovery")
# libmachine/host/migrate.go errConfigFromFuture, with Flock's name for the client.
FUTURE = ("config version is from the future -- you should upgrade your Docker Machine "
          "client")


class ConfigError(MachineError):
    """A config.json that is not a machine record this Flock can read."""


def is_legacy(data: dict[str, Any]) -> bool:
    """Whether `data` is in the layout Flock wrote before it used Docker Machine's."""
    return "ConfigVersion" not in data and "driver_name" in data


def check_version(data: dict[str, Any]) -> int:
    """The record's ConfigVersion; ConfigError for one newer than this Flock reads, or
    one older than 3 (Docker Machine before 0.6: run its own 0.16 once to migrate it)."""
    version = data.get("ConfigVersion", 0)
    if not isinstance(version, int):
        raise ConfigError(f"ConfigVersion {version!r} is not a number")
    if version > CONFIG_VERSION:
        raise ConfigError(FUTURE)
    if version < CONFIG_VERSION:
        raise ConfigError(f"ConfigVersion {version} is older than 3: run Docker Machine 0.16 "
                          "once on this store (`docker-machine ls`) to migrate it")
    return version


# --- paths ----------------------------------------------------------------------------------
def machine_folder(root: Path, name: str) -> Path:
    return root / "machines" / name


def _absolute(path: str, folder: Path) -> str:
    if not path:
        return ""
    return path if PurePosixPath(path).is_absolute() else os.path.normpath(folder / path)


def _relative(path: str, recorded: Path | None) -> str | None:
    """`path` relative to `recorded` when it lies under it; None when it does not."""
    if recorded is None or not path:
        return None
    try:
        return str(PurePosixPath(path).relative_to(PurePosixPath(recorded)))
    except ValueError:
        return None


def _recorded_places(data: dict[str, Any], name: str) -> tuple[Path | None, Path | None]:
    """(store root, machine folder) the record was written in, as Docker Machine's
    migrate.go finds them: Driver.StorePath, else two levels above AuthOptions.StorePath."""
    auth = (data.get("HostOptions") or {}).get("AuthOptions") or {}
    folder = auth.get("StorePath") or ""
    root = (data.get("Driver") or {}).get("StorePath") or ""
    if not root and folder:
        root = str(PurePosixPath(folder).parent.parent)
    if not folder and root:
        folder = str(PurePosixPath(root) / "machines" / name)
    return (Path(root) if root else None, Path(folder) if folder else None)


def _machine_path(path: str, recorded_folder: Path | None) -> str:
    """A path the record names in its own machine folder, relative to it (so it follows
    the store); any other path as it is."""
    rel = _relative(path, recorded_folder)
    return rel if rel is not None else path


def _store_path(path: str, recorded_root: Path | None, default: str) -> str:
    """'' for the store's own certs/<default>, a path under the old root rebased as
    `../../<rel>` (relative to the machine folder), any other path as it is."""
    rel = _relative(path, recorded_root)
    if rel is None:
        return path
    if rel == f"certs/{default}":
        return ""
    return f"../../{rel}"


# --- writing --------------------------------------------------------------------------------
def to_config(host: Host, root: Path) -> dict[str, Any]:
    """The record as config.json holds it, for a store at `root` (absolute)."""
    folder = machine_folder(root, host.name)
    certs = root / "certs"
    opts = host.options
    engine, swarm, auth = opts.engine, opts.swarm, opts.auth
    is_swarm = swarm.agent or swarm.master
    driver: dict[str, Any] = {
        "IPAddress": "", "MachineName": host.name, "SSHUser": "", "SSHPort": 0,
        "SSHKeyPath": "", "StorePath": str(root), "SwarmMaster": swarm.master,
        "SwarmHost": swarm.host if is_swarm else "", "SwarmDiscovery": swarm.discovery,
    }
    driver.update({k: v for k, v in host.driver.items() if k not in _DERIVED_DRIVER_KEYS})
    driver["SSHKeyPath"] = _absolute(str(driver.get("SSHKeyPath") or ""), folder)
    if host.driver_name == "generic":
        driver["EnginePort"] = engine.port   # drivers/generic: GetURL dials it
    doc = {
        "ConfigVersion": CONFIG_VERSION,
        "Driver": driver,
        "DriverName": host.driver_name,
        "HostOptions": {
            "Driver": opts.driver, "Memory": opts.memory, "Disk": opts.disk,
            "EngineOptions": {
                "ArbitraryFlags": list(engine.opts), "Dns": engine.dns,
                "GraphDir": engine.graph_dir, "Env": list(engine.env), "Ipv6": engine.ipv6,
                "InsecureRegistry": list(engine.insecure_registry),
                "Labels": [f"{k}={v}" for k, v in engine.labels.items()],
                "LogLevel": engine.log_level, "StorageDriver": engine.storage_driver,
                "SelinuxEnabled": engine.selinux_enabled, "TlsVerify": engine.tls_verify,
                "RegistryMirror": list(engine.registry_mirror),
                "InstallURL": engine.install_url,
                "Runtime": engine.runtime, "Port": engine.port,
            },
            "SwarmOptions": {
                "IsSwarm": is_swarm, "Address": swarm.addr, "Discovery": swarm.discovery,
                "Agent": swarm.agent, "Master": swarm.master, "Host": swarm.host,
                "Image": swarm.image, "Strategy": swarm.strategy,
                "Heartbeat": swarm.heartbeat, "Overcommit": swarm.overcommit,
                "ArbitraryFlags": list(swarm.opts),
                "ArbitraryJoinFlags": list(swarm.join_opts), "Env": swarm.env,
                "IsExperimental": swarm.experimental,
                "AgentPort": swarm.agent_port, "ManagerPort": swarm.manager_port,
            },
            "AuthOptions": {
                "CertDir": str(certs),
                "CaCertPath": _absolute(auth.store_ca_cert, folder) or str(certs / "ca.pem"),
                "CaPrivateKeyPath": _absolute(auth.store_ca_key, folder)
                or str(certs / "ca-key.pem"),
                "CaCertRemotePath": auth.ca_cert_remote,
                "ServerCertPath": _absolute(auth.server_cert, folder),
                "ServerKeyPath": _absolute(auth.server_key, folder),
                "ClientKeyPath": _absolute(auth.store_client_key, folder)
                or str(certs / "key.pem"),
                "ServerCertRemotePath": auth.server_cert_remote,
                "ServerKeyRemotePath": auth.server_key_remote,
                "ClientCertPath": _absolute(auth.store_client_cert, folder)
                or str(certs / "cert.pem"),
                "ServerCertSANs": list(auth.extra_sans),
                "StorePath": str(folder),
                "ServerIPs": list(auth.server_ips),
            },
            "InstallDir": opts.install_dir,
            "SSHTimeout": opts.ssh_timeout,
            "ProvisionTimeout": opts.provision_timeout,
        },
        "Name": host.name,
        "Error": host.error,
        "Created": host.created,
    }
    return _merged(copy.deepcopy(host.raw), doc)


def _merged(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` over `base`, section by section: keys only `base` has stay, in its order."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _merged(base[key], value)
        else:
            base[key] = value
    return base


# --- reading --------------------------------------------------------------------------------
def _section(data: dict[str, Any], *path: str) -> dict[str, Any]:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{'.'.join(path)} is not an object")
    return value


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _port_of(url: str, default: int) -> int:
    try:
        return urllib.parse.urlsplit(url).port or default
    except ValueError:
        return default


def from_config(data: dict[str, Any], name: str = "") -> Host:
    """The Host a ConfigVersion 3 record describes; ConfigError if it is not one."""
    if not isinstance(data, dict):
        raise ConfigError("not a JSON object")
    check_version(data)
    name = str(data.get("Name") or name)
    driver_name = data.get("DriverName")
    if not name or not isinstance(driver_name, str) or not driver_name:
        raise ConfigError("Name and DriverName are required")
    root, folder = _recorded_places(data, name)
    host_opts = _section(data, "HostOptions")
    e = _section(data, "HostOptions", "EngineOptions")
    s = _section(data, "HostOptions", "SwarmOptions")
    a = _section(data, "HostOptions", "AuthOptions")
    drv = dict(_section(data, "Driver"))
    try:
        engine = EngineOptions(
            runtime=str(e.get("Runtime") or "docker"),
            port=int(e.get("Port") or drv.get("EnginePort") or ENGINE_PORT),
            labels=_labels(_strings(e.get("Labels"))), opts=_strings(e.get("ArbitraryFlags")),
            env=_strings(e.get("Env")),
            dns=_strings(e["Dns"]) if isinstance(e.get("Dns"), list) else None,
            graph_dir=str(e.get("GraphDir") or ""), ipv6=bool(e.get("Ipv6")),
            insecure_registry=_strings(e.get("InsecureRegistry")),
            log_level=str(e.get("LogLevel") or ""),
            storage_driver=str(e.get("StorageDriver") or ""),
            selinux_enabled=bool(e.get("SelinuxEnabled")),
            tls_verify=bool(e.get("TlsVerify", True)),
            registry_mirror=_strings(e.get("RegistryMirror")),
            install_url=str(e.get("InstallURL") or ""))
        swarm_host = str(s.get("Host") or f"tcp://0.0.0.0:{MANAGER_PORT}")
        swarm = SwarmOptions(
            agent=bool(s.get("Agent")), master=bool(s.get("Master")),
            discovery=str(s.get("Discovery") or ""),
            strategy=str(s.get("Strategy") or "spread"),
            opts=_strings(s.get("ArbitraryFlags")), addr=str(s.get("Address") or ""),
            agent_port=int(s.get("AgentPort") or SwarmOptions.agent_port),
            manager_port=int(s.get("ManagerPort") or _port_of(swarm_host, MANAGER_PORT)),
            host=swarm_host, image=str(s.get("Image") or ""),
            heartbeat=int(s.get("Heartbeat") or 0), overcommit=s.get("Overcommit") or 0,
            join_opts=_strings(s.get("ArbitraryJoinFlags")),
            env=_strings(s["Env"]) if isinstance(s.get("Env"), list) else None,
            experimental=bool(s.get("IsExperimental")))
        if s.get("IsSwarm") and not (swarm.agent or swarm.master):
            swarm.agent = True   # an IsSwarm record from before Agent existed
        auth = AuthOptions(
            server_cert=_machine_path(str(a.get("ServerCertPath") or ""), folder)
            or AuthOptions.server_cert,
            server_key=_machine_path(str(a.get("ServerKeyPath") or ""), folder)
            or AuthOptions.server_key,
            extra_sans=_strings(a.get("ServerCertSANs")),
            server_ips=_strings(a.get("ServerIPs")),
            store_ca_cert=_store_path(str(a.get("CaCertPath") or ""), root, "ca.pem"),
            store_ca_key=_store_path(str(a.get("CaPrivateKeyPath") or ""), root, "ca-key.pem"),
            store_client_cert=_store_path(str(a.get("ClientCertPath") or ""), root,
                                          "cert.pem"),
            store_client_key=_store_path(str(a.get("ClientKeyPath") or ""), root, "key.pem"),
            ca_cert_remote=str(a.get("CaCertRemotePath") or ""),
            server_cert_remote=str(a.get("ServerCertRemotePath") or ""),
            server_key_remote=str(a.get("ServerKeyRemotePath") or ""))
        options = HostOptions(
            engine=engine, swarm=swarm, auth=auth,
            install_dir=str(host_opts.get("InstallDir") or HostOptions.install_dir),
            ssh_timeout=float(host_opts.get("SSHTimeout") or HostOptions.ssh_timeout),
            provision_timeout=float(host_opts.get("ProvisionTimeout")
                                    or HostOptions.provision_timeout),
            driver=str(host_opts.get("Driver") or ""), memory=int(host_opts.get("Memory") or 0),
            disk=int(host_opts.get("Disk") or 0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a field has the wrong type ({exc})") from None
    for key in _DERIVED_DRIVER_KEYS:
        drv.pop(key, None)
    if drv.get("SSHKeyPath"):
        drv["SSHKeyPath"] = _machine_path(str(drv["SSHKeyPath"]), folder)
    return Host(name=name, driver_name=driver_name, driver=drv, options=options,
                error=str(data.get("Error") or ""), created=str(data.get("Created") or ""),
                version=CONFIG_VERSION, raw=copy.deepcopy(data))


def from_any(data: Any, name: str = "") -> tuple[Host, bool]:
    """(the Host, whether `data` was in Flock's old layout and needs writing anew)."""
    if isinstance(data, dict) and is_legacy(data):
        try:
            return Host.from_dict(data), True
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigError(f"an old Flock record that cannot be read ({exc})") from None
    return from_config(data, name), False

"""`_ping`, `version`, `info`: what the runtime says about itself and its machine."""

from __future__ import annotations

import os
import platform
import socket

from aiohttp import web

from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.timefmt import now_rfc
from flock.docker_compat.api_version import API_VERSION, MIN_API_VERSION

VERSION = "flock-exec/0.1.0"
ENGINE_HEADERS = {"Api-Version": API_VERSION, "Docker-Experimental": "false",
                  "Ostype": "linux", "Server": f"Docker/{VERSION} (linux)"}
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def machine_memory() -> int:
    """The smaller of the machine's memory and the memory cgroup's limit."""
    total = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = int(open("/sys/fs/cgroup/memory/memory.limit_in_bytes").read())
        if 0 < limit < total:
            total = limit
    except (OSError, ValueError):
        pass
    return total


def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def operating_system() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def ping(request: web.Request) -> web.Response:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
    body = None if request.method == "HEAD" else "OK"
    return web.Response(text=body, headers=headers, content_type="text/plain")


async def version(request: web.Request) -> web.Response:
    kernel = platform.release()
    details = {"ApiVersion": API_VERSION, "Arch": ARCH, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "", "KernelVersion": kernel,
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return json_response({
        "Platform": {"Name": "Flock exec runtime"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": ARCH,
        "KernelVersion": kernel, "BuildTime": ""})


def info_body(core) -> dict:
    counts = core.containers.counts()
    isolated = core.isolated
    warnings = [] if isolated else [
        "WARNING: the exec runtime runs containers as plain processes here (no namespaces, "
        "no chroot): it needs root and permission to unshare namespaces"]
    isolation_name = "namespaces+chroot" if isolated else "none"
    return {
        "ID": core.engine_id, "Containers": counts["total"],
        "ContainersRunning": counts["running"], "ContainersPaused": 0,
        "ContainersStopped": counts["stopped"], "Images": len(core.images.records),
        "Driver": "exec", "DriverStatus": [["Root Dir", str(core.state_dir / "images")]],
        "SystemStatus": None,
        "Plugins": {"Volume": ["local"], "Network": network_plugins(core), "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": core.cgroups_memory, "SwapLimit": False, "KernelMemory": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": False,
        "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False, "NGoroutines": 0, "SystemTime": now_rfc(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
        "NEventsListener": len(core.bus.queues), "KernelVersion": platform.release(),
        "OperatingSystem": operating_system(), "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress": "",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": core.cpus or machine_cpus(), "MemTotal": core.memory or machine_memory(),
        "GenericResources": None, "DockerRootDir": str(core.state_dir), "HttpProxy": "",
        "HttpsProxy": "", "NoProxy": "", "Name": core.node_name or socket.gethostname(),
        "Labels": [f"{k}={v}" for k, v in sorted(core.labels.items())],
        "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": {"exec": {"path": "flock.agent.runtimes.exec.shim"}}, "DefaultRuntime": "exec",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": isolation_name, "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [f"name=flock-exec,isolation={isolation_name}"],
        "Warnings": warnings + network_warnings(core),
    }


def network_plugins(core) -> list[str]:
    network = getattr(core.containers, "network", None)
    return ["bridge", "host", "null"] if network is not None and network.enabled else \
        ["host"]


def network_warnings(core) -> list[str]:
    """Why containers share the host's network, or have no outbound NAT."""
    network = getattr(core.containers, "network", None)
    return [f"WARNING: exec network: {network.note}"] if network is not None and \
        network.note else []


async def info(request: web.Request) -> web.Response:
    return json_response(info_body(request.app[CORE]))


async def no_networks(request: web.Request) -> web.Response:
    """The exec runtime has no networks, volumes or plugins: empty lists, 404 for a name, so
    that `docker inspect x` moves on to its next kind of object."""
    kind = request.match_info.get("kind", "")
    name = request.match_info.get("name")
    if name is not None:
        message = {"networks": f"network {name} not found",
                   "volumes": f"get {name}: no such volume",
                   "plugins": f'plugin "{name}" not found'}[kind]
        return json_response({"message": message}, status=404)
    if kind == "volumes":
        return json_response({"Volumes": [], "Warnings": []})
    return json_response([])


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/_ping", ping),
        ("HEAD", "/_ping", ping),
        ("GET", "/version", version),
        ("GET", "/info", info),
        ("GET", "/{kind:networks|plugins}", no_networks),
        ("GET", "/{kind:networks}/{name}", no_networks),
        ("GET", "/{kind:plugins}/{name}/json", no_networks),
    ]

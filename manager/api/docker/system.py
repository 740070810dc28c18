"""`/_ping`, `/version` and `/info`: the cluster presented as one engine.

`/info` keeps classic Swarm's layout: totals at the top, and the per-node story in
`SystemStatus` as a list of pairs that `docker info` prints as it comes.
"""

from __future__ import annotations

import platform
import time

from aiohttp import web

from flock.common.version import __version__
from flock.docker_compat.api_version import MIN_API_VERSION
from flock.docker_compat.humanize import bytes_size
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import json_answer
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.state import ClusterState, NodeUsage

# Classic Swarm answers `swarm/1.2.9` (api/handlers.go getVersion, getInfo), and tools
# tell it from an engine by that prefix (`Version.startswith("swarm")`; classic's own
# test/integration/api/version.bats: `^swarm/[0-9]+\.[0-9]+\.[0-9]+.*$`). Flock keeps the
# prefix and says what it is after it, as a product list does ("swarm/1.2.9 flock/0.1.0").
SWARM_VERSION = "1.2.9"
SERVER_VERSION = f"swarm/{SWARM_VERSION} flock/{__version__}"
_RUNNING = ("running", "restarting")


def cpu_count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def container_counts(containers: list[Container]) -> tuple[int, int, int]:
    """(running, paused, stopped) as the Engine counts them."""
    paused = sum(1 for c in containers if c.state == "paused")
    running = sum(1 for c in containers if c.state in _RUNNING)
    return running, paused, len(containers) - running - paused


def node_status(node: Node, containers: list[Container], used_cpus: float,
                used_memory: int) -> list[list[str]]:
    """The pairs one node contributes to SystemStatus."""
    running, paused, stopped = container_counts(containers)
    labels = ", ".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
    updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(node.updated_at))
    rows = [
        [" " + (node.name or "(unknown)"), node.addr],
        ["  └ ID", node.id],
        ["  └ Status", node.health.capitalize()],
        ["  └ Containers",
         f"{len(containers)} ({running} Running, {paused} Paused, {stopped} Stopped)"],
        ["  └ Reserved CPUs", f"{cpu_count(used_cpus)} / {node.cpus}"],
        ["  └ Reserved Memory", f"{bytes_size(used_memory)} / {bytes_size(node.memory)}"],
        ["  └ Labels", labels],
    ]
    if node.error:
        rows.append(["  └ Error", node.error])
    rows.append(["  └ UpdatedAt", updated])
    rows.append(["  └ ServerVersion", node.server_version])
    return rows


class NodeRows:
    """Node ID -> its SystemStatus rows. At 10,000 nodes formatting every node's rows
    took most of a `docker info`, and between two calls few nodes change. A ClusterState
    listener (`state.attach`): any change to a node, its containers or its reservations
    drops its rows; the fields the sync loop changes in place (health, error, the time
    of the last beat) are compared at each use."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        self._rows: dict[str, tuple[Node, tuple, list[list[str]]]] = {}

    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        self._rows.pop(node_id, None)

    def container_changed(self, container_id: str, name: str, node_id: str,
                          added: bool) -> None:
        self._rows.pop(node_id, None)

    def container_rewritten(self, container_id: str, node_id: str) -> None:
        self._rows.pop(node_id, None)

    def rows(self, node: Node) -> list[list[str]]:
        in_place = (node.health, node.error, int(node.updated_at))
        cached = self._rows.get(node.id)
        if cached is not None and cached[0] is node and cached[1] == in_place:
            return cached[2]
        usage = self._state.usage(node.id)
        made = node_status(node, self._state.containers(node.id), usage.cpus, usage.memory)
        self._rows[node.id] = (node, in_place, made)
        return made


def system_status(state: ClusterState, strategy: str, filters: list[str],
                  role: list[list[str]] | None = None,
                  security: list[list[str]] | None = None) -> list[list[str]]:
    """Classic Swarm's SystemStatus: role, strategy, filters, then every node by name.
    `role`: the Role (and Primary) rows of a replicated manager; `security`: the TLS
    rows (cert expiry) of a manager with TLS on."""
    nodes = sorted(state.nodes(), key=lambda n: (n.name, n.addr))
    rows = [*(role or [["Role", "primary"]]), *(security or []), ["Strategy", strategy],
            ["Filters", ", ".join(filters)], ["Nodes", str(len(nodes))]]
    cache = state.attach("info-rows", NodeRows)
    for node in nodes:
        rows += cache.rows(node)
    return rows


def info_body(call: Call) -> dict:
    this, scheduler = call.cluster.this, call.cluster.scheduler
    state = call.state
    containers = state.containers()
    running, paused, stopped = container_counts(containers)
    nodes = state.nodes()
    uname = platform.uname()
    return {
        "ID": "", "Name": this.name, "ServerVersion": SERVER_VERSION,
        "Containers": len(containers), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": stopped,
        "Images": sum(n.images for n in nodes),
        "Driver": "", "DriverStatus": [],
        "SystemStatus": system_status(state, scheduler.strategy_name,
                                      scheduler.filter_names, this.role_rows(),
                                      this.tls_rows()),
        "Plugins": {"Volume": [], "Network": [], "Authorization": [], "Log": []},
        "NCPU": sum(n.cpus for n in nodes), "MemTotal": sum(n.memory for n in nodes),
        "OperatingSystem": _os_name(), "OSType": "linux", "Architecture": uname.machine,
        "KernelVersion": uname.release, "IndexServerAddress": "https://index.docker.io/v1/",
        "Labels": [], "ExperimentalBuild": False, "DockerRootDir": "", "Debug": False,
        "NFd": 0, "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()),
        "LoggingDriver": "", "CgroupDriver": "none", "NEventsListener": 0,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "SecurityOptions": [],
        "Warnings": [f"node {n.name}: {n.error}" for n in nodes if n.error]
        + this.security_warnings(),
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": []},
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def engine_headers(call: Call) -> dict[str, str]:
    """The fields the engine puts on its answers' heads, for an answer the manager writes
    itself (a ping, a wait's head: containers.wait)."""
    return {"API-Version": call.cluster.this.api_version(), "OSType": "linux",
            "Docker-Experimental": "false"}


def _ping_headers(call: Call) -> dict[str, str]:
    return {**engine_headers(call), "Cache-Control": "no-cache, no-store, "
            "must-revalidate", "Pragma": "no-cache", "Server": f"Flock/{__version__}"}


async def ping(call: Call) -> web.StreamResponse:
    body = None if call.request.method == "HEAD" else b"OK"
    headers = _ping_headers(call)
    headers["Content-Type"] = "text/plain; charset=utf-8"  # the engine's, on HEAD too
    return web.Response(body=body, headers=headers)


async def version(call: Call) -> web.StreamResponse:
    uname = platform.uname()
    details = {
        "ApiVersion": call.cluster.this.api_version(), "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "n/a", "Os": "linux", "Arch": _go_arch(uname.machine),
        "KernelVersion": uname.release, "BuildTime": "",
    }
    body = {"Platform": {"Name": "Flock"}, "Version": SERVER_VERSION, **details,
            "Components": [{"Name": "Engine", "Version": SERVER_VERSION,
                            "Details": {k: str(v) for k, v in details.items()}}]}
    return json_answer(body, headers={"API-Version": call.cluster.this.api_version()})


def _go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


async def info(call: Call) -> web.StreamResponse:
    return json_answer(info_body(call))


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
]

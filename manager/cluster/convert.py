"""What agents report, turned into the manager's records. Pure: no I/O.

The engine's answers (inspect, the containers/json entry, /info through NodeInfo) carry
more than the scheduler needs and in the engine's own shapes; these functions pick out
reservations, host ports and names, and keep what `docker ps` must show later.
"""

from __future__ import annotations

import time
from datetime import datetime

from flock.manager.cluster import cpu_shares
from flock.manager.cluster.labels import wants_reschedule
from flock.manager.cluster.model import PENDING, Container, Node

# Key of the state times kept inside a Container's summary (never shown to clients).
STATE_KEY = "FlockState"


def node_id(engine_id: str, addr: str) -> str:
    """Classic Swarm's `ID|addr`: engines cloned from one image (or two engines on one
    machine) share an engine ID, the address tells them apart and stays stable."""
    return f"{engine_id}|{addr}" if engine_id else addr


def node_from_info(info, addr: str) -> Node:
    """A Node from the agent's NodeInfo; the standard label keys are filled in."""
    labels = dict(info.labels)
    for key, value in (("storagedriver", info.storage_driver),
                       ("executiondriver", info.execution_driver),
                       ("kernelversion", info.kernel_version),
                       ("operatingsystem", info.os), ("ostype", info.ostype)):
        if value:
            labels.setdefault(key, value)
    return Node(
        id=node_id(info.id, addr), name=info.name or addr, addr=addr, cpus=int(info.cpus),
        memory=int(info.memory), labels=labels, health=PENDING, runtime=info.runtime,
        server_version=info.server_version, api_version=info.api_version,
        min_api_version=info.min_api_version, updated_at=time.time(),
        images=int(info.images), availability=info.availability or "active",
    )


def reserved_cpus(host: dict, node_cpus: int) -> float:
    """Classic semantics: `-c N` reserves N CPUs, read back from the shares the engine
    got for them on this node of `node_cpus` (cpu_shares.py); NanoCpus that many/1e9."""
    shares = cpu_shares.reserved_cpus(host.get("CpuShares") or 0, node_cpus)
    nano = host.get("NanoCpus") or 0
    return float(max(shares, nano / 1e9))


def create_body(inspect: dict, node_cpus: int) -> dict:
    """A `POST /containers/create` body that makes the container of `inspect` (on a
    node of `node_cpus` CPUs) again: kept for containers that may be rescheduled, and
    the template of a global group's next copy.

    Config is the create body's own shape; the Hostname the engine derived from the old
    ID is dropped so that the new container gets its own. The engine's CpuShares go
    back to the CPUs they reserve (`-c N`), for the new node's engine to get its own
    shares for N."""
    body = dict(inspect.get("Config") or {})
    if body.get("Hostname") and body["Hostname"] == (inspect.get("Id") or "")[:12]:
        body.pop("Hostname")
    body["HostConfig"] = host = dict(inspect.get("HostConfig") or {})
    if host.get("CpuShares"):
        host["CpuShares"] = cpu_shares.reserved_cpus(host["CpuShares"], node_cpus)
    return body


def host_ports(config: dict, host: dict) -> list[tuple[int, str]]:
    """Host ports the container holds: fixed PortBindings, or ExposedPorts on --net=host."""
    ports: list[tuple[int, str]] = []
    if host.get("NetworkMode") == "host":
        for key in config.get("ExposedPorts") or {}:
            number, _, proto = key.partition("/")
            if number.isdigit():
                ports.append((int(number), proto or "tcp"))
        return ports
    for key, bindings in (host.get("PortBindings") or {}).items():
        _, _, proto = key.partition("/")
        for binding in bindings or []:
            text = str((binding or {}).get("HostPort") or "")
            if text.isdigit() and int(text) > 0:
                ports.append((int(text), proto or "tcp"))
    return list(dict.fromkeys(ports))


def _epoch(text: str) -> float:
    """Seconds since the epoch of an Engine timestamp; 0 for the zero time or junk."""
    try:
        value = datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except (ValueError, TypeError):
        return 0.0
    return max(value, 0.0)


def state_times(state: dict) -> dict:
    """What `docker ps` needs to say "Up 5 minutes" at any later time (see STATE_KEY)."""
    health = state.get("Health") or {}
    return {"Status": state.get("Status", ""), "StartedAt": _epoch(state.get("StartedAt", "")),
            "FinishedAt": _epoch(state.get("FinishedAt", "")),
            "ExitCode": state.get("ExitCode", 0), "Health": health.get("Status", "")}


def container_from_engine(node_id: str, summary: dict, inspect: dict,
                          node_cpus: int) -> Container:
    """The manager's record of a container from the engine's list entry and inspect,
    on a node of `node_cpus` CPUs (what its CpuShares reserve depends on them).

    The list entry is kept as the engine gave it, plus STATE_KEY: the state's times, so
    that the Status text can be recomputed when `docker ps` asks, not frozen."""
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    state = inspect.get("State") or {}
    created = summary.get("Created")
    summary = dict(summary)
    summary[STATE_KEY] = state_times(state)
    return Container(
        id=inspect["Id"],
        name=(inspect.get("Name") or "").lstrip("/"),
        node_id=node_id,
        image=config.get("Image") or summary.get("Image", ""),
        image_id=inspect.get("Image", ""),
        labels=dict(config.get("Labels") or {}),
        reserved_cpus=reserved_cpus(host, node_cpus),
        reserved_memory=int(host.get("Memory") or 0),
        state=state.get("Status") or summary.get("State") or "created",
        ports=host_ports(config, host),
        network_mode=host.get("NetworkMode", ""),
        summary=summary,
        created=float(created) if isinstance(created, int | float) else _epoch(
            inspect.get("Created", "")),
        create_config=(create_body(inspect, node_cpus)
                       if wants_reschedule(config.get("Labels")) else None),
    )


def summary_from_inspect(inspect: dict) -> dict:
    """A list entry built from inspect, for when the list call misses the container."""
    config = inspect.get("Config") or {}
    return {
        "Id": inspect.get("Id", ""), "Names": [inspect.get("Name", "")],
        "Image": config.get("Image", ""), "ImageID": inspect.get("Image", ""),
        "Command": " ".join([inspect.get("Path", ""), *(inspect.get("Args") or [])]).strip(),
        "Created": int(_epoch(inspect.get("Created", ""))), "Ports": [],
        "Labels": config.get("Labels") or {},
        "State": (inspect.get("State") or {}).get("Status", ""), "Status": "",
        "HostConfig": {"NetworkMode": (inspect.get("HostConfig") or {}).get("NetworkMode", "")},
        "NetworkSettings": {"Networks": (inspect.get("NetworkSettings") or {}).get(
            "Networks") or {}},
        "Mounts": inspect.get("Mounts") or [],
    }


def image_refs(images: list) -> list[str]:
    refs: list[str] = []
    for image in images:
        if not isinstance(image, dict):
            continue
        refs.extend(t for t in image.get("RepoTags") or [] if t != "<none>:<none>")
        refs.extend(d for d in image.get("RepoDigests") or [] if not d.startswith("<none>"))
        if image.get("Id"):
            refs.append(image["Id"])
    return refs


def event_target(event: dict) -> tuple[str, str, str]:
    """(type, action, id) of a Docker event, new (Type/Action/Actor) or old (status/id)."""
    kind = event.get("Type") or ("container" if event.get("from") else "image")
    action = (event.get("Action") or event.get("status") or "").split(":", 1)[0].strip()
    actor = event.get("Actor") or {}
    return kind, action, actor.get("ID") or event.get("id") or ""

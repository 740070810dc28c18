"""The Engine's JSON shapes for hollow containers: inspect, the `ps` entry and filters.

Status texts, name/label filters and the network block come from the exec runtime's
views, so both runtimes answer alike."""

from __future__ import annotations

from collections.abc import Iterable

from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import container_matches
from flock.agent.runtimes.exec.supervisor import RunState
from flock.agent.runtimes.exec.views import network_settings, status_text
from flock.agent.runtimes.hollow.store import HollowContainer, HollowNode, image_id
from flock.docker_compat.ps_filters import STATUSES
from flock.docker_compat.regexp import filter_matches


def run_state(c: HollowContainer) -> RunState:
    return RunState(status=c.status, pid=1 if c.running else 0,
                    exit_code=c.exit_code, started_at=c.started_at,
                    finished_at=c.finished_at)


def _ports(c: HollowContainer) -> dict:
    """NetworkSettings.Ports of a running container: its fixed PortBindings."""
    if not c.running:
        return {}
    return {key: [{"HostIp": b.get("HostIp") or "0.0.0.0", "HostPort": str(b.get("HostPort"))}
                  for b in (bindings or [])]
            for key, bindings in (c.host_config.get("PortBindings") or {}).items()}


def inspect(c: HollowContainer) -> dict:
    cmd = c.command()
    network = network_settings()
    network["Ports"] = _ports(c)
    return {
        "Id": c.id, "Created": c.created, "Path": cmd[0] if cmd else "",
        "Args": cmd[1:],
        "State": {"Status": c.status, "Running": c.running, "Paused": False,
                  "Restarting": False, "OOMKilled": False, "Dead": False,
                  "Pid": 1 if c.running else 0, "ExitCode": c.exit_code, "Error": "",
                  "StartedAt": c.started_at, "FinishedAt": c.finished_at},
        "Image": image_id(c.image), "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
        "LogPath": "", "Name": f"/{c.name}", "RestartCount": 0, "Driver": "hollow",
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None, "HostConfig": c.host_config,
        "GraphDriver": {"Name": "hollow", "Data": {}}, "Mounts": [], "Config": c.config,
        "NetworkSettings": network,
    }


def summary(c: HollowContainer) -> dict:
    ports = [{"IP": b["HostIp"], "PrivatePort": int(key.partition("/")[0]),
              "PublicPort": int(b["HostPort"]), "Type": key.partition("/")[2] or "tcp"}
             for key, bindings in _ports(c).items() for b in bindings
             if key.partition("/")[0].isdigit() and b["HostPort"].isdigit()]
    return {
        "Id": c.id, "Names": [f"/{c.name}"], "Image": c.image, "ImageID": image_id(c.image),
        "Command": " ".join(c.command()), "Created": c.created_ns // 10**9, "Ports": ports,
        "Labels": c.config.get("Labels") or {}, "State": c.status,
        "Status": status_text(run_state(c)),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": {}}, "Mounts": [],
    }


def _matches(c: HollowContainer, filters: dict[str, list[str]]) -> bool:
    return container_matches(filters, {
        "id": lambda v: c.id.startswith(v),
        "name": lambda v: filter_matches(v, f"/{c.name}"),
        "status": lambda v: c.status == v,
        "exited": lambda v: c.status == "exited" and str(c.exit_code) == v,
        "ancestor": lambda v: v in (c.image, image_id(c.image)),
    }, c.config.get("Labels") or {})


def _candidates(node: HollowNode, filters: dict[str, list[str]]) -> Iterable[HollowContainer]:
    """The containers an `id` filter of full IDs can match (a full ID is a prefix of
    itself only): the manager's read of one container need not walk the whole node."""
    ids = filters.get("id")
    if ids and all(len(v) == 64 for v in ids):
        return [c for v in dict.fromkeys(ids) if (c := node.containers.get(v)) is not None]
    return node.containers.values()


def listing(node: HollowNode, all_: bool, limit: int,
            filters: dict[str, list[str]]) -> list[dict]:
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise bad_request(f"Invalid filter 'status={value}'")
    for value in filters.get("exited", []):
        if not value.lstrip("-").isdigit():
            raise bad_request(f"Invalid filter 'exited={value}'")
    bounds = {key: node.get(filters[key][0]).created_ns for key in ("before", "since")
              if filters.get(key)}
    show_all = all_ or limit > 0 or "status" in filters or "exited" in filters
    chosen = []
    for c in sorted(_candidates(node, filters), key=lambda c: c.created_ns, reverse=True):
        if "before" in bounds and c.created_ns >= bounds["before"]:
            continue
        if "since" in bounds and c.created_ns <= bounds["since"]:
            continue
        if (show_all or c.running) and _matches(c, filters):
            chosen.append(summary(c))
        if limit > 0 and len(chosen) >= limit:
            break
    return chosen

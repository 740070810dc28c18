"""The Engine's JSON shapes for containers: inspect, the `ps` list and its filters."""

from __future__ import annotations

import time

from flock.agent.runtimes.exec import container_mounts, health
from flock.agent.runtimes.exec.containers import ContainerManager
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import container_matches
from flock.agent.runtimes.exec.store import ContainerRecord, folder_size
from flock.agent.runtimes.exec.supervisor import RunState
from flock.agent.runtimes.exec.timefmt import parse_rfc3339nano
from flock.docker_compat.humanize import human_duration
from flock.docker_compat.ps_filters import STATUSES
from flock.docker_compat.regexp import filter_matches


def network_settings() -> dict:
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": {}}


def _network(manager: ContainerManager, record: ContainerRecord) -> dict:
    if manager.network is None:
        return network_settings()
    return manager.network.settings(record, manager.state(record).pid)


def inspect(manager: ContainerManager, record: ContainerRecord) -> dict:
    state = manager.state(record)
    paused = manager.paused(record)
    folder = manager.store.dir(record.id)
    return {
        "Id": record.id, "Created": record.created, "Path": record.path,
        "Args": record.args,
        "State": {"Status": "paused" if paused else state.status, "Running": state.running,
                  "Paused": paused,
                  "Restarting": False, "OOMKilled": state.oom_killed, "Dead": False,
                  "Pid": state.pid, "ExitCode": state.exit_code, "Error": state.error,
                  "StartedAt": state.started_at, "FinishedAt": state.finished_at,
                  **_health(manager, record)},
        "Image": record.image_id, "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
        "LogPath": str(manager.store.log_path(record.id)), "Name": f"/{record.name}",
        "RestartCount": record.restart_count, "Driver": "exec", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": record.host_config,
        "GraphDriver": {"Name": "exec", "Data": {"UpperDir": str(folder / "upper"),
                                                 "MergedDir": str(folder / "rootfs")}},
        "Mounts": container_mounts.inspect_entries(record, manager.volumes),
        "Config": record.config, "NetworkSettings": _network(manager, record),
    }


def _health(manager: ContainerManager, record: ContainerRecord) -> dict:
    """State.Health, for a container with a check that has started."""
    if health.effective(record.config) is None:
        return {}
    state = health.load(manager.store.dir(record.id))
    if state is None and manager.state(record).running:
        state = health.starting(None)  # the monitor writes it within a poll
    return {"Health": state} if state else {}


def health_status(manager: ContainerManager, record: ContainerRecord) -> str:
    """starting | healthy | unhealthy, "none" without a check (the `health` filter)."""
    return (_health(manager, record).get("Health") or {}).get("Status") or "none"


def _health_suffix(manager: ContainerManager, record: ContainerRecord,
                   state: RunState) -> str:
    status = health_status(manager, record)
    return health.ps_suffix(status) if state.running and status != "none" else ""


def status_text(state: RunState) -> str:
    now = time.time()
    if state.status == "running":
        return "Up " + human_duration(now - parse_rfc3339nano(state.started_at) / 1e9)
    if state.status == "exited":
        ago = human_duration(now - parse_rfc3339nano(state.finished_at) / 1e9)
        return f"Exited ({state.exit_code}) {ago} ago"
    return "Created"


def summary(manager: ContainerManager, record: ContainerRecord, size: bool) -> dict:
    state = manager.state(record)
    image = manager.images.find(record.image_ref) if manager.images else None
    shown = record.image_ref if image is not None and image.id == record.image_id \
        else record.image_id
    entry = {
        "Id": record.id, "Names": [f"/{record.name}"], "Image": shown,
        "ImageID": record.image_id, "Command": " ".join([record.path, *record.args]),
        "Created": parse_rfc3339nano(record.created) // 10**9,
        "Ports": manager.network.ps_ports(record) if manager.network else [],
        "Labels": record.config.get("Labels") or {},
        "State": "paused" if manager.paused(record) else state.status,
        "Status": status_text(state) + (" (Paused)" if manager.paused(record) else
                                        _health_suffix(manager, record, state)),
        "HostConfig": {"NetworkMode": record.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": _network(manager, record)["Networks"]},
        "Mounts": container_mounts.inspect_entries(record, manager.volumes),
    }
    if size:
        base = manager.images.find(record.image_id) if manager.images else None
        entry["SizeRw"] = folder_size(manager.store.dir(record.id) / "upper")
        entry["SizeRootFs"] = entry["SizeRw"] + (base.size if base else 0)
    return entry


def _matches(manager: ContainerManager, record: ContainerRecord, state: RunState,
             filters: dict[str, list[str]]) -> bool:
    return container_matches(filters, {
        "id": lambda v: record.id.startswith(v),
        "name": lambda v: filter_matches(v, f"/{record.name}"),
        "status": lambda v: ("paused" if manager.paused(record) else state.status) == v,
        "exited": lambda v: state.status == "exited" and str(state.exit_code) == v,
        "ancestor": lambda v: _ancestor(manager, record, v),
        "health": lambda v: health_status(manager, record) == v,
        "volume": lambda v: container_mounts.matches_filter(record, v),
    }, record.config.get("Labels") or {})


def _ancestor(manager: ContainerManager, record: ContainerRecord, ref: str) -> bool:
    image = manager.images.find(ref) if manager.images else None
    return image is not None and image.id == record.image_id


def _created(record: ContainerRecord) -> int:
    return parse_rfc3339nano(record.created)


def listing(manager: ContainerManager, all_: bool, limit: int, size: bool,
            filters: dict[str, list[str]]) -> list[dict]:
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise bad_request(f"Invalid filter 'status={value}'")
    for value in filters.get("exited", []):
        if not value.lstrip("-").isdigit():
            raise bad_request(f"Invalid filter 'exited={value}'")
    records = sorted(manager.records.values(), key=_created, reverse=True)
    bounds = {key: _created(manager.get(filters[key][0])) for key in ("before", "since")
              if filters.get(key)}
    chosen = []
    for record in records:
        if "before" in bounds and _created(record) >= bounds["before"]:
            continue
        if "since" in bounds and _created(record) <= bounds["since"]:
            continue
        state = manager.state(record)
        show_all = all_ or limit > 0 or "status" in filters or "exited" in filters
        if not show_all and not state.running:
            continue
        if _matches(manager, record, state, filters):
            chosen.append(summary(manager, record, size))
        if limit > 0 and len(chosen) >= limit:
            break
    return chosen

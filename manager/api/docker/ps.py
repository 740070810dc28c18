"""`docker ps` from memory: the Engine's filter semantics over the cluster's containers.

Pure functions over Container records and their cached list entries, so that listing
ten thousand containers never touches an agent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from flock.docker_compat.humanize import human_duration
from flock.docker_compat.ps_filters import LIST_FILTERS, STATUSES
from flock.docker_compat.regexp import filter_matches
from flock.manager.api.docker.errors import DockerError, parse_json_body
from flock.manager.cluster.convert import STATE_KEY
from flock.manager.cluster.model import Container, Node

HEALTH = frozenset({"starting", "healthy", "unhealthy", "none"})
KEYS = LIST_FILTERS | {"node"}
_EXIT = re.compile(r"^Exited \((-?\d+)\)")
TASK_LABEL = "com.docker.swarm.task"


def parse_filters(raw: str) -> dict[str, list[str]]:
    """The `filters` query parameter: {"key": {"v": true}} or {"key": ["v"]}."""
    if not raw:
        return {}
    data = parse_json_body(raw.encode(), "filters")  # a 400 for too deep too, never a 500
    if not isinstance(data, dict):
        raise DockerError(400, "invalid filter: expected a JSON object of key -> values")
    filters: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DockerError(400, f"invalid filter '{key}': values must be strings")
        filters[key] = values
    return filters


def validate(filters: Mapping[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in KEYS:
            raise DockerError(400, f"Invalid filter '{key}'")
        for value in values:
            if key == "status" and value not in STATUSES:
                raise DockerError(400, f"Invalid filter 'status={value}'")
            if key == "health" and value not in HEALTH:
                raise DockerError(
                    400, f"Unrecognised filter value for health: {value}")
            if key == "exited" and not re.fullmatch(r"-?\d+", value):
                raise DockerError(400, f"Invalid filter 'exited={value}'")
            if key == "is-task" and value not in ("true", "false"):
                raise DockerError(400, f"Invalid filter 'is-task={value}'")


def _search(patterns: Iterable[str], text: str) -> bool:
    """The Engine's Args.Match: any value, exactly or as an unanchored RE2 regex."""
    return any(filter_matches(pattern, text) for pattern in patterns)


def _labels_match(wanted: Iterable[str], labels: Mapping[str, str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _exit_code(summary: Mapping) -> int | None:
    times = summary.get(STATE_KEY)
    if times is not None:
        return int(times.get("ExitCode") or 0)
    found = _EXIT.match(summary.get("Status") or "")
    return int(found.group(1)) if found else None


def _health(summary: Mapping) -> str:
    times = summary.get(STATE_KEY)
    if times is not None:
        return times.get("Health") or "none"
    status = summary.get("Status") or ""
    if "(health: starting)" in status:
        return "starting"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(healthy)" in status:
        return "healthy"
    return "none"


def _ancestor(wanted: Iterable[str], container: Container) -> bool:
    image = container.image
    image_id = container.image_id
    for ref in wanted:
        bare = image_id.removeprefix("sha256:")
        if ref in (image, image_id) or (len(ref) >= 4 and bare.startswith(
                ref.removeprefix("sha256:"))):
            return True
        if ":" not in ref.rsplit("/", 1)[-1] and image in (f"{ref}:latest",):
            return True
        if ref.endswith(":latest") and image == ref[: -len(":latest")]:
            return True
    return False


def _ports(summary: Mapping, key: str) -> set[str]:
    found = set()
    for port in summary.get("Ports") or []:
        number = port.get(key)
        if number:
            found.add(f"{number}/{port.get('Type', 'tcp')}")
            found.add(str(number))
    return found


def _is_task_matches(values: Iterable[str], labels: Mapping[str, str]) -> bool:
    """Classic's meaning (api/handlers.go getContainersJSON): a task is a container
    with the `com.docker.swarm.task` label (as swarm-mode engines write it), whatever
    its value; `true` keeps the tasks, `false` the others."""
    is_task = TASK_LABEL in (labels or {})
    return not ("true" in values and not is_task) and not ("false" in values and is_task)


def _find(containers: list[Container], ref: str) -> Container:
    for container in containers:
        if container.id.startswith(ref) or container.name == ref.lstrip("/"):
            return container
    raise DockerError(404, f"No such container: {ref}")


def matches(container: Container, node: Node | None, filters: Mapping[str, list[str]],
            everything: list[Container]) -> bool:
    """True when `container` passes every filter (values of one key are OR-ed)."""
    summary = container.summary
    node_name = node.name if node else ""
    for key, values in filters.items():
        if not values:
            continue
        if key == "id" and not _search(values, container.id):
            return False
        if key == "name":
            names = [f"/{container.name}", f"/{node_name}/{container.name}"]
            if not any(_search(values, n) for n in names):
                return False
        if key == "label" and not _labels_match(values, container.labels):
            return False
        if key == "status" and container.state not in values:
            return False
        if key == "exited":
            code = _exit_code(summary) if container.state == "exited" else None
            if code is None or str(code) not in values:
                return False
        if key == "ancestor" and not _ancestor(values, container):
            return False
        if key == "node" and not _search(values, node_name) and (
                not node or node.id not in values):
            return False
        if key == "before" and not all(
                container.created < _find(everything, v).created for v in values):
            return False
        if key == "since" and not all(
                container.created > _find(everything, v).created for v in values):
            return False
        if key == "network":
            networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
            ids = {n.get("NetworkID", "") for n in networks.values() if isinstance(n, dict)}
            if not any(v in networks or v in ids for v in values):
                return False
        if key == "volume":
            mounts = summary.get("Mounts") or []
            seen = {m.get(k, "") for m in mounts for k in ("Name", "Source", "Destination")}
            if not any(v in seen for v in values):
                return False
        if key == "health" and _health(summary) not in values:
            return False
        if key == "publish" and not set(values) & _ports(summary, "PublicPort"):
            return False
        if key == "expose" and not set(values) & _ports(summary, "PrivatePort"):
            return False
        if key == "is-task" and not _is_task_matches(values, container.labels):
            return False
    return True


def live_status(times: Mapping, now: float, fallback: str = "") -> str:
    """The Engine's State.String() for the state times kept at the last refresh."""
    status = times.get("Status", "")
    started, finished = times.get("StartedAt", 0), times.get("FinishedAt", 0)
    code = times.get("ExitCode", 0)
    if status in ("running", "paused", "restarting"):
        if status == "paused":
            return f"Up {human_duration(now - started)} (Paused)"
        if status == "restarting":
            return f"Restarting ({code}) {human_duration(now - finished)} ago"
        health = times.get("Health", "")
        suffix = f" (health: {health})" if health == "starting" else (
            f" ({health})" if health else "")
        return f"Up {human_duration(now - started)}{suffix}"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if not started:
        return "Created"
    if not finished:
        return fallback
    return f"Exited ({code}) {human_duration(now - finished)} ago"


def node_ip(node: Node | None) -> str:
    return node.addr.rpartition(":")[0].strip("[]") if node else ""


def present(container: Container, node: Node | None, now: float | None = None) -> dict:
    """The list entry as classic Swarm shows it: names as /<node>/<name>, and ports
    bound on all interfaces shown with the node's address; Status is as of now."""
    entry = dict(container.summary)
    times = entry.pop(STATE_KEY, None)
    if times is not None:
        entry["Status"] = live_status(times, time.time() if now is None else now,
                                      entry.get("Status", ""))
    prefix = f"/{node.name}" if node else ""
    entry["Names"] = [prefix + (n if n.startswith("/") else "/" + n)
                      for n in entry.get("Names") or [f"/{container.name}"]]
    ip = node_ip(node)
    if ip and entry.get("Ports"):
        entry["Ports"] = [dict(p, IP=ip) if p.get("IP") == "0.0.0.0" else p
                          for p in entry["Ports"]]
    return entry


def select(containers: list[Container], nodes: Mapping[str, Node], *, show_all: bool,
           limit: int, filters: Mapping[str, list[str]], now: float | None = None
           ) -> list[dict]:
    """`GET /containers/json`: newest first, running only unless `all`, `limit` (which,
    like a status filter, implies all), then the filters; Status as of `now`."""
    now = time.time() if now is None else now
    return [present(c, nodes.get(c.node_id), now)
            for c in select_containers(containers, nodes, show_all=show_all, limit=limit,
                                       filters=filters)]


def select_containers(containers: list[Container], nodes: Mapping[str, Node], *,
                      show_all: bool, limit: int,
                      filters: Mapping[str, list[str]]) -> list[Container]:
    """The containers `select` lists, in its order."""
    validate(filters)
    show_all = show_all or limit > 0 or bool(filters.get("status"))
    ordered = sorted(containers, key=lambda c: c.created, reverse=True)
    chosen = []
    for container in ordered:
        if not show_all and container.state not in ("running", "paused", "restarting"):
            continue
        if filters and not matches(container, nodes.get(container.node_id), filters,
                                   ordered):
            continue
        chosen.append(container)
        if 0 < limit <= len(chosen):
            break
    return chosen

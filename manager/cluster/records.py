"""Records the manager can write without asking the engine again.

Re-reading a container from its node after every create or start puts two more round
trips on the path of each `docker run`, which is most of what a manager adds to a plain
engine. The manager already knows what it asked for and what the engine answered, so it
writes that at once and lets a background refresh (and the node's event stream) fill in
the rest.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime

from flock.manager.cluster.convert import STATE_KEY, container_from_engine, summary_from_inspect
from flock.manager.cluster.model import Container

# What a successful call leaves a container in, for the calls whose result is certain
# without asking: stop, kill and restart are not here, since the exit code they leave
# is the engine's to tell (and they are slow anyway).
STATE_AFTER = {
    "start": "running",
    "unpause": "running",
    "pause": "paused",
}


def created_record(node_id: str, container_id: str, name: str, body: dict,
                   node_cpus: int) -> Container:
    """The record of a container just created from `body` (the create request as sent
    to the node, of `node_cpus` CPUs)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    cmd = body.get("Cmd") or []
    inspect = {
        "Id": container_id,
        "Name": f"/{name}" if name else "",
        "Created": now,
        "Path": (body.get("Entrypoint") or cmd[:1] or [""])[0] if isinstance(cmd, list) else "",
        "Args": cmd[1:] if isinstance(cmd, list) else [],
        "Config": body,
        "HostConfig": body.get("HostConfig") or {},
        "State": {"Status": "created"},
        "Image": "",
    }
    return container_from_engine(node_id, summary_from_inspect(inspect), inspect, node_cpus)


def after_action(container: Container, action: str) -> Container | None:
    """The record after `action` succeeded, or None when the action says nothing
    certain about the state (update, resize, ...)."""
    status = STATE_AFTER.get(action)
    if status is None:
        return None
    summary = dict(container.summary)
    times = dict(summary.get(STATE_KEY) or {})
    now = time.time()
    if status == "running" and container.state != "paused":
        times["StartedAt"] = now
    times["Status"] = status
    summary[STATE_KEY] = times
    summary["State"] = status
    return replace(container, state=status, summary=summary)


_EXIT_STATUS = re.compile(r"Exited \((-?\d+)\)")


def after_listing(container: Container, entries: object) -> Container | None:
    """The record from the engine's list answer read right after a change, when it came
    without the inspect (agent/read_back.py: the engine held the container's lock). The
    entry is the engine's own (state, status text, ports, addresses); the state's times
    are the best known now, until the full read that follows. None when the answer has
    no entry of this container."""
    entry = next((e for e in entries if isinstance(e, dict) and e.get("Id") == container.id),
                 None) if isinstance(entries, list) else None
    status = entry.get("State") if entry is not None else None
    if not status or not isinstance(status, str):
        return None
    times = dict(container.summary.get(STATE_KEY) or {})
    before = times.get("Status") or container.state
    now = time.time()
    if before in ("created", "exited", "dead") and status != before and status != "removing":
        times["StartedAt"] = now  # started (a short command may have exited already)
    if status in ("exited", "dead") and before not in ("exited", "dead"):
        code = _EXIT_STATUS.match(entry.get("Status") or "")
        times.update(FinishedAt=now, ExitCode=int(code.group(1)) if code else 0)
    times["Status"] = status
    summary = dict(entry)
    summary[STATE_KEY] = times
    return replace(container, state=status, summary=summary)


def exited(container: Container, code: int) -> Container:
    """The record once a wait on the node answered: the container has exited with
    `code` (the engine answers a wait only then)."""
    summary = dict(container.summary)
    times = dict(summary.get(STATE_KEY) or {})
    times.update(Status="exited", FinishedAt=time.time(), ExitCode=code)
    summary[STATE_KEY] = times
    summary["State"] = "exited"
    return replace(container, state="exited", summary=summary)


def renamed(container: Container, name: str) -> Container:
    """The record after a rename the node accepted, when no read of it came back: the
    new name must be in the state before the claim on it is dropped."""
    summary = dict(container.summary)
    summary["Names"] = [f"/{name}"]
    return replace(container, name=name, summary=summary)

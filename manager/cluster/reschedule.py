"""Rescheduling: containers with `reschedule:on-node-failure` outlive their node.

When a node turns unhealthy, each of its containers whose label
`com.docker.swarm.reschedule-policies` says `on-node-failure` is created again on a
healthy node: the same Config and HostConfig (kept from its inspect), the same name and
`com.docker.swarm.id`, placed by the scheduler so its constraints apply again, and
started if it was running. The old record is dropped from the view.

"Never two copies": when a node comes back (or is loaded by a new manager) with a
container whose swarm ID another node also holds, the older copy is removed — the
rescheduled one is always the newer. Only the primary manager reschedules; replicas
would otherwise each make a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.holding import hold_until_done
from flock.manager.cluster.model import UNHEALTHY, Container
from flock.manager.scheduler.cpu_shares import reserved_cpus
from flock.manager.scheduler.rules import RuleError, parse_rule
from flock.manager.scheduler.scheduler import NoNodeAvailable, Scheduler
from flock.manager.scheduler.spec import (
    RESCHEDULE_LABEL,
    SWARM_ID_LABEL,
    prepare_create_body,
    spec_from_create,
)

if TYPE_CHECKING:
    from flock.manager.cluster.state import ClusterState
    from flock.manager.cluster.sync import NodeWatcher

log = logging.getLogger("flock.manager.reschedule")

ON_NODE_FAILURE = "on-node-failure"
_ACTIVE = ("running", "restarting", "paused")
PARALLEL = 8


# ------------------------------------------------------------------ pure helpers
def wants_reschedule(labels: dict[str, str]) -> bool:
    """True when the container's labels ask for on-node-failure rescheduling."""
    raw = (labels or {}).get(RESCHEDULE_LABEL)
    if not raw:
        return False
    try:
        policies = json.loads(raw)
    except ValueError:
        policies = [raw]
    return isinstance(policies, list) and ON_NODE_FAILURE in policies


def create_body(inspect: dict, node_cpus: int) -> dict:
    """A `POST /containers/create` body that makes the container of `inspect` (on a
    node of `node_cpus` CPUs) again.

    Config is the create body's own shape; the Hostname the engine derived from the old
    ID is dropped so that the new container gets its own. The engine's CpuShares go
    back to the CPUs they reserve (`-c N`), for the new node's engine to get its own
    shares for N."""
    body = dict(inspect.get("Config") or {})
    if body.get("Hostname") and body["Hostname"] == (inspect.get("Id") or "")[:12]:
        body.pop("Hostname")
    body["HostConfig"] = host = dict(inspect.get("HostConfig") or {})
    if host.get("CpuShares"):
        host["CpuShares"] = reserved_cpus(host["CpuShares"], node_cpus)
    return body


def stale_copies(containers: list[Container]) -> list[Container]:
    """Of containers sharing one swarm ID, all but the newest (ties: keep the first ID)."""
    if len(containers) < 2:
        return []
    keep = max(containers, key=lambda c: (c.created, c.id))
    return [c for c in containers if c is not keep]


# ------------------------------------------------------------------ the worker
class Rescheduler:
    """Sweeps unhealthy nodes for containers to move; woken when a node fails."""

    def __init__(self, state: ClusterState, watcher: NodeWatcher, scheduler: Scheduler,
                 interval: float = 5.0, is_leader: Callable[[], bool] = lambda: True) -> None:
        self.state = state
        self.watcher = watcher
        self.scheduler = scheduler
        self.interval = interval
        self.is_leader = is_leader
        self._wake = asyncio.Event()
        self._moving: set[str] = set()
        self._task: asyncio.Task | None = None
        self.moved = 0  # containers rescheduled since start (for tests and benches)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reschedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def node_failed(self, node_id: str) -> None:
        """Called by the sync when a node turns unhealthy: sweep now."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if not self.is_leader():
                continue
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - try again at the next sweep
                log.exception("rescheduling sweep failed")

    async def sweep(self) -> int:
        """Move every container that asks for it off the unhealthy nodes; how many moved."""
        todo = [c for node in self.state.nodes() if node.health == UNHEALTHY
                for c in self.state.containers(node.id)
                if c.id not in self._moving and wants_reschedule(c.labels)]
        if not todo:
            return 0
        gate = asyncio.Semaphore(PARALLEL)

        async def one(container: Container) -> bool:
            async with gate:
                return await self.move(container)

        results = await asyncio.gather(*(one(c) for c in todo))
        return sum(results)

    async def move(self, old: Container) -> bool:
        """Recreate `old` on a healthy node; False (and logged) when that cannot be done now."""
        if old.create_config is None:
            log.warning("cannot reschedule %s: its configuration was not read", old.name)
            return False
        self._moving.add(old.id)
        try:
            return await self._move(old)
        finally:
            self._moving.discard(old.id)

    async def _move(self, old: Container) -> bool:
        body = old.create_config or {}
        try:
            spec = spec_from_create(body, old.name)
            placing = spec
            if spec.image:  # prefer the nodes that have the image: there is no registry
                image_rule = parse_rule(f"image==~{spec.image}", "affinity")
                placing = replace(spec, affinities=[*spec.affinities, image_rule])
            decision = self.scheduler.place(self.state, placing)
        except (RuleError, NoNodeAvailable) as exc:
            log.warning("cannot reschedule %s yet: %s", old.name or old.id[:12], exc)
            return False
        node = decision.node
        if node.id == old.node_id or node.health != "healthy":
            return False
        payload = prepare_create_body(body, spec, node.cpus)
        try:
            # The name stays claimed from here until the new copy's record holds it; only
            # the old copy (forgotten below) may share it meanwhile.
            token = self.state.reserve(node.id, old.name, spec.cpus, spec.memory, spec.ports,
                                       replacing=old.id)
        except NameTaken as exc:
            log.warning("cannot reschedule %s: %s", old.name, exc)
            return False
        new_id = await hold_until_done(
            self.state, token, self._create(node.id, old, payload))
        if not new_id:
            return False
        self.watcher.forget_container(old.id)
        self.moved += 1
        was = self.state.node(old.node_id)
        log.info("rescheduled %s from %s to %s (%s)", old.name or old.id[:12],
                 was.name if was is not None else old.node_id, node.name, new_id[:12])
        await self.remove_copy(old)  # the old node may be back already
        return True

    async def _create(self, node_id: str, old: Container, payload: dict) -> str:
        client = self.watcher.client(node_id)
        if client is None:
            return ""
        query = urllib.parse.urlencode({"name": old.name}) if old.name else ""
        try:
            status, answer = await client.request_json("POST", "/containers/create", query,
                                                       body=payload)
            if status != 201 or not isinstance(answer, dict):
                log.warning("rescheduling %s on %s: create answered %s %s", old.name,
                            client.addr, status, answer)
                return ""
            new_id = answer["Id"]
            if old.state in _ACTIVE:
                status, answer = await client.request_json(
                    "POST", api_path("containers", new_id, "start"))
                if status not in (204, 304):
                    log.warning("rescheduled %s on %s but start answered %s %s", old.name,
                                client.addr, status, answer)
            await self.watcher.refresh_container(node_id, new_id)
        except AgentError as exc:
            log.warning("rescheduling %s on %s: %s", old.name, client.addr, exc)
            return ""
        return new_id

    async def remove_copy(self, container: Container, force_health: bool = False) -> bool:
        """Remove `container` on its node when the node answers (best effort): the
        older copy of a rescheduled container. `force_health`: the node is being
        loaded right now and is not marked healthy yet."""
        client = self.watcher.client(container.node_id)
        node = self.state.node(container.node_id)
        if client is None or node is None or (node.health == UNHEALTHY and not force_health):
            return False
        try:
            status, answer = await client.request_json(
                "DELETE", api_path("containers", container.id), "force=1&v=0")
        except AgentError as exc:
            log.info("removing stale copy %s on %s: %s", container.id[:12], client.addr, exc)
            return False
        if status not in (204, 404):
            log.warning("removing stale copy %s on %s answered %s %s", container.id[:12],
                        client.addr, status, answer)
            return False
        log.info("removed stale copy %s of %s on %s: a newer copy runs elsewhere",
                 container.id[:12], container.name, node.name)
        self.watcher.forget_container(container.id)
        return True

    async def remove_stale(self, node_id: str, found: list[Container]) -> set[str]:
        """Of the containers just read from `node_id`, remove (on their node) the older
        copies of containers that another node also holds; the IDs removed here."""
        removed: set[str] = set()
        if not self.is_leader():
            return removed
        by_swarm_id = self.state.container_label_values(SWARM_ID_LABEL)
        for container in found:
            swarm_id = container.labels.get(SWARM_ID_LABEL)
            others = [n for n in by_swarm_id.get(swarm_id) or {} if n != node_id] \
                if swarm_id else []
            copies = [container] + [c for n in others for c in self.state.containers(n)
                                    if c.labels.get(SWARM_ID_LABEL) == swarm_id]
            for stale in stale_copies(copies):
                here = stale.node_id == node_id
                if await self.remove_copy(stale, force_health=here) and here:
                    removed.add(stale.id)
        return removed

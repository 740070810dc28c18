"""Rescheduling: containers with `reschedule:on-node-failure` outlive their node.

When a node turns unhealthy (or is drained with `--reschedule`), each of its containers
whose label `com.docker.swarm.reschedule-policies` says `on-node-failure` is created
again on another healthy node through the one create path (create.py): the same Config
and HostConfig (kept from its inspect), the same name and `com.docker.swarm.id`, placed
by the scheduler with the same implicit image affinity, reservation and name claim as
any create, recorded from the agent's read-back, and started if it was running. The
old record is dropped from the view.

"Never two copies": when a node comes back (or is loaded by a new manager) with a
container whose swarm ID another node also holds, the older copy is removed — the
rescheduled one is always the newer. Only the primary manager reschedules; replicas
would otherwise each make a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.labels import SWARM_ID_LABEL, wants_reschedule
from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container
from flock.manager.placement.create import Placed, Placement, Refused
from flock.manager.scheduler.rules import Rule, RuleError, parse_rule
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import spec_from_create

log = logging.getLogger("flock.manager.reschedule")

_ACTIVE = ("running", "restarting", "paused")
PARALLEL = 8


def stale_copies(containers: list[Container]) -> list[Container]:
    """Of containers sharing one swarm ID, all but the newest (ties: keep the first ID)."""
    if len(containers) < 2:
        return []
    keep = max(containers, key=lambda c: (c.created, c.id))
    return [c for c in containers if c is not keep]


def elsewhere(old: Container) -> list[Rule]:
    """Placement pins for the new copy: another node than the old one, and a healthy
    one even when the manager runs without the health filter (`--filter`), where the
    decision could otherwise land on the failed node itself."""
    return [parse_rule(f"node!={old.node_id}", "constraint"),
            parse_rule(f"health=={HEALTHY}", "constraint")]


class Rescheduler:
    """Sweeps unhealthy nodes for containers to move; woken when a node fails."""

    def __init__(self, placement: Placement, interval: float = 5.0,
                 is_leader: Callable[[], bool] = lambda: True) -> None:
        self.placement = placement
        self.state = placement.state
        self.records = placement.records
        self.clients = placement.clients
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
        placed = await self._create(old)
        if placed is None:
            return False
        if old.state in _ACTIVE:
            await self._start(old, placed)
        self.records.forget(old.id)
        self.moved += 1
        was = self.state.node(old.node_id)
        log.info("rescheduled %s from %s to %s (%s)", old.name or old.id[:12],
                 was.name if was is not None else old.node_id, placed.node.name,
                 placed.record.id[:12])
        await self.remove_copy(old)  # the old node may be back already
        return True

    async def _create(self, old: Container) -> Placed[None] | None:
        """The new copy, created through the one create path; the name stays claimed
        from the decision until the new copy's record holds it, and only the old copy
        (forgotten next) may share it meanwhile. None (logged) when it cannot be made."""
        body = old.create_config or {}
        label = old.name or old.id[:12]
        try:
            spec = spec_from_create(body, old.name)
            return await self.placement.create(body, spec, old.name, pinned=elsewhere(old),
                                               replacing=old.id)
        except (RuleError, NoNodeAvailable, NameTaken) as exc:
            log.warning("cannot reschedule %s yet: %s", label, exc)
        except (AgentError, Refused) as exc:
            log.warning("rescheduling %s: the create failed: %s", label, exc)
        return None

    async def _start(self, old: Container, placed: Placed[None]) -> None:
        """Start the new copy as the old one ran. A refusal leaves it created: it is the
        container now (its name and swarm ID), so the move still counts."""
        try:
            await self.placement.start(placed)
        except (AgentError, Refused) as exc:
            log.warning("rescheduled %s on %s but its start failed: %s",
                        old.name or old.id[:12], placed.node.name, exc)

    async def remove_copy(self, container: Container, force_health: bool = False) -> bool:
        """Remove `container` on its node when the node answers (best effort): the
        older copy of a rescheduled container. `force_health`: the node is being
        loaded right now and is not marked healthy yet."""
        client = self.clients.get(container.node_id)
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
        self.records.forget(container.id)
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

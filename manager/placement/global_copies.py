"""Global containers: one copy on every eligible node, and on eligible nodes that come later.

A global group is whatever containers carry the label `com.flock.global=GROUP`; copies
are named GROUP.NODE. The engines are the truth here as everywhere: nothing about the
group is stored by the manager, so a manager restart or a failover loses nothing.

"Eligible" means what the scheduler says: each node is tried with the copy's rules plus
a pin to that node, so constraints, ports, resources and drains apply per node. When a
node turns healthy (or its labels change), the primary gives it a copy of each group it
lacks, made from an existing copy's inspect, and started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.convert import create_body
from flock.manager.cluster.labels import GLOBAL_LABEL, global_group
from flock.manager.cluster.model import Container, Node
from flock.manager.placement.create import Placement, Refused
from flock.manager.scheduler.rules import RuleError, parse_rule
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import ContainerSpec, spec_from_create

log = logging.getLogger("flock.manager.global")

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")


def copy_name(group: str, node: Node) -> str:
    """GROUP.NODE, with what a container name cannot hold replaced by '-'."""
    return f"{group}.{_NAME_CHARS.sub('-', node.name)}"


def groups_on(containers: list[Container]) -> dict[str, list[Container]]:
    groups: dict[str, list[Container]] = {}
    for container in containers:
        if group := global_group(container.labels):
            groups.setdefault(group, []).append(container)
    return groups


@dataclass
class GlobalRun:
    placed: list[Container] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # "node: why"
    warnings: list[str] = field(default_factory=list)


def _why(exc: Exception) -> str:
    if isinstance(exc, Refused):
        answer = exc.answer
        return str(answer.get("message") if isinstance(answer, dict) else answer)
    return str(exc)


async def place_copy(placement: Placement, body: dict, spec: ContainerSpec, group: str,
                     node: Node) -> Container:
    """Create and start the group's copy on `node`, with the node pinned; raises
    NoNodeAvailable (the filters leave the node out), NameTaken (GROUP.NODE is taken,
    claimed at placement like any name), AgentError or Refused."""
    name = copy_name(group, node)
    labels = {**(body.get("Labels") or {}), GLOBAL_LABEL: group}
    copy_body = {**body, "Labels": labels}
    pin = parse_rule(f"node=={node.id}", "constraint")
    placed = await placement.run(copy_body, spec, name, pinned=[pin])
    return placed.record


async def run_global(placement: Placement, body: dict, spec: ContainerSpec,
                     group: str) -> GlobalRun:
    """A copy on every healthy node the filters keep, one node after the other (each
    decision sees the previous copies' reservations)."""
    result = GlobalRun()
    for node in sorted(placement.state.healthy_nodes(), key=lambda n: n.name):
        try:
            result.placed.append(await place_copy(placement, body, spec, group, node))
        except (NoNodeAvailable, NameTaken, AgentError, Refused) as exc:
            result.skipped.append(f"{node.name}: {_why(exc)}")
    return result


class GlobalReconciler:
    """Gives late nodes their copies: at once when a node turns healthy or its labels
    change, and on a slow sweep for what could not be done then (an image that arrives
    later, resources freed later). Only the primary acts (replicas would each make a
    copy); one node is reconciled at a time, so two triggers never make two copies."""

    def __init__(self, placement: Placement, is_primary: Callable[[], bool],
                 interval: float = 10.0) -> None:
        self.placement = placement
        self.state = placement.state
        self.is_primary = is_primary
        self.interval = interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def node_ready(self, node_id: str) -> None:
        """Called when a node turns healthy or its labels change."""
        if not self.is_primary() or not self._groups():
            return
        task = asyncio.get_running_loop().create_task(self.reconcile(node_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _groups(self):
        """Group -> node ID -> copies there, from the state's label index (no scan)."""
        return self.state.container_label_values(GLOBAL_LABEL)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.is_primary() or not self._groups():
                continue
            for node in list(self.state.healthy_nodes()):
                try:
                    await self.reconcile(node.id)
                except Exception:  # noqa: BLE001 - the sweep must outlive one bad node
                    log.exception("global copies on %s", node.name)

    async def reconcile(self, node_id: str) -> list[Container]:
        lock = self._locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            return await self._reconcile(node_id)

    async def _reconcile(self, node_id: str) -> list[Container]:
        node = self.state.node(node_id)
        if node is None or not node.healthy:
            return []
        missing = [group for group, where in self._groups().items() if node_id not in where]
        if not missing:
            return []
        members = groups_on(self.state.containers())
        made = []
        for group in sorted(missing):
            body = await self._template(members.get(group, []))
            if body is None:
                continue
            try:
                spec = spec_from_create(body, copy_name(group, node))
                made.append(await place_copy(self.placement, body, spec, group, node))
                log.info("global %s: copy started on %s", group, node.name)
            except NoNodeAvailable:
                log.debug("global %s: %s is not eligible", group, node.name)
            except (RuleError, NameTaken, AgentError, Refused) as exc:
                log.warning("global %s: no copy on %s yet: %s", group, node.name, _why(exc))
        return made

    async def _template(self, members: list[Container]) -> dict | None:
        """The create body of an existing copy, read from its engine."""
        for member in members:
            client = self.placement.clients.get(member.node_id)
            if client is None:
                continue
            try:
                status, inspect = await client.request_json(
                    "GET", api_path("containers", member.id, "json"))
            except AgentError:
                continue
            node = self.state.node(member.node_id)
            if status == 200 and isinstance(inspect, dict) and node is not None:
                return create_body(inspect, node.cpus)
        return None

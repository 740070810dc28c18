"""Placing one new container: schedule, hold the node's resources, create it there,
record it. The Docker API's `create` and the ClusterService's `Run` both go through
here, so a container gets the same rules, labels and bookkeeping whichever door it
came in by.

The decision and the reservation happen with no `await` in between, so concurrent
creates never see the same free resources twice; the reservation claims the container's
name in the same step, so two concurrent creates of one name never both reach a node.
The claim is held until the create's record lands or the create fails, even when the
client hangs up meanwhile (holding.py).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentUnavailable, ReadBack
from flock.manager.cluster.holding import hold_until_done
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.records import created_record
from flock.manager.scheduler.rules import Rule, RuleError, parse_rule
from flock.manager.scheduler.spec import ContainerSpec, prepare_create_body

if TYPE_CHECKING:
    from flock.manager.app import Manager
    from flock.manager.cluster.state import ClusterState

T = TypeVar("T")
# Sends the create request (JSON bytes) to the node, asking for a read-back; returns
# (status, answer bytes, the read-back if the agent gave one, and whatever the caller
# wants back, e.g. the exchange to relay a refusal as it came).
Send = Callable[[Node, bytes], Awaitable[tuple[int, bytes, ReadBack | None, T]]]


@dataclass
class Placed(Generic[T]):
    node: Node
    status: int  # the node's answer to the create
    data: bytes  # its body
    extra: T  # what `send` returned beside them
    record: Container | None  # the new container's record, on a 201
    warnings: list[str]  # soft rules dropped to find a node


def with_image_affinity(state: ClusterState, spec: ContainerSpec
                        ) -> tuple[ContainerSpec, str]:
    """Classic Swarm's implicit soft affinity: prefer the nodes that already have the
    image (a built or imported image may exist on one node only). Used for placement
    only; the container's labels keep the user's own rules. Returns the spec to place
    and the added rule's text ("" when none was added, nor needed: when no node or
    every node has the image, the rule could not change the choice)."""
    if (not spec.image or any(r.key == "image" for r in spec.affinities)
            or any(r.key == "node" for r in spec.constraints)
            or not 0 < state.image_holders(spec.image) < len(state.node_map())):
        return spec, ""
    try:
        rule = parse_rule(f"image==~{spec.image}", "affinity")
    except RuleError:
        return spec, ""
    return replace(spec, affinities=[*spec.affinities, rule]), rule.source


async def place_and_create(manager: Manager, body: dict, spec: ContainerSpec, name: str,
                           send: Send[T], pinned: list[Rule] | None = None) -> Placed[T]:
    """Raises the scheduler's NoNodeAvailable when nothing fits, NameTaken when a
    container or another create in flight has the name; nothing is created then."""
    state = manager.state
    placing, implicit = with_image_affinity(state, spec)
    if pinned:
        placing = replace(placing, constraints=[*placing.constraints, *pinned])
    decision = manager.scheduler.place(state, placing)
    node = decision.node
    token = state.reserve(node.id, name, spec.cpus, spec.memory, spec.ports)
    status, data, extra, record = await hold_until_done(
        state, token, _create(manager, node, body, spec, name, send))
    warnings = [f"soft rule dropped to place the container: {rule}"
                for rule in decision.dropped_soft if rule != implicit]
    return Placed(node, status, data, extra, record, warnings)


async def _create(manager: Manager, node: Node, body: dict, spec: ContainerSpec, name: str,
                  send: Send[T]) -> tuple[int, bytes, T, Container | None]:
    """Send the create and record a success (before the reservation goes)."""
    prepared = prepare_create_body(body, spec, node.cpus)
    with manager.watcher.changing(node.id):
        status, data, read, extra = await send(node, json.dumps(prepared).encode())
    record = None
    if status == 201:
        record = _recorded(manager, node, json.loads(data)["Id"], name, prepared, read)
    return status, data, extra, record


def _recorded(manager: Manager, node: Node, container_id: str, name: str, body: dict,
              read: ReadBack | None) -> Container:
    """The new container's record: the agent's read-back when it sent one, else what
    the create implies, re-read in the background."""
    if read is not None and (record := manager.watcher.take_read_back(node.id, read)):
        return record
    record = created_record(node.id, container_id, name, body, node.cpus)
    manager.watcher.record(record)
    manager.watcher.refresh_soon(node.id, record.id)
    return record


class Refused(Exception):
    """The node answered the create or start with an error: its status and body."""

    def __init__(self, status: int, answer: object) -> None:
        super().__init__(f"{status}: {answer}")
        self.status = status
        self.answer = answer


def _parsed(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


async def run_container(manager: Manager, body: dict, spec: ContainerSpec, name: str,
                        pinned: list[Rule] | None = None) -> Placed[None]:
    """Place, create and start (the ClusterService's Run and global copies). Raises
    NoNodeAvailable, AgentError (node unreachable) or Refused (the node said no)."""
    query = urllib.parse.urlencode({"name": name}) if name else ""

    async def send(node: Node, payload: bytes) -> tuple[int, bytes, ReadBack | None, None]:
        client = manager.client(node.id)
        if client is None:
            raise AgentUnavailable(f"node {node.name} is not connected")
        exchange = await client.request("POST", "/containers/create", query,
                                        [("Content-Type", "application/json")], payload,
                                        read_back=True)
        return exchange.status, await exchange.body(), exchange.read_back, None

    placed = await place_and_create(manager, body, spec, name, send, pinned)
    if placed.record is None:
        raise Refused(placed.status, _parsed(placed.data))
    node, record = placed.node, placed.record
    client = manager.client(node.id)
    if client is None:
        raise AgentUnavailable(f"node {node.name} is not connected")
    with manager.watcher.changing(node.id, record.id):
        exchange = await client.request("POST", api_path("containers", record.id, "start"),
                                        read_back=True)
        data = await exchange.body()
    if exchange.status >= 300:
        raise Refused(exchange.status, _parsed(data))
    manager.watcher.record_change(node.id, record, "start", exchange.read_back)
    placed.record = manager.state.container(record.id) or record
    return placed

"""The one create path: schedule, hold the node's resources, create the container there,
record it, and start it when asked. The Docker API's `create`, the ClusterService's
`Run`, global copies and rescheduling all go through `Placement`, so a container gets
the same rules, image affinity, reservation, name claim and read-back whichever door it
came in by, and a fix to any of them is made once.

The decision and the reservation happen with no `await` in between, so concurrent
creates never see the same free resources twice; the reservation claims the container's
name in the same step, so two concurrent creates of one name never both reach a node.
The claim is held until the create's record lands or the create fails, even when the
client hangs up meanwhile (cluster/holding.py).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from flock.common import json_codec
from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import ReadBack
from flock.manager.cluster.holding import hold_until_done
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.records import created_record
from flock.manager.scheduler.rules import Rule, RuleError, parse_rule
from flock.manager.scheduler.scheduler import Scheduler
from flock.manager.scheduler.spec import ContainerSpec, prepare_create_body

if TYPE_CHECKING:
    from flock.manager.cluster.clients import Clients
    from flock.manager.cluster.container_records import Records
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


class Refused(Exception):
    """The node answered the create or start with an error: its status and body."""

    def __init__(self, status: int, answer: object) -> None:
        super().__init__(f"{status}: {answer}")
        self.status = status
        self.answer = answer


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


def _parsed(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


class Placement:
    """The create path over the parts it needs: the state (decisions, reservations),
    the scheduler, the records (read-backs) and the nodes' agent clients. Global copies
    and rescheduling are built over it and use the same parts."""

    def __init__(self, state: ClusterState, scheduler: Scheduler, records: Records,
                 clients: Clients) -> None:
        self.state = state
        self.scheduler = scheduler
        self.records = records
        self.clients = clients

    async def place_and_create(self, body: dict, spec: ContainerSpec, name: str,
                               send: Send[T], pinned: list[Rule] | None = None,
                               replacing: str = "") -> Placed[T]:
        """Place and create through `send`. `pinned`: hard rules for placement only (not
        written into the labels); `replacing`: the ID of a container the new one
        replaces, which may hold the name meanwhile (rescheduling). Raises the
        scheduler's NoNodeAvailable when nothing fits, NameTaken when a container or
        another create in flight has the name; nothing is created then."""
        state = self.state
        placing, implicit = with_image_affinity(state, spec)
        if pinned:
            placing = replace(placing, constraints=[*placing.constraints, *pinned])
        decision = self.scheduler.place(state, placing)
        node = decision.node
        token = state.reserve(node.id, name, spec.cpus, spec.memory, spec.ports,
                              replacing=replacing)
        status, data, extra, record = await hold_until_done(
            state, token, self._create(node, body, spec, name, send))
        warnings = [f"soft rule dropped to place the container: {rule}"
                    for rule in decision.dropped_soft if rule != implicit]
        return Placed(node, status, data, extra, record, warnings)

    async def create(self, body: dict, spec: ContainerSpec, name: str,
                     pinned: list[Rule] | None = None, replacing: str = "") -> Placed[None]:
        """Place and create through the node's agent, not started (global copies and
        rescheduling start it next). Raises NoNodeAvailable, NameTaken, AgentError
        (NodeNotConnected, or the agent failed) or Refused (the node said no)."""
        query = urllib.parse.urlencode({"name": name}) if name else ""

        async def send(node: Node, payload: bytes
                       ) -> tuple[int, bytes, ReadBack | None, None]:
            exchange = await self.clients.require(node).request(
                "POST", "/containers/create", query,
                [("Content-Type", "application/json")], payload, read_back=True,
                read_back_later=True)
            return exchange.status, await exchange.body(), exchange.read_back, None

        placed = await self.place_and_create(body, spec, name, send, pinned, replacing)
        if placed.record is None:
            raise Refused(placed.status, _parsed(placed.data))
        return placed

    async def start(self, placed: Placed) -> Container:
        """Start the container `create` made, and record the outcome. Raises AgentError
        or Refused (the node said no; the container stays, created)."""
        node, record = placed.node, placed.record
        client = self.clients.require(node)
        with self.records.changing(node.id, record.id):
            exchange = await client.request("POST", api_path("containers", record.id, "start"),
                                            read_back=True, read_back_later=True)
            data = await exchange.body()
        if exchange.status >= 300:
            raise Refused(exchange.status, _parsed(data))
        self.records.change(node.id, record, "start", exchange.read_back)
        placed.record = self.state.container(record.id) or record
        return placed.record

    async def run(self, body: dict, spec: ContainerSpec, name: str,
                  pinned: list[Rule] | None = None) -> Placed[None]:
        """Place, create and start (the ClusterService's Run and global copies). Raises
        NoNodeAvailable, NameTaken, AgentError or Refused."""
        placed = await self.create(body, spec, name, pinned)
        await self.start(placed)
        return placed

    async def _create(self, node: Node, body: dict, spec: ContainerSpec, name: str,
                      send: Send[T]) -> tuple[int, bytes, T, Container | None]:
        """Send the create and record a success (before the reservation goes)."""
        prepared = prepare_create_body(body, spec, node.cpus)
        with self.records.changing(node.id):
            status, data, read, extra = await send(node, json_codec.dumps(prepared))
        record = None
        if status == 201:
            record = self._recorded(node, json_codec.loads(data)["Id"], name, prepared, read)
        return status, data, extra, record

    def _recorded(self, node: Node, container_id: str, name: str, body: dict,
                  read: ReadBack | None) -> Container:
        """The new container's record: the agent's read-back when it sent one, else what
        the create implies, re-read in the background."""
        if read is not None and (record := self.records.take_read_back(node.id, read)):
            return record
        record = created_record(node.id, container_id, name, body, node.cpus)
        self.records.write(record)
        self.records.refresh_soon(node.id, record.id)
        return record

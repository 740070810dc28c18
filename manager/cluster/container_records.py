"""Records: the one writer of the manager's container records, kept exact from the
agents at the least cost.

Its own component, not a part of node watching (sync.py), because every front writes
records: the Docker API after a change it forwarded, placement after a create, the
ClusterService, the watcher on an event. One writer keeps one protocol for all of them:
when a record is re-read (a burst of reasons makes one read; a read-back the agent sends
with a change makes none, freshness.py), what a change of this manager's own implies
(records.py), and full loads of a node's containers and images. Nothing else writes a
container into ClusterState (a test checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Iterator

from flock.common import json_codec
from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentError, ReadBack
from flock.manager.cluster.clients import Clients
from flock.manager.cluster.convert import container_from_engine, image_refs, summary_from_inspect
from flock.manager.cluster.freshness import Freshness
from flock.manager.cluster.model import Container
from flock.manager.cluster.records import after_action, after_listing
from flock.manager.cluster.state import ClusterState

log = logging.getLogger("flock.manager.sync")

LOAD_PARALLEL = 16  # inspects at once while loading one node's containers
# A create and the start that follows it (and their events) are usually this close.
REFRESH_DELAY = 0.3


class Records:
    """Reads and writes of container records through the nodes' `clients`. Its
    `rescheduler`, set by the manager, is asked about stale copies on a full load."""

    rescheduler = None

    def __init__(self, state: ClusterState, clients: Clients | None = None) -> None:
        self.state = state
        self.clients = clients if clients is not None else Clients()
        self._destroyed: OrderedDict[str, None] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._soon: dict[str, asyncio.Task] = {}
        # How long a background re-read of a record this manager wrote waits for more
        # reasons (see refresh_soon), and the containers it wrote since their last read.
        self.refresh_delay = REFRESH_DELAY
        self._written: set[str] = set()
        self.freshness = Freshness()
        self._changing: Counter[str] = Counter()  # node or container ID -> changes in flight

    def cancel_reads(self) -> None:
        for task in list(self._soon.values()):
            task.cancel()

    def forget(self, container_id: str) -> None:
        """The container is gone for good: drop it, and ignore late refreshes of it."""
        self._destroyed[container_id] = None
        self._written.discard(container_id)
        while len(self._destroyed) > 10_000:
            self._destroyed.popitem(last=False)
        self._touched.pop(container_id, None)
        self.freshness.forget(container_id)
        self.state.remove_container(container_id)

    def refresh_soon(self, node_id: str, container_id: str, name: str = "",
                     event_ns: int = 0) -> None:
        """Re-read a container in the background, once for a burst of reasons: a
        `docker run` is a create and a start, each answered (the API front writes the
        record it is sure of) and each echoed by an event (`event_ns`, the engine's time
        of it). A reason already answered by a read that started after it, or an event
        already reflected by an agent's read-back, costs nothing (Freshness). When this
        manager wrote the record itself (`write`), or the container (named `name`) is
        being created through it, the read waits `refresh_delay` so that the whole burst
        makes one read; changes made by others are read at once."""
        if container_id in self._destroyed:
            return  # a late event of a removed container (`rm -f`: kill, die, destroy)
        if event_ns and self.freshness.covers_event(container_id, event_ns):
            return
        self.freshness.want(container_id)
        if container_id in self._soon:
            return
        ours = container_id in self._written or container_id in self._changing or (
            self.state.container(container_id) is None
            and (node_id in self._changing or (bool(name) and self.state.name_taken(name))))

        async def run() -> None:
            try:
                if ours and self.refresh_delay > 0:
                    await asyncio.sleep(self.refresh_delay)
                while (container_id not in self._destroyed
                       and self.freshness.needs_read(container_id)):
                    try:
                        await self.refresh(node_id, container_id)
                    except AgentError as exc:
                        log.debug("refresh %s on %s: %s", container_id, node_id, exc)
                        return
            finally:
                self._soon.pop(container_id, None)
                self._written.discard(container_id)

        self._soon[container_id] = asyncio.create_task(run())

    @contextlib.contextmanager
    def changing(self, node_id: str, container_id: str = "") -> Iterator[None]:
        """Marks a change this manager has in flight on a node (a create, when there is
        no `container_id` yet). Its events may come before its answer, and the answer's
        read-back will cover them, so reads for them wait (refresh_soon)."""
        key = container_id or node_id
        self._changing[key] += 1
        try:
            yield
        finally:
            self._changing[key] -= 1
            if not self._changing[key]:
                del self._changing[key]

    def write(self, container: Container) -> None:
        """Write a record the caller already knows to be true (e.g. right after a create
        on the node answered), without a round trip to the node. The re-read that
        follows (refresh_soon) waits for the rest of the burst."""
        if container.id not in self._destroyed:
            self._written.add(container.id)
        self._store(container)

    def take_read_back(self, node_id: str, read: ReadBack) -> Container | None:
        """Store the container an agent read back with its answer to a change: the
        record is then exact, and the reasons and events up to that read need no
        re-read of their own. A read-back older than one already taken (the agent's
        clock) leaves the newer record as it is, and returns it; the container is read
        again. None when the read-back cannot be used."""
        try:
            inspect = json_codec.loads(read.inspect)
            listing = json_codec.loads(read.listing) if read.listing else []
        except ValueError:
            return None
        if not isinstance(inspect, dict) or not inspect.get("Id"):
            return None
        if self.freshness.newer_read_back(inspect["Id"], read.read_at_ns):
            # Rare (reads out of order); the re-read makes sure of the record should
            # the agent's clock have stepped back.
            current = self._newer_stands(node_id, inspect["Id"])
            if current is not None:
                return current
        self.freshness.reading(inspect["Id"], read.read_at_ns)
        return self._store_read(node_id, inspect, listing)

    def change(self, node_id: str, container: Container, action: str,
               read: ReadBack | None) -> bool:
        """Record the outcome of a successful change (`action`: start, stop...) of
        `container`: the agent's read-back when it sent one, else what the change
        implies, re-read in the background. False when neither says anything certain;
        the caller then re-reads the container itself."""
        updated = None
        if read is not None and read.inspect:      # the full read: nothing to guess
            if self.take_read_back(node_id, read) is not None:
                return True
        elif read is not None:                     # the engine's list entry only
            updated = self._after_listing(container, read.listing)
        if updated is None:                        # no read, or one we could not use
            updated = after_action(container, action)
        if updated is None:
            return False
        self.write(updated)
        self.refresh_soon(node_id, container.id)
        return True

    @staticmethod
    def _after_listing(container: Container, listing: bytes) -> Container | None:
        try:
            return after_listing(container, json_codec.loads(listing))
        except ValueError:
            return None

    def _store(self, container: Container) -> None:
        if container.id in self._destroyed or self.state.node(container.node_id) is None:
            return
        self._touched[container.id] = time.monotonic()
        self.state.upsert_container(container)

    async def refresh(self, node_id: str, container_id: str) -> Container | None:
        """Re-read one container from its node (list entry + inspect) into the state.
        A record stored while the read was under way (a change's answer or read-back)
        may be newer than what it read: it is kept, and the container read again."""
        client = self.clients.get(node_id)
        if client is None:
            return None
        started = time.monotonic()
        self.freshness.reading(container_id)
        status, inspect = await client.request_json(
            "GET", api_path("containers", container_id, "json"))
        if status == 404:
            if self.state.container(container_id) is not None:
                self.forget(container_id)
            return None
        if status != 200 or not isinstance(inspect, dict):
            log.warning("inspect %s on %s: %s %s", container_id, client.addr, status, inspect)
            return None
        query = "all=1&filters=" + urllib.parse.quote(json.dumps({"id": [inspect["Id"]]}))
        status, listing = await client.request_json("GET", "/containers/json", query)
        if self._touched.get(inspect["Id"], 0) >= started:
            current = self._newer_stands(node_id, inspect["Id"])
            if current is not None:
                return current
        return self._store_read(node_id, inspect, listing if status == 200 else None)

    def _newer_stands(self, node_id: str, container_id: str) -> Container | None:
        """A read that may be older than the record stored is left unstored: the record
        stays, and the container is read again. None when there is no record to keep."""
        current = self.state.container(container_id)
        if current is not None:
            self.refresh_soon(node_id, container_id)
        return current

    def _store_read(self, node_id: str, inspect: dict, listing: object) -> Container:
        """The record from a container's inspect and the list answer filtered to it
        (its entry, or one made from the inspect when the list misses it), stored."""
        summary = next((c for c in listing if isinstance(c, dict)
                        and c.get("Id") == inspect["Id"]), None) if isinstance(
                            listing, list) else None
        container = container_from_engine(
            node_id, summary or summary_from_inspect(inspect), inspect, self._cpus(node_id))
        self._store(container)
        return container

    def _cpus(self, node_id: str) -> int:
        """The node's CPU count, which what a container's CpuShares reserve depends on."""
        node = self.state.node(node_id)
        return node.cpus if node is not None else 0

    async def load_containers(self, node_id: str, known_too: bool = False) -> None:
        """Read every container of a node; drop the records the node no longer has.
        Containers already known in the same state are not inspected again unless
        `known_too` (a full load, when a node is first reached or comes back)."""
        client = self.clients.get(node_id)
        if client is None:
            return
        started = time.monotonic()
        status, listing = await client.request_json("GET", "/containers/json", "all=1")
        if status != 200 or not isinstance(listing, list):
            raise AgentError(f"agent {client.addr}: listing containers answered {status}")
        gate = asyncio.Semaphore(LOAD_PARALLEL)

        async def inspect(summary: dict) -> Container | None:
            async with gate:
                code, data = await client.request_json(
                    "GET", api_path("containers", summary["Id"], "json"))
            if code != 200 or not isinstance(data, dict):
                return None
            return container_from_engine(node_id, summary, data, self._cpus(node_id))

        def current(summary: dict) -> Container | None:
            old = self.state.container(summary["Id"])
            if known_too or old is None or old.state != summary.get("State"):
                return None
            return old

        kept = [c for s in listing if s.get("Id") and (c := current(s)) is not None]
        found = await asyncio.gather(*(inspect(s) for s in listing
                                       if s.get("Id") and current(s) is None))
        fresh = {c.id: c for c in [*kept, *found] if c is not None}
        if self.rescheduler is not None:
            for gone in await self.rescheduler.remove_stale(node_id, list(fresh.values())):
                fresh.pop(gone, None)
        for old in self.state.containers(node_id):
            if old.id not in fresh and self._touched.get(old.id, 0) < started:
                self._touched.pop(old.id, None)
                self.state.remove_container(old.id)
        for container in fresh.values():
            if self._touched.get(container.id, 0) < started:
                self._store(container)

    async def load_images(self, node_id: str) -> None:
        client = self.clients.get(node_id)
        if client is None:
            return
        # all=1: the count then matches the engine's own (heartbeat) Images figure.
        status, images = await client.request_json("GET", "/images/json", "all=1")
        if status != 200 or not isinstance(images, list):
            raise AgentError(f"agent {client.addr}: listing images answered {status}")
        node = self.state.node(node_id)
        if node is None:
            return
        self.state.set_node_images(node_id, image_refs(images))
        node.images = len(images)
        self.state.upsert_node(node)

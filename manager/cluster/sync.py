"""Keeps ClusterState current from the agents: the manager's only writer of nodes.

Like classic Swarm, the engines are the source of truth. A NodeWatcher polls discovery
every heartbeat and runs one NodeSync per agent address. A NodeSync asks the agent who
it is (`info`), loads the node's containers and images, follows its event stream to
keep them current, and heartbeats: failures turn the node unhealthy (after
`failure_retry` in a row), a success makes it healthy again after a full reload, and a
drift between the agent's counts and ours triggers a reload too. Timers are jittered so
that thousands of nodes do not all refresh in the same instant.

The states are classic Swarm's (cluster/engine.go): a node is Pending until it has been
reached once, however often that fails (classic keeps such an engine in its
pendingEngines, never Unhealthy); Healthy; Unhealthy after `failure_retry` failed
refreshes in a row (engine.go incFailureCount); Disconnected once its address has left
discovery while it still answers (classic's removeEngine disconnects it at once; Flock
keeps it for `departure_grace` so that a dead node's containers are rescheduled first).

Node names are unique: an agent that reports a name another node has is refused, shown
Pending with the reason (as classic Swarm shows an engine whose ID is duplicated), told
so with its heartbeat, and tried again every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from flock.manager.cluster.agent_client import AgentClient, AgentError, ReadBack
from flock.manager.cluster.clients import Clients
from flock.manager.cluster.container_records import Records
from flock.manager.cluster.convert import (
    event_target,
    node_from_info,
)
from flock.manager.cluster.model import DISCONNECTED, HEALTHY, PENDING, UNHEALTHY, Node
from flock.manager.cluster.state import ClusterState, NodeNameTaken

log = logging.getLogger("flock.manager.sync")

# Container event actions after which the record is re-read (destroy drops it).
CONTAINER_ACTIONS = frozenset({
    "create", "start", "restart", "die", "stop", "kill", "pause", "unpause", "rename",
    "update", "oom", "health_status",
})
IMAGE_ACTIONS = frozenset({"pull", "import", "tag", "delete", "untag", "load", "push"})
INFO_EVERY = 5
CONNECT_PARALLEL = 64
MAX_BEATS = 50.0  # heartbeats per second over the whole cluster (--max-heartbeats)


@dataclass(frozen=True)
class RefreshRange:
    """Each node is refreshed after a random wait in [low, high] seconds (classic's
    --engine-refresh-min/max-interval and its delayer in cluster/engine.go)."""

    low: float
    high: float


# ------------------------------------------------------------------ one node
class NodeSync:
    """The manager's link to one agent address."""

    def __init__(self, watcher: NodeWatcher, addr: str) -> None:
        self.watcher = watcher
        self.addr = addr
        self.client = watcher.client_factory(addr)
        self.node_id: str | None = None
        self.failures = 0
        self.beats = 0
        self.count_drift = 0  # consecutive beats whose container count differed from ours
        self.first_round = asyncio.Event()
        self.refused = ""  # why the node is kept out of the cluster, while it is
        self.reached = False  # answered once: until then it is Pending, whatever fails
        self.departed = False  # its address left discovery (Disconnected while it answers)
        self._loaded = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._events: asyncio.Task | None = None

    @property
    def state(self) -> ClusterState:
        return self.watcher.state

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sync {self.addr}")

    async def stop(self) -> None:
        for task in (self._events, self._task):
            if task is not None:
                task.cancel()
        for task in (self._events, self._task):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        if self.node_id is not None:
            self.state.remove_node(self.node_id)
        with contextlib.suppress(Exception):
            await self.client.close()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug here must not stop the node's sync
                log.exception("refreshing %s failed", self.addr)
            self.first_round.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       self.watcher.beat_delay(self._loaded and not self.failures))
            self._wake.clear()

    async def beat(self) -> None:
        if not self._loaded:
            await self.connect()
            return
        try:
            reply = await self.client.heartbeat(timeout=self.watcher.rpc_timeout)
            self.beats += 1
            if self.beats % INFO_EVERY == 0:
                await self._refresh_info()
        except AgentError as exc:
            self.fail(exc)
            return
        self.failures = 0
        node = self.state.node(self.node_id)
        if node is None:
            return
        node.updated_at = time.time()
        if self.departed and node.health == HEALTHY:
            log.info("node %s (%s) is disconnected: gone from discovery", node.name, self.addr)
            self.state.set_health(self.node_id, DISCONNECTED)
        elif node.health != self.answering_health:
            # Back from a failure: whatever happened meanwhile, read it all again.
            self._loaded = False
            await self.connect()
            return
        try:
            # A count that differs once is usually a create in flight (the engine has it,
            # its record is on the way); differing on two beats in a row is drift.
            drifted = reply.containers != len(self.state.containers(self.node_id))
            self.count_drift = self.count_drift + 1 if drifted else 0
            if self.count_drift >= 2:
                self.count_drift = 0
                await self.watcher.records.load_containers(self.node_id)
            if reply.images != node.images:
                await self.watcher.records.load_images(self.node_id)
        except AgentError as exc:
            self.fail(exc)

    async def connect(self) -> None:
        """Info, then a full load of containers and images; healthy when all worked.
        At most CONNECT_PARALLEL nodes connect at once: when a manager starts with
        thousands of nodes, all connecting together would make each take longer than
        its timeout, fail, and wait a whole heartbeat to try again."""
        async with self.watcher.connecting:
            await self._connect()

    async def _connect(self) -> None:
        try:
            info = await self.client.info(timeout=self.watcher.rpc_timeout * 2)
        except AgentError as exc:
            self.fail(exc)
            return
        node = node_from_info(info, self.addr)
        try:
            self._adopt(node)
        except NodeNameTaken as exc:
            await self._refuse(exc)
            return
        if self.refused:
            log.info("node %s (%s) is accepted: its name is its own now", node.name, self.addr)
            self.refused = ""
        self._ensure_events()
        try:
            await self.watcher.records.load_containers(node.id, known_too=True)
            await self.watcher.records.load_images(node.id)
        except AgentError as exc:
            self.fail(exc)
            return
        self.failures = 0
        self._loaded = self.reached = True
        health = self.answering_health
        self.state.set_health(node.id, health)
        log.info("node %s (%s) is %s", node.name, self.addr, health)
        if health == HEALTHY:
            for callback in self.watcher.on_healthy:
                callback(node.id)

    @property
    def answering_health(self) -> str:
        """The state of a node that answers: Healthy, or Disconnected once it has left
        discovery."""
        return DISCONNECTED if self.departed else HEALTHY

    async def _refresh_info(self) -> None:
        info = await self.client.info(timeout=self.watcher.rpc_timeout * 2)
        try:
            self.take_info(info)
        except NodeNameTaken as exc:  # restarted under a name another node has
            self._loaded = False
            await self._refuse(exc)

    async def _refuse(self, exc: NodeNameTaken) -> None:
        """Keep the node out of the cluster: what it held so far goes, the reason shows
        as a Pending entry under its address (`docker info`, `flock nodes`), in this
        log, and in the agent's (its heartbeat carries it). Classic Swarm does the same
        for an engine whose ID another has (cluster/swarm/cluster.go,
        validatePendingEngine); a retry at every heartbeat lets it in once the other
        node is gone or this one is renamed."""
        message = str(exc)
        if message != self.refused:
            log.error("%s", message)
        self.refused = message
        if self._events is not None:
            self._events.cancel()
            self._events = None
        if self.node_id is not None and self.node_id != self.addr:
            self.state.remove_node(self.node_id)
            self.watcher.forget(self.node_id)
        self._show_pending(message)
        try:
            await self.client.heartbeat(timeout=self.watcher.rpc_timeout, refused=message)
        except AgentError as err:
            log.debug("telling %s it is refused: %s", self.addr, err)

    def _show_pending(self, error: str) -> None:
        """A placeholder under the agent's address, for a node that is not in (yet)."""
        placeholder = Node(id=self.addr, name=self.addr, addr=self.addr, health=PENDING,
                           error=error, updated_at=time.time())
        self.node_id = placeholder.id
        self.watcher.adopt(placeholder.id, self)
        self.state.upsert_node(placeholder)

    def take_info(self, info) -> Node:
        """A fresh NodeInfo (a refresh, or an UpdateNode answer) into the state; health
        and image count stay as the sync loop knows them."""
        node = node_from_info(info, self.addr)
        old = self.state.node(self.node_id) if self.node_id else None
        if old is not None:
            node.health, node.error, node.images = old.health, old.error, old.images
        self._adopt(node)
        return node

    def _adopt(self, node: Node) -> None:
        """Put `node` in the state, replacing a placeholder or an older identity."""
        if self.node_id is not None and self.node_id != node.id:
            self.state.remove_node(self.node_id)
            self.watcher.forget(self.node_id)
        old = self.state.node(node.id)
        if old is not None and self._loaded:
            node.health, node.error = old.health, old.error
        self.node_id = node.id
        self.watcher.adopt(node.id, self)
        self.state.upsert_node(node)

    def fail(self, exc: Exception) -> None:
        self.failures += 1
        self._loaded = self._loaded and self.failures < self.watcher.failure_retry
        if self.node_id is None:
            # Discovered but never reached: Pending, with the error.
            self._show_pending(str(exc))
            log.warning("%s", exc)
        node = self.state.node(self.node_id)
        if node is None:
            return
        node.updated_at = time.time()  # classic's UpdatedAt: the last check, good or not
        if not self.reached or self.failures < self.watcher.failure_retry:
            # Never reached: Pending with the error, however often it fails (classic's
            # pending engines are retried, never flagged unhealthy).
            if node.health != HEALTHY:
                self.state.set_health(self.node_id, node.health, str(exc))
            return
        if node.health != UNHEALTHY:
            log.warning("node %s (%s) is unhealthy: %s", node.name, self.addr, exc)
            self.state.set_health(self.node_id, UNHEALTHY, str(exc))
            self.watcher.node_failed(self.node_id)
        else:
            self.state.set_health(self.node_id, UNHEALTHY, str(exc))

    def _ensure_events(self) -> None:
        if self._events is None or self._events.done():
            self._events = asyncio.create_task(self._follow(), name=f"events {self.addr}")

    async def _follow(self) -> None:
        since = time.time() - 1
        while True:
            try:
                async for event in self.client.events(since=since,
                                                      read_backs=self._on_read_back):
                    since = max(since, float(event.get("time") or 0))
                    await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except AgentError as exc:
                log.debug("events of %s broke: %s", self.addr, exc)
            except Exception:  # noqa: BLE001 - keep following whatever went wrong
                log.exception("events of %s failed", self.addr)
            self.wake()  # heartbeat now: the agent may be gone
            await asyncio.sleep(1 + random.random())

    def _on_read_back(self, read: ReadBack) -> None:
        """A container this manager changed, read by the agent after it answered."""
        if self.node_id is not None:
            self.watcher.records.take_read_back(self.node_id, read)

    async def _on_event(self, event: dict) -> None:
        node_id = self.node_id
        if node_id is None:
            return
        kind, action, target = event_target(event)
        try:
            if kind == "container" and target:
                if action == "destroy":
                    self.watcher.records.forget(target)
                elif action in CONTAINER_ACTIONS:
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    self.watcher.records.refresh_soon(
                        node_id, target, attributes.get("name") or "",
                        int(event.get("timeNano") or 0))
            elif kind == "image" and action in IMAGE_ACTIONS:
                await self.watcher.records.load_images(node_id)
        except AgentError as exc:
            log.debug("event %s %s on %s: %s", action, target, self.addr, exc)


# ------------------------------------------------------------------ all nodes
class NodeWatcher:
    """Discovery poll + one NodeSync per agent address: heartbeats, connects, health.
    It registers each node's client in `records.clients` and has `records` (Records,
    container_records.py) load and follow the node's containers. Its `rescheduler` is
    set by the manager: told when a node fails."""

    rescheduler = None

    def __init__(self, state: ClusterState, backend, heartbeat: float = 20.0,
                 failure_retry: int = 3,
                 client_factory: Callable[[str], AgentClient] = AgentClient,
                 max_beats: float = MAX_BEATS, refresh: RefreshRange | None = None,
                 records: Records | None = None) -> None:
        self.state = state
        self.records = records if records is not None else Records(state, Clients())
        self.clients = self.records.clients
        self.backend = backend
        self.heartbeat = heartbeat
        self.refresh = refresh
        self.max_beats = max_beats
        self.failure_retry = max(1, failure_retry)
        self.client_factory = client_factory
        self.rpc_timeout = max(1.0, min(5.0, heartbeat))
        self._syncs: dict[str, NodeSync] = {}
        self._by_node: dict[str, NodeSync] = {}
        self._departed: dict[str, float] = {}  # address -> when it left discovery
        self.connecting = asyncio.Semaphore(CONNECT_PARALLEL)
        self._task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None
        # Called with a node's ID each time it turns healthy (global copies, manager/app).
        self.on_healthy: list[Callable[[str], None]] = []

    def next_delay(self) -> float:
        """The heartbeat, jittered by ±20% so nodes drift apart instead of beating together."""
        return self.heartbeat * random.uniform(0.8, 1.2)

    def beat_delay(self, healthy: bool = True) -> float:
        """Until a node's next heartbeat: the heartbeat, stretched for healthy nodes so
        that the whole cluster makes at most `max_beats` per second, as Nomad does. A
        beat costs each end about a millisecond of CPU: 1,000 nodes at 5 s would take a
        quarter of a core on each side for nothing. A dead agent is still noticed at
        once, when its event stream breaks (gRPC keep-alives see a silent one within
        30 s); failing nodes keep the plain heartbeat, to come back promptly."""
        low, high = ((self.refresh.low, self.refresh.high) if self.refresh is not None
                     else (self.heartbeat * 0.8, self.heartbeat * 1.2))
        if healthy and self.max_beats > 0:
            stretch = max(1.0, len(self._syncs) / self.max_beats / ((low + high) / 2))
            low, high = low * stretch, high * stretch
        return random.uniform(low, high)

    async def start(self, wait: float = 10.0) -> None:
        """First discovery round, waiting up to `wait` seconds for its nodes to load."""
        await self.poll()
        pending = [s.first_round.wait() for s in self._syncs.values()]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), wait)
        self._task = asyncio.create_task(self._loop(), name="discovery")
        if hasattr(self.backend, "watch"):
            self._watch_task = asyncio.create_task(self._watch(), name="discovery watch")

    async def stop(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if hasattr(self.backend, "close"):
            with contextlib.suppress(Exception):
                await self.backend.close()
        self.records.cancel_reads()
        await asyncio.gather(*(s.stop() for s in self._syncs.values()))
        self._syncs.clear()
        for node_id in list(self._by_node):
            self.forget(node_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - discovery away: keep the nodes we know
                log.exception("discovery poll failed")

    async def _watch(self) -> None:
        """Follow a backend that can be watched (etcd) for prompt joins and leaves; the
        poll stays as the fallback. When the watch breaks, retry with a backoff."""
        backoff = 0.5
        while True:
            try:
                async for addrs in self.backend.watch():
                    backoff = 0.5
                    await self.apply(list(dict.fromkeys(addrs)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - etcd away: keep the nodes we know
                log.warning("discovery watch broke, keeping %d nodes: %s; retrying in %.1fs",
                            len(self._syncs), exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max(self.heartbeat, 1.0))

    async def poll(self) -> None:
        """Diff discovery against the known addresses: start new, drop gone."""
        try:
            addrs = list(dict.fromkeys(await self.backend.fetch()))
        except Exception as exc:  # noqa: BLE001 - keep the nodes we know
            log.warning("discovery failed, keeping %d nodes: %s", len(self._syncs), exc)
            return
        await self.apply(addrs)

    async def apply(self, addrs: list[str]) -> None:
        """Start a sync for each new address; drop those gone from discovery once they
        have been gone for `departure_grace`.

        An agent whose discovery entry vanished (its lease ran out) has most likely
        failed. Dropping its node at once would drop its containers from the view before
        the failure is noticed, and nothing would be rescheduled. So the node stays, is
        still heartbeaten (and turns unhealthy if it is dead, which moves the containers
        that ask to be moved), and goes only after the grace period."""
        now = time.monotonic()
        present = set(addrs)  # a list here made each poll quadratic: seconds at 10,000
        for addr in addrs:
            if self._departed.pop(addr, None) is not None:
                self._syncs[addr].departed = False
                self._syncs[addr].wake()
            if addr not in self._syncs:
                sync = NodeSync(self, addr)
                self._syncs[addr] = sync
                sync.start()
        for addr in [a for a in self._syncs if a not in present and a not in self._departed]:
            self._departed[addr] = now
            log.info("agent %s left discovery; its node goes in %.0fs unless it returns",
                     addr, self.departure_grace)
            self._syncs[addr].departed = True
            self._syncs[addr].wake()
        for addr, since in list(self._departed.items()):
            if now - since < self.departure_grace:
                continue
            del self._departed[addr]
            sync = self._syncs.pop(addr)
            if sync.node_id is not None:
                self.forget(sync.node_id)
            log.info("agent %s dropped: gone from discovery", addr)
            await sync.stop()

    @property
    def departure_grace(self) -> float:
        """Long enough for a dead node to fail its heartbeats and be rescheduled."""
        period = max(self.heartbeat, self.refresh.high if self.refresh else 0.0)
        return period * (self.failure_retry + 1)

    # ---------------------------------------------------------------- lookups
    def adopt(self, node_id: str, sync: NodeSync) -> None:
        self._by_node[node_id] = sync
        self.clients.add(node_id, sync.client)

    def forget(self, node_id: str) -> None:
        self._by_node.pop(node_id, None)
        self.clients.remove(node_id)

    def take_info(self, node_id: str, info) -> Node | None:
        """An UpdateNode answer into the state at once, so the next decision sees it."""
        sync = self._by_node.get(node_id)
        return sync.take_info(info) if sync is not None else None

    def wake(self, node_id: str) -> None:
        sync = self._by_node.get(node_id)
        if sync is not None:
            sync.wake()

    def node_failed(self, node_id: str) -> None:
        if self.rescheduler is not None:
            self.rescheduler.node_failed(node_id)

"""The manager's in-memory view of the cluster, with the indexes the scheduler needs.

Pure data structure, no I/O. Every change goes through a method here so that the
per-node totals (reserved CPUs and memory, container count, host ports in use) and
the lookup indexes (id, name, node name) stay right without rescanning: a scheduling
decision at 10,000 nodes must not walk every container.

Reservations for containers still being created on an agent are held as *pending*
entries (see `reserve`) so that concurrent `create` calls do not all pick the same
"emptiest" node before the first one lands.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from manager.cluster.model import HEALTHY, Container, Node


class NotFound(LookupError):
    """No container or node answers to the reference."""


class Ambiguous(LookupError):
    """An ID prefix or name matches more than one container."""


@dataclass
class NodeUsage:
    """Running totals for one node, kept incrementally."""

    cpus: float = 0.0
    memory: int = 0
    containers: int = 0
    ports: dict[tuple[int, str], int] = field(default_factory=dict)  # (port, proto) -> users


@dataclass
class Pending:
    """A reservation for a container that is being created on `node_id`."""

    token: int
    node_id: str
    name: str
    cpus: float
    memory: int
    ports: list[tuple[int, str]]


class ClusterState:
    """Nodes, containers and the indexes over them."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._node_by_name: dict[str, str] = {}
        self._containers: dict[str, Container] = {}
        self._by_name: dict[str, str] = {}
        self._by_node: dict[str, set[str]] = defaultdict(set)
        self._usage: dict[str, NodeUsage] = defaultdict(NodeUsage)
        self._pending: dict[int, Pending] = {}
        self._pending_names: dict[str, int] = {}
        self._tokens = itertools.count(1)
        # Bumped on every change; lets callers cache derived views cheaply.
        self.generation = 0

    # ---------------------------------------------------------------- nodes
    def upsert_node(self, node: Node) -> None:
        old = self._nodes.get(node.id)
        if old is not None and old.name != node.name:
            self._node_by_name.pop(old.name, None)
        self._nodes[node.id] = node
        self._node_by_name[node.name] = node.id
        self.generation += 1

    def remove_node(self, node_id: str) -> list[Container]:
        """Forget a node and its containers; returns the containers dropped."""
        node = self._nodes.pop(node_id, None)
        if node is None:
            return []
        self._node_by_name.pop(node.name, None)
        dropped = [self._containers[cid] for cid in list(self._by_node.get(node_id, ()))]
        for container in dropped:
            self.remove_container(container.id)
        self._by_node.pop(node_id, None)
        self._usage.pop(node_id, None)
        for token in [t for t, p in self._pending.items() if p.node_id == node_id]:
            self.release(token)
        self.generation += 1
        return dropped

    def set_health(self, node_id: str, health: str, error: str = "") -> None:
        node = self._nodes.get(node_id)
        if node is not None:
            node.health = health
            node.error = error
            self.generation += 1

    def node(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def node_by_name(self, name: str) -> Node | None:
        node_id = self._node_by_name.get(name)
        return self._nodes.get(node_id) if node_id else None

    def find_node(self, ref: str) -> Node:
        """A node by ID, name or address; raises NotFound."""
        node = self._nodes.get(ref) or self.node_by_name(ref)
        if node is None:
            node = next((n for n in self._nodes.values() if n.addr == ref), None)
        if node is None:
            raise NotFound(f"No such node: {ref}")
        return node

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def healthy_nodes(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.health == HEALTHY]

    def usage(self, node_id: str) -> NodeUsage:
        """Reserved resources, container count and ports of a node, pending included."""
        return self._usage[node_id]

    # ----------------------------------------------------------- containers
    def upsert_container(self, container: Container) -> None:
        old = self._containers.get(container.id)
        if old is not None:
            self._unaccount(old)
        self._containers[container.id] = container
        self._account(container)
        self.generation += 1

    def remove_container(self, container_id: str) -> Container | None:
        container = self._containers.pop(container_id, None)
        if container is not None:
            self._unaccount(container)
            self.generation += 1
        return container

    def container(self, container_id: str) -> Container | None:
        return self._containers.get(container_id)

    def containers(self, node_id: str | None = None) -> list[Container]:
        if node_id is None:
            return list(self._containers.values())
        return [self._containers[cid] for cid in self._by_node.get(node_id, ())]

    def container_count(self) -> int:
        return len(self._containers)

    def name_taken(self, name: str) -> bool:
        """True when a container or a pending create already uses `name`."""
        return name in self._by_name or name in self._pending_names

    def resolve(self, ref: str) -> Container:
        """A container by full ID, name, `node/name`, `/name` or unique ID prefix."""
        ref = ref.lstrip("/")
        found = self._containers.get(ref)
        if found is not None:
            return found
        cid = self._by_name.get(ref)
        if cid is not None:
            return self._containers[cid]
        if "/" in ref:
            node_name, _, name = ref.partition("/")
            cid = self._by_name.get(name)
            node = self.node_by_name(node_name)
            if cid is not None and node is not None and self._containers[cid].node_id == node.id:
                return self._containers[cid]
            raise NotFound(f"No such container: {ref}")
        matches = [c for c in self._containers.values() if c.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Ambiguous(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    # --------------------------------------------------------- reservations
    def reserve(
        self,
        node_id: str,
        name: str,
        cpus: float,
        memory: int,
        ports: list[tuple[int, str]] | None = None,
    ) -> int:
        """Hold resources (and the name) on a node while a create is in flight."""
        token = next(self._tokens)
        pending = Pending(token, node_id, name, cpus, memory, list(ports or []))
        self._pending[token] = pending
        if name:
            self._pending_names[name] = token
        usage = self._usage[node_id]
        usage.cpus += cpus
        usage.memory += memory
        usage.containers += 1
        for port in pending.ports:
            usage.ports[port] = usage.ports.get(port, 0) + 1
        self.generation += 1
        return token

    def release(self, token: int) -> None:
        """Drop a pending reservation (the create finished or failed)."""
        pending = self._pending.pop(token, None)
        if pending is None:
            return
        if pending.name and self._pending_names.get(pending.name) == token:
            del self._pending_names[pending.name]
        usage = self._usage[pending.node_id]
        usage.cpus -= pending.cpus
        usage.memory -= pending.memory
        usage.containers -= 1
        _drop_ports(usage, pending.ports)
        self.generation += 1

    # -------------------------------------------------------------- private
    def _account(self, container: Container) -> None:
        if container.name:
            self._by_name[container.name] = container.id
        self._by_node[container.node_id].add(container.id)
        usage = self._usage[container.node_id]
        usage.cpus += container.reserved_cpus
        usage.memory += container.reserved_memory
        usage.containers += 1
        for port in container.ports:
            usage.ports[port] = usage.ports.get(port, 0) + 1

    def _unaccount(self, container: Container) -> None:
        if container.name and self._by_name.get(container.name) == container.id:
            del self._by_name[container.name]
        self._by_node[container.node_id].discard(container.id)
        usage = self._usage[container.node_id]
        usage.cpus -= container.reserved_cpus
        usage.memory -= container.reserved_memory
        usage.containers -= 1
        _drop_ports(usage, container.ports)


def _drop_ports(usage: NodeUsage, ports: list[tuple[int, str]]) -> None:
    for port in ports:
        left = usage.ports.get(port, 0) - 1
        if left > 0:
            usage.ports[port] = left
        else:
            usage.ports.pop(port, None)

"""The manager's in-memory view of the cluster, with the indexes the scheduler needs.

Pure data structure, no I/O. Every change goes through a method here so that the
per-node totals (reserved CPUs and memory, container count, host ports in use) and
the lookup indexes (id, name, node name) stay right without rescanning: a scheduling
decision at 10,000 nodes must not walk every container.

Reservations for containers still being created on an agent are held as *pending*
entries (see `reserve`) so that concurrent `create` calls do not all pick the same
"emptiest" node before the first one lands. A reservation with a name also claims the
name cluster-wide, in the same synchronous step (container_names.py); a rename claims
its new name alone (`claim_name`). Node names are unique too: `upsert_node` refuses a
second node with a taken name (NodeNameTaken).

Indexes for the scheduler's filters (all kept incrementally): node label -> nodes,
image reference -> nodes (from `set_node_images` and the images of the node's
containers), container label -> nodes, host port -> nodes using it. Nodes and
containers must change through these methods (`upsert_node`, `set_health`,
`upsert_container`, ...) for the indexes to stay right; accounting uses a snapshot
of what was indexed, so re-upserting an object mutated in place is safe.

Consumers with views of their own (the scheduler's ranking buckets) `attach` a listener
that hears of every change to a node's usage or to the containers, so that they too
stay current without rescanning.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from flock.manager.cluster.container_names import ContainerNames, NameTaken
from flock.manager.cluster.image_refs import image_aliases
from flock.manager.cluster.labels import SWARM_ID_LABEL
from flock.manager.cluster.model import HEALTHY, Container, Node
from flock.manager.cluster.state_types import (
    Accounted,
    Ambiguous,
    Listener,
    ListenerT,
    NodeNameTaken,
    NodeUsage,
    NotFound,
    Pending,
    ResourceClass,
)

__all__ = ["Ambiguous", "ClusterState", "Listener", "NameTaken", "NodeNameTaken",
           "NodeUsage", "NotFound", "Pending", "ResourceClass", "image_aliases"]


class ClusterState:
    """Nodes, containers and the indexes over them."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._node_by_name: dict[str, str] = {}
        self._names: dict[str, str] = {}  # node ID -> the name indexed (nodes mutate in place)
        self._containers: dict[str, Container] = {}
        self._by_name = ContainerNames()  # holders and claims of container names
        self._by_node: dict[str, set[str]] = defaultdict(set)
        self._usage: dict[str, NodeUsage] = defaultdict(NodeUsage)
        self._pending: dict[int, Pending] = {}
        self._tokens = itertools.count(1)
        self._accounted: dict[str, Accounted] = {}
        # node label key -> value -> node ids (from a snapshot of the labels indexed)
        self._labels: dict[str, dict[str, set[str]]] = {}
        self._node_labels: dict[str, dict[str, str]] = {}
        # image alias -> node id -> references (node images count once, containers each)
        self._images: dict[str, dict[str, int]] = {}
        self._node_images: dict[str, frozenset[str]] = {}
        # container label key -> value -> node id -> number of containers
        self._container_labels: dict[str, dict[str, dict[str, int]]] = {}
        # (port, proto) -> node ids with that host port in use (pending included)
        self._port_nodes: dict[tuple[int, str], set[str]] = {}
        self._healthy: set[str] = set()
        self._unhealthy: set[str] = set()  # pending or unhealthy
        # Per-node keys of the two bucket indexes below, so a node moves in O(1).
        self._count_of: dict[str, int] = {}
        self._class_of: dict[str, ResourceClass] = {}
        # containers on a node (pending included) -> IDs of the nodes with that many
        self._by_count: dict[int, set[str]] = {}
        # (total CPUs, total memory, reserved CPUs, reserved memory) -> node IDs
        self._by_class: dict[ResourceClass, set[str]] = {}
        # containerslots=N of the nodes with an integer label; those with N or more
        # containers (pending included) are full.
        self._slot_limit: dict[str, int] = {}
        self._slots_full: set[str] = set()
        self._listeners: dict[str, Listener] = {}
        # Bumped on every change; lets callers cache derived views cheaply.
        self.generation = 0
        # Bumped only when nodes come or go, or a node's name or labels change: views
        # derived from node labels and names stay valid across usage changes.
        self.node_generation = 0
        # Bumped when the set of healthy nodes or a node's API version changes: what
        # the whole cluster speaks (Manager.api_version) is cached on it.
        self.health_generation = 0

    # ---------------------------------------------------------------- nodes
    def upsert_node(self, node: Node) -> None:
        """Add or update a node; raises NodeNameTaken (and changes nothing) when another
        node already has its name. A node that comes back with the same ID keeps its
        name: that is a restart, not a second node."""
        holder = self._node_by_name.get(node.name)
        if holder is not None and holder != node.id and holder in self._nodes:
            raise NodeNameTaken(node, self._nodes[holder])
        old = self._nodes.get(node.id)
        if old is None or old.api_version != node.api_version:
            self.health_generation += 1
        old_name = self._names.get(node.id)
        if old_name != node.name:
            if old_name is not None and self._node_by_name.get(old_name) == node.id:
                del self._node_by_name[old_name]
            self.node_generation += 1
        self._names[node.id] = node.name
        self._nodes[node.id] = node
        self._node_by_name[node.name] = node.id
        self._index_labels(node.id, dict(node.labels))
        self._index_health(node)
        self._rebucket(node.id)
        self.generation += 1

    def remove_node(self, node_id: str) -> list[Container]:
        """Forget a node and its containers; returns the containers dropped."""
        node = self._nodes.pop(node_id, None)
        if node is None:
            return []
        self._healthy.discard(node_id)
        self._unhealthy.discard(node_id)
        self.health_generation += 1
        _move(self._by_count, self._count_of.pop(node_id, None), None, node_id)
        _move(self._by_class, self._class_of.pop(node_id, None), None, node_id)
        self._node_by_name.pop(self._names.pop(node_id, node.name), None)
        dropped = [self._containers[cid] for cid in list(self._by_node.get(node_id, ()))]
        for container in dropped:
            self.remove_container(container.id)
        for token in [t for t, p in self._pending.items() if p.node_id == node_id]:
            self.release(token)
        self._by_node.pop(node_id, None)
        self._usage.pop(node_id, None)
        self._index_labels(node_id, {})
        self.set_node_images(node_id, ())
        self._slots_full.discard(node_id)
        self.generation += 1
        self.node_generation += 1
        for listener in self._listeners.values():
            listener.node_changed(node_id, None, None)
        return dropped

    def set_health(self, node_id: str, health: str, error: str = "") -> None:
        node = self._nodes.get(node_id)
        if node is not None:
            node.health = health
            node.error = error
            self._index_health(node)
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

    # ------------------------------------------------- scheduler's read views
    def node_map(self) -> Mapping[str, Node]:
        """Every node by ID, read-only and live: the scheduler's candidate universe."""
        return MappingProxyType(self._nodes)

    def usage_map(self) -> Mapping[str, NodeUsage]:
        """Usage by node ID (absent: nothing reserved), read-only and live."""
        return MappingProxyType(self._usage)

    def healthy_node_ids(self) -> set[str]:
        """IDs of the healthy nodes (kept by upsert_node and set_health). Do not mutate."""
        return self._healthy

    def unhealthy_node_ids(self) -> set[str]:
        """IDs of the nodes that are not healthy (pending, unhealthy, disconnected). Do
        not mutate."""
        return self._unhealthy

    def nodes_by_resource_class(self) -> Mapping[ResourceClass, set[str]]:
        """(total CPUs, total memory, reserved CPUs, reserved memory) -> node IDs.

        Nodes of one class score the same for any request, so a strategy computes a
        score once per class instead of once per node (10,000 nodes usually fall into
        far fewer classes)."""
        return MappingProxyType(self._by_class)

    def nodes_by_container_count(self) -> Mapping[int, set[str]]:
        """Container count (pending included) -> IDs of the nodes with that many; lets a
        strategy find the emptiest or fullest nodes without visiting every node."""
        return MappingProxyType(self._by_count)

    def slot_full_node_ids(self) -> set[str]:
        """IDs of the nodes labelled containerslots=N that hold N or more containers
        (pending included). Do not mutate."""
        return self._slots_full

    def attach(self, key: str, factory: Callable[[ClusterState], ListenerT]) -> ListenerT:
        """The consumer view `key`, built by `factory(self)` on first use and told of
        every change from then on (its `node_changed` / `container_changed`)."""
        listener = self._listeners.get(key)
        if listener is None:
            listener = self._listeners[key] = factory(self)
        return listener  # type: ignore[return-value]

    def label_values(self, key: str) -> Mapping[str, set[str]]:
        """Node label `key`: value -> IDs of the nodes with that value. Do not mutate."""
        return self._labels.get(key, _EMPTY)

    def set_node_images(self, node_id: str, refs: Iterable[str]) -> None:
        """Replace the images a node reports (tags, digests and IDs)."""
        new = frozenset(alias for ref in refs for alias in image_aliases(ref))
        old = self._node_images.get(node_id, frozenset())
        if new == old:
            return
        for alias in old - new:
            self._count_image(alias, node_id, -1)
        for alias in new - old:
            self._count_image(alias, node_id, 1)
        if new:
            self._node_images[node_id] = new
        else:
            self._node_images.pop(node_id, None)
        self.generation += 1

    def node_images(self, node_id: str) -> frozenset[str]:
        """The image aliases set by `set_node_images` (containers' images not included)."""
        return self._node_images.get(node_id, frozenset())

    def image_index(self) -> Mapping[str, Mapping[str, int]]:
        """Image alias -> node ID -> references, over node images and container images.

        Aliases of `repo:tag` are the reference itself and `repo`; of a bare `repo`,
        also `repo:latest`; of an ID `sha256:<hex>`, also `<hex>` and its 12-digit form.
        """
        return MappingProxyType(self._images)

    def nodes_with_image(self, ref: str) -> set[str]:
        return set(self._images.get(ref, ()))

    def image_holders(self, ref: str) -> int:
        """How many nodes have image `ref` (without copying their IDs)."""
        return len(self._images.get(ref, ()))

    def container_label_values(self, key: str) -> Mapping[str, Mapping[str, int]]:
        """Container label `key`: value -> node ID -> containers with it. Do not mutate."""
        return self._container_labels.get(key, _EMPTY)

    def nodes_using_port(self, port: int, proto: str = "tcp") -> set[str]:
        """IDs of the nodes where host port `port/proto` is bound (pending included)."""
        return self._port_nodes.get((port, proto), _EMPTY_SET)

    def container_names(self) -> Mapping[str, str]:
        """Container name -> ID (one of them, for a name two containers share), read-only
        and live."""
        return self._by_name.first()

    def container_map(self) -> Mapping[str, Container]:
        """Every container by ID, read-only and live."""
        return MappingProxyType(self._containers)

    def container_node(self, ref: str) -> str | None:
        """The node ID holding container `ref` (as `resolve` reads it, or a pending
        create's name); None when there is no such container or `ref` is ambiguous."""
        try:
            return self.resolve(ref).node_id
        except LookupError:
            pending = self._pending.get(self._by_name.claim_token(ref.lstrip("/")) or 0)
            return pending.node_id if pending is not None else None

    # ----------------------------------------------------------- containers
    def upsert_container(self, container: Container) -> None:
        acc = self._accounted.get(container.id)
        if acc is not None and acc.same_for(container):
            # A state change (the start's read-back): the indexes stay as they are, and
            # only the views of the record itself hear of it.
            self._containers[container.id] = container
            self.generation += 1
            for listener in self._listeners.values():
                listener.container_rewritten(container.id, container.node_id)
            return
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
        """True when a container or a claim in flight (create, rename) already uses `name`.
        Only a fast answer: `reserve` and `claim_name` are what make a name one's own."""
        return self._by_name.taken(name)

    def resolve(self, ref: str) -> Container:
        """A container by full ID or Swarm ID, name, `node/name`, `/name` or unique ID or
        Swarm ID prefix, in classic Swarm's order (cluster/container.go, Get). A name
        two containers share (made directly on two engines) is Ambiguous alone and
        found with its node's name."""
        ref = ref.lstrip("/")
        found = self._containers.get(ref) or self._by_swarm_id(ref)
        if found is not None:
            return found
        holders = self._by_name.holders(ref)
        if len(holders) == 1:
            return self._containers[holders[0]]
        if holders:
            raise Ambiguous(f"More than one container is named {ref} in the cluster: "
                            "give it as NODE/NAME")
        if "/" in ref:
            node_name, _, name = ref.partition("/")
            node = self.node_by_name(node_name)
            for cid in self._by_name.holders(name) if node is not None else ():
                if self._containers[cid].node_id == node.id:
                    return self._containers[cid]
            raise NotFound(f"No such container: {ref}")
        matches = [self._containers[cid] for cid in self._containers
                   if cid.startswith(ref)] if ref else []
        matches += [c for sid in self._container_labels.get(SWARM_ID_LABEL, _EMPTY)
                    if ref and sid.startswith(ref) and (c := self._by_swarm_id(sid))
                    and c not in matches]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Ambiguous(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def _by_swarm_id(self, ref: str) -> Container | None:
        """The container whose Swarm ID is `ref`: of the two copies a reschedule leaves
        for a moment, the newer (the one reschedule.stale_copies keeps)."""
        nodes = self._container_labels.get(SWARM_ID_LABEL, _EMPTY).get(ref, _EMPTY)
        copies = [c for node_id in nodes for cid in self._by_node.get(node_id, ())
                  if (c := self._containers[cid]).swarm_id == ref]
        return max(copies, key=lambda c: (c.created, c.id), default=None)

    # --------------------------------------------------------- reservations
    def reserve(
        self,
        node_id: str,
        name: str,
        cpus: float,
        memory: int,
        ports: list[tuple[int, str]] | None = None,
        replacing: str = "",
    ) -> int:
        """Hold resources (and the name) on a node while a create is in flight. The name
        is claimed first: NameTaken (and nothing held) when a container or another
        claim has it; `replacing` is a container the new one replaces (see
        ContainerNames.claim)."""
        token = next(self._tokens)
        if name:
            self._by_name.claim(name, token, replacing)
        pending = Pending(token, node_id, name, cpus, memory, list(ports or []))
        self._pending[token] = pending
        usage = self._usage[node_id]
        usage.cpus += cpus
        usage.memory += memory
        usage.containers += 1
        self._rebucket(node_id)
        self._add_ports(node_id, usage, pending.ports)
        self.generation += 1
        return token

    def claim_name(self, name: str, replacing: str = "") -> int:
        """Claim a container name with no resources (a rename); raises NameTaken. Give
        the token back to `release`."""
        token = next(self._tokens)
        self._by_name.claim(name, token, replacing)
        return token

    def release(self, token: int) -> None:
        """Drop a pending reservation or a name claim (the change finished or failed)."""
        self._by_name.unclaim(token)
        pending = self._pending.pop(token, None)
        if pending is None:
            return
        usage = self._usage[pending.node_id]
        usage.cpus -= pending.cpus
        usage.memory -= pending.memory
        usage.containers -= 1
        self._rebucket(pending.node_id)
        self._drop_ports(pending.node_id, usage, pending.ports)
        self.generation += 1

    # -------------------------------------------------------------- private
    def _account(self, container: Container) -> None:
        acc = Accounted(
            node_id=container.node_id,
            name=container.name,
            cpus=container.reserved_cpus,
            memory=container.reserved_memory,
            ports=tuple(container.ports),
            images=frozenset(
                alias
                for ref in (container.image, container.image_id)
                for alias in image_aliases(ref)
            ),
            labels=tuple((container.labels or {}).items()),
            refs=(container.image, container.image_id),
        )
        self._accounted[container.id] = acc
        if acc.name:
            self._by_name.add(acc.name, container.id)
        self._by_node[acc.node_id].add(container.id)
        usage = self._usage[acc.node_id]
        usage.cpus += acc.cpus
        usage.memory += acc.memory
        usage.containers += 1
        self._rebucket(acc.node_id)
        self._add_ports(acc.node_id, usage, acc.ports)
        for alias in acc.images:
            self._count_image(alias, acc.node_id, 1)
        for key, value in acc.labels:
            self._count_container_label(key, value, acc.node_id, 1)
        for listener in self._listeners.values():
            listener.container_changed(container.id, acc.name, acc.node_id, True)

    def _unaccount(self, container: Container) -> None:
        acc = self._accounted.pop(container.id)
        if acc.name:
            self._by_name.discard(acc.name, container.id)
        self._by_node[acc.node_id].discard(container.id)
        usage = self._usage[acc.node_id]
        usage.cpus -= acc.cpus
        usage.memory -= acc.memory
        usage.containers -= 1
        self._rebucket(acc.node_id)
        self._drop_ports(acc.node_id, usage, acc.ports)
        for alias in acc.images:
            self._count_image(alias, acc.node_id, -1)
        for key, value in acc.labels:
            self._count_container_label(key, value, acc.node_id, -1)
        for listener in self._listeners.values():
            listener.container_changed(container.id, acc.name, acc.node_id, False)

    def _add_ports(self, node_id: str, usage: NodeUsage, ports: Iterable[tuple[int, str]]) -> None:
        for port in ports:
            users = usage.ports.get(port, 0)
            usage.ports[port] = users + 1
            if users == 0:
                self._port_nodes.setdefault(port, set()).add(node_id)

    def _drop_ports(self, node_id: str, usage: NodeUsage, ports: Iterable[tuple[int, str]]) -> None:
        for port in ports:
            left = usage.ports.get(port, 0) - 1
            if left > 0:
                usage.ports[port] = left
                continue
            usage.ports.pop(port, None)
            holders = self._port_nodes.get(port)
            if holders is not None:
                holders.discard(node_id)
                if not holders:
                    del self._port_nodes[port]

    def _index_health(self, node: Node) -> None:
        if node.health == HEALTHY:
            if node.id not in self._healthy:
                self.health_generation += 1
            self._healthy.add(node.id)
            self._unhealthy.discard(node.id)
        else:
            if node.id in self._healthy:
                self.health_generation += 1
            self._healthy.discard(node.id)
            self._unhealthy.add(node.id)

    def _rebucket(self, node_id: str) -> None:
        """Move a node to its current container-count and resource-class buckets."""
        node = self._nodes.get(node_id)
        if node is None:
            return
        usage = self._usage.get(node_id)
        count = usage.containers if usage is not None else 0
        cls = ResourceClass(
            node.cpus,
            node.memory,
            round(usage.cpus, 9) if usage is not None else 0.0,
            usage.memory if usage is not None else 0,
        )
        old_count = self._count_of.get(node_id)
        if old_count != count:
            _move(self._by_count, old_count, count, node_id)
            self._count_of[node_id] = count
        old_cls = self._class_of.get(node_id)
        if old_cls != cls:
            _move(self._by_class, old_cls, cls, node_id)
            self._class_of[node_id] = cls
        self._check_slots(node_id, count)
        for listener in self._listeners.values():
            listener.node_changed(node_id, node, usage)

    def _check_slots(self, node_id: str, count: int) -> None:
        limit = self._slot_limit.get(node_id)
        if limit is not None and count >= limit:
            self._slots_full.add(node_id)
        else:
            self._slots_full.discard(node_id)

    def _index_labels(self, node_id: str, labels: dict[str, str]) -> None:
        old = self._node_labels.pop(node_id, {})
        for key, value in old.items():
            if labels.get(key) == value:
                continue
            by_value = self._labels[key]
            by_value[value].discard(node_id)
            if not by_value[value]:
                del by_value[value]
                if not by_value:
                    del self._labels[key]
        for key, value in labels.items():
            if old.get(key) != value:
                self._labels.setdefault(key, {}).setdefault(value, set()).add(node_id)
        if labels:
            self._node_labels[node_id] = labels
        if old != labels:
            self.node_generation += 1
        try:
            self._slot_limit[node_id] = int(labels[SLOTS_LABEL])
        except (KeyError, ValueError):
            self._slot_limit.pop(node_id, None)

    def _count_image(self, alias: str, node_id: str, delta: int) -> None:
        _bump(self._images, alias, node_id, delta)

    def _count_container_label(self, key: str, value: str, node_id: str, delta: int) -> None:
        by_value = self._container_labels.setdefault(key, {})
        _bump(by_value, value, node_id, delta)
        if not by_value:
            del self._container_labels[key]


SLOTS_LABEL = "containerslots"
_EMPTY: Mapping = MappingProxyType({})
_EMPTY_SET: frozenset = frozenset()


def _move(index: dict, old: object, new: object, node_id: str) -> None:
    """Move node_id from bucket `old` to bucket `new` (None: none), dropping empty ones."""
    if old is not None:
        bucket = index.get(old)
        if bucket is not None:
            bucket.discard(node_id)
            if not bucket:
                del index[old]
    if new is not None:
        index.setdefault(new, set()).add(node_id)


def _bump(index: dict[str, dict[str, int]], key: str, node_id: str, delta: int) -> None:
    """Add `delta` to index[key][node_id], dropping entries that reach zero."""
    counts = index.setdefault(key, {})
    total = counts.get(node_id, 0) + delta
    if total > 0:
        counts[node_id] = total
    else:
        counts.pop(node_id, None)
        if not counts:
            del index[key]


"""The values the cluster state keeps and hands out (manager/cluster/state.py): the
per-node totals, pending reservations, what a container contributed to the indexes, and
the listener protocol for views kept alongside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from flock.manager.cluster.model import Container, Node


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


class Listener(Protocol):
    """A consumer's incremental view of the state (see `ClusterState.attach`)."""

    # A node was added or removed (node None), or its totals or usage changed.
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None: ...

    # A container was accounted (added) or unaccounted on `node_id`.
    def container_changed(self, container_id: str, name: str, node_id: str, added: bool) -> None:
        ...

    # A container's record was replaced by one that accounts the same (its state, its
    # list entry changed; not its node, name, reservations, ports, images or labels).
    def container_rewritten(self, container_id: str, node_id: str) -> None: ...


ListenerT = TypeVar("ListenerT", bound=Listener)


class ResourceClass(NamedTuple):
    """What a node's CPU and memory scores depend on (reserved: pending included)."""

    cpus: float
    memory: int
    reserved_cpus: float
    reserved_memory: int


@dataclass(frozen=True)
class Accounted:
    """What a container contributed to the indexes, so that removal undoes exactly that."""

    node_id: str
    name: str
    cpus: float
    memory: int
    ports: tuple[tuple[int, str], ...]
    images: frozenset[str]
    labels: tuple[tuple[str, str], ...]
    refs: tuple[str, str] = ("", "")  # the image and image ID `images` was made from

    def same_for(self, container: Container) -> bool:
        """Whether `container` would contribute exactly this (ClusterState._account)."""
        return (self.node_id == container.node_id and self.name == container.name
                and self.cpus == container.reserved_cpus
                and self.memory == container.reserved_memory
                and self.refs == (container.image, container.image_id)
                and self.ports == tuple(container.ports)
                and self.labels == tuple((container.labels or {}).items()))


class NodeNameTaken(Exception):
    """A node reports the name another node (a different ID) already has: two engines on
    hosts both called `vm`. `constraint:node==vm` and `vm/web` must keep meaning one
    machine, so the newcomer is refused until it is given a name of its own."""

    def __init__(self, node: Node, holder: Node) -> None:
        super().__init__(
            f'node name "{node.name}" is already taken by the node at {holder.addr} '
            f"({holder.id}): the node at {node.addr} stays out of the cluster until it "
            f"has a name of its own: restart its agent with `flock join --name NAME`")
        self.node = node
        self.holder = holder

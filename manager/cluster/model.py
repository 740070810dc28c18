"""The manager's records of nodes and containers.

Plain data, no I/O: the scheduler reads these, the sync code (which talks to agents)
writes them through `ClusterState`. Engines are the source of truth; these records are
the manager's cached view of them, rebuilt from the agents at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flock.manager.cluster.labels import SWARM_ID_LABEL

# classic Swarm's engine states (cluster/engine.go stateText): never reached yet;
# answering; failed --engine-failure-retry refreshes in a row; gone from discovery.
PENDING = "pending"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
DISCONNECTED = "disconnected"


@dataclass
class Node:
    """One agent's machine as the manager sees it."""

    id: str
    name: str
    addr: str  # the agent's gRPC address, host:port
    cpus: int = 0
    memory: int = 0  # bytes
    # Engine labels plus the standard keys the constraint filter knows:
    # storagedriver, executiondriver, kernelversion, operatingsystem, ostype.
    labels: dict[str, str] = field(default_factory=dict)
    health: str = PENDING  # pending | healthy | unhealthy | disconnected
    error: str = ""  # the last refresh error, shown by `docker info`
    runtime: str = ""  # docker | exec | hollow
    server_version: str = ""
    api_version: str = ""
    min_api_version: str = ""
    updated_at: float = 0.0  # seconds since the epoch of the last refresh, good or failed
    images: int = 0  # image count reported by the node
    availability: str = "active"  # active | drain, kept by the node's agent (UpdateNode)

    @property
    def healthy(self) -> bool:
        return self.health == HEALTHY


@dataclass
class Container:
    """One container on one node, as the manager caches it."""

    id: str
    name: str  # without the leading slash
    node_id: str
    image: str = ""  # Config.Image as the user gave it
    image_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    reserved_cpus: float = 0.0  # CPUs reserved by -c/--cpu-shares or --cpus
    reserved_memory: int = 0  # bytes reserved by -m
    state: str = "created"  # created | running | paused | restarting | exited | dead
    # Host ports bound by this container, as (port, protocol) pairs; includes the
    # exposed ports of --net=host containers.
    ports: list[tuple[int, str]] = field(default_factory=list)
    network_mode: str = ""
    # The engine's containers/json entry (the list shape), kept so that
    # `docker ps` answers from memory. Names inside it are the engine's own.
    summary: dict = field(default_factory=dict)
    created: float = 0.0
    # The create body (Config + HostConfig) read from inspect, kept only for containers
    # with a reschedule policy so that they can be recreated when their node fails.
    create_config: dict | None = None

    @property
    def swarm_id(self) -> str:
        """The classic Swarm ID every container placed by a manager carries: it stays
        when the container is rescheduled, and is a reference to it (state.resolve)."""
        return (self.labels or {}).get(SWARM_ID_LABEL, "")


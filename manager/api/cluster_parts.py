"""What the fronts (Docker API, ClusterService, cluster page) may touch of a manager.

Handlers used to reach through the whole `Manager` (`call.manager.watcher.record_change`),
so any of them could start, stop or rewire anything, and none said what it needed. A
`Cluster` names the parts a request may use: the state to read, the one writer of
container records, the agent clients, the scheduler and the create path; and, apart,
the few facts about this manager that `/info`, `/version` and the replication rules
need (`ThisManager`). The manager builds one and hands it to every front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flock.manager.cluster.clients import Clients
    from flock.manager.cluster.container_records import Records
    from flock.manager.cluster.model import Node
    from flock.manager.cluster.state import ClusterState
    from flock.manager.cron.service import CronService
    from flock.manager.observability import ManagerMetrics
    from flock.manager.observability.local_events import LocalEvents
    from flock.manager.placement.create import Placement
    from flock.manager.placement.global_copies import GlobalReconciler
    from flock.manager.placement.reschedule import Rescheduler
    from flock.manager.scheduler.scheduler import Scheduler


class ThisManager(Protocol):
    """This manager's own facts: its name and version for `/info` and `/version`, the
    rows and warnings `docker info` shows about its role and TLS, and whether it may
    make changes (a replica sends them to the primary)."""

    name: str

    def api_version(self) -> str: ...

    def role_rows(self) -> list[list[str]]: ...

    def tls_rows(self) -> list[list[str]]: ...

    def security_warnings(self) -> list[str]: ...

    def is_primary(self) -> bool: ...

    def primary_address(self) -> str: ...


class NodeUpdates(Protocol):
    """The node watcher's two doors the ClusterService uses: take an agent's answer to
    a node update into the state at once, and hear of nodes turning healthy."""

    on_healthy: list[Callable[[str], None]]

    def take_info(self, node_id: str, info: Any) -> Node | None: ...


@dataclass(frozen=True)
class ListingRefresh:
    """classic's `--refresh-on-node-filter` and `--container-name-refresh-filter`: the
    nodes a `docker ps` re-reads first (ps_refresh.py)."""

    on_node_filter: bool = False
    name_filter: str = ""


@dataclass
class Cluster:
    """The narrow object every request gets (`call.cluster`, the ClusterService's)."""

    state: ClusterState
    records: Records  # the one writer of container records
    clients: Clients  # node ID -> agent client; `require(node)` or NodeNotConnected
    scheduler: Scheduler
    placement: Placement  # the one create path
    metrics: ManagerMetrics
    this: ThisManager
    nodes: NodeUpdates
    rescheduler: Rescheduler  # `flock drain --reschedule` moves containers now
    global_copies: GlobalReconciler  # told of a node whose labels changed
    listing: ListingRefresh = field(default_factory=ListingRefresh)
    # Events the manager makes itself (cron runs) for `docker events` / Events; None: none
    local_events: LocalEvents | None = None
    exec_nodes: dict[str, str] = field(default_factory=dict)  # exec ID -> node ID
    # The cron jobs (`flock cron`, the page's Jobs panel); None on a manager built
    # without them, where the ClusterService answers that jobs are not served here.
    cron: CronService | None = None

"""A manager's view as `docker info` shows it: classic Swarm's SystemStatus pairs with
the Role/Primary rows of a replicated manager and one block per node."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from localcluster import probe


@dataclass
class ManagerView:
    role: str = ""  # primary or replica
    primary: str = ""  # HOST:PORT of the primary
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> Status


def parse_system_status(rows: list) -> ManagerView:
    view, node = ManagerView(), None
    for key, value in rows:
        if key == "Role":
            view.role = value
        elif key == "Primary":
            view.primary = value
        elif key.startswith(" ") and not key.startswith("  "):
            node = key.strip()
        elif key.strip() == "└ Status" and node is not None:
            view.nodes[node] = value
    return view


def manager_view(addr: str, tls: ssl.SSLContext | None = None) -> ManagerView | None:
    """The view of the manager on HOST:PORT, or None while it does not answer."""
    info = probe.get_json(addr, "/info", tls=tls)
    if not isinstance(info, dict):
        return None
    return parse_system_status(info.get("SystemStatus") or [])

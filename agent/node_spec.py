"""The operator's word on a node, set at run time through the manager: labels added or
removed, and availability (active or drain).

It lives with the agent, in its state folder (one file per node ID), because the agent
is what outlives a manager restart or failover, and the node's ID is stable there; the
agent reports it in every NodeInfo, so any manager that loads the node sees it without
extra storage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flock.certs.files import write_file

log = logging.getLogger(__name__)

FOLDER = "node-specs"
ACTIVE = "active"
DRAIN = "drain"
AVAILABILITIES = (ACTIVE, DRAIN)


@dataclass
class NodeSpec:
    labels_add: dict[str, str] = field(default_factory=dict)
    labels_remove: list[str] = field(default_factory=list)
    availability: str = ACTIVE

    def apply(self, labels: dict[str, str]) -> dict[str, str]:
        """The reported labels: the node's own, minus the removed keys, plus the added."""
        out = {k: v for k, v in labels.items() if k not in self.labels_remove}
        out.update(self.labels_add)
        return out

    def update(self, add: dict[str, str], remove: list[str], availability: str) -> None:
        """Later words win: adding a removed key brings it back and the other way round."""
        if availability and availability not in AVAILABILITIES:
            raise ValueError(f"invalid availability {availability!r}: use active or drain")
        for key in add:
            if not key or "=" in key:
                raise ValueError(f"invalid label key {key!r}")
        for key in remove:
            self.labels_add.pop(key, None)
            if key not in self.labels_remove:
                self.labels_remove.append(key)
        for key, value in add.items():
            self.labels_add[key] = value
            if key in self.labels_remove:
                self.labels_remove.remove(key)
        if availability:
            self.availability = availability


class NodeSpecStore:
    """NodeSpecs kept in `<state dir>/node-specs/<node id>.json` (in memory only without a
    folder). One file per node ID, because agents of different engines may share a state
    folder (the docker runtime's default one) and must not see each other's labels."""

    def __init__(self, state_dir: Path | None) -> None:
        self.folder = Path(state_dir) / FOLDER if state_dir else None
        self._specs: dict[str, NodeSpec] = {}

    def path(self, node_id: str) -> Path | None:
        if self.folder is None:
            return None
        if not node_id or "/" in node_id or node_id.startswith("."):
            raise ValueError(f"node ID {node_id!r} cannot name a file")
        return self.folder / f"{node_id}.json"

    def get(self, node_id: str) -> NodeSpec:
        if node_id not in self._specs:
            self._specs[node_id] = self._load(node_id)
        return self._specs[node_id]

    def _load(self, node_id: str) -> NodeSpec:
        path = self.path(node_id)
        if path is None or not path.exists():
            return NodeSpec()
        try:
            data = json.loads(path.read_text())
            return NodeSpec(dict(data.get("labels_add") or {}),
                            list(data.get("labels_remove") or []),
                            data.get("availability") or ACTIVE)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # A broken file must not stop the agent: its containers keep running and the
            # operator can set the labels again.
            log.error("%s is unreadable (%s): starting with no run-time labels", path, exc)
            return NodeSpec()

    def update(self, node_id: str, add: dict[str, str], remove: list[str],
               availability: str) -> NodeSpec:
        """Validate, write (atomically), then take the new spec; nothing changes on error."""
        old = self.get(node_id)
        spec = NodeSpec(dict(old.labels_add), list(old.labels_remove), old.availability)
        spec.update(add, remove, availability)
        path = self.path(node_id)
        if path is not None:
            write_file(path, json.dumps(spec.__dict__, indent=2).encode(), 0o600)
        self._specs[node_id] = spec
        return spec

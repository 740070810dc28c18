"""`docker ps -a` over a hundred thousand containers as bytes, mostly from a cache.

Building a dict per container and encoding the whole list again on every call costs
seconds at that size (and the allocations wake the garbage collector). A container's
list entry changes only when its record does, except for Status ("Up 5 minutes"),
which is computed at each call. So the entry is encoded once, split around Status,
and each call only joins the cached pieces around the live Status text. The bytes are
exactly `json.dumps` of the list that `ps.select` gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from manager.api.docker.ps import live_status, present, select_containers
from manager.cluster.convert import STATE_KEY
from manager.cluster.model import Container, Node
from manager.cluster.state import ClusterState, NodeUsage

_MARK = "\x00flock-status\x00"
_MARK_JSON = json.dumps(_MARK).encode()


class EntryCache:
    """Container ID -> its encoded entry, valid while the record's summary object and
    its node's name and address are the ones it was made from. Attached to the state
    (`attach`), which tells it of every record written: the entry is encoded then, off
    the path of the `ps` that will list it, and dropped when the container goes."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        # id -> (summary, node name, node addr, bytes before Status, bytes after or None)
        self._entries: dict[str, tuple[dict, str, str, bytes, bytes | None]] = {}

    # ClusterState listener; a renamed node's entries are re-encoded when next listed.
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        return None

    def container_changed(self, container_id: str, name: str, node_id: str,
                          added: bool) -> None:
        if not added:
            self._entries.pop(container_id, None)
            return
        container = self._state.container(container_id)
        if container is not None:
            node = self._state.node(node_id)
            self._encode(container, node, *((node.name, node.addr) if node else ("", "")))

    def entry(self, container: Container, node: Node | None, now: float) -> bytes:
        name, addr = (node.name, node.addr) if node is not None else ("", "")
        cached = self._entries.get(container.id)
        if (cached is None or cached[0] is not container.summary or cached[1] != name
                or cached[2] != addr):
            cached = self._encode(container, node, name, addr)
        head, tail = cached[3], cached[4]
        if tail is None:
            return head
        times = container.summary[STATE_KEY]
        status = live_status(times, now, container.summary.get("Status", ""))
        return head + json.dumps(status).encode() + tail

    def _encode(self, container: Container, node: Node | None, name: str,
                addr: str) -> tuple[dict, str, str, bytes, bytes | None]:
        entry = present(container, node)
        live = STATE_KEY in container.summary
        if live:
            entry["Status"] = _MARK
        raw = json.dumps(entry).encode()
        head, found, tail = raw.partition(_MARK_JSON)
        cached = (container.summary, name, addr, head, tail if live and found else None)
        if live and not found:  # cannot happen with json.dumps; be safe anyway
            cached = (container.summary, name, addr, raw, None)
        self._entries[container.id] = cached
        return cached


def attach(state: ClusterState) -> EntryCache:
    """The state's entry cache, made (and from then on kept current) on first use."""
    return state.attach("ps-json", EntryCache)


def listing_json(state: ClusterState, nodes: Mapping[str, Node], *, show_all: bool,
                 limit: int, filters: Mapping[str, list[str]], now: float | None = None) -> bytes:
    """`GET /containers/json` as the body json_answer would send for `ps.select` (with
    Status as of `now`, default the current time)."""
    cache = attach(state)
    now = time.time() if now is None else now
    chosen = select_containers(state.containers(), nodes, show_all=show_all, limit=limit,
                               filters=filters)
    return b"[" + b", ".join([cache.entry(c, nodes.get(c.node_id), now)
                               for c in chosen]) + b"]\n"

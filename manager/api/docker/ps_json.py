"""`docker ps -a` over a hundred thousand containers as bytes, mostly from a cache.

Building a dict per container and encoding the whole list again on every call costs
seconds at that size (and the allocations wake the garbage collector). A container's
list entry changes only when its record does, except for Status ("Up 5 minutes"),
which is computed at each call. So the entry is encoded once, split around Status,
and each call only joins the cached pieces around the live Status text. The bytes are
exactly json_answer's (errors.answer_bytes) for the list that `ps.select` gives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from flock.common import json_codec
from flock.manager.api.docker.ps import live_status, present, select_containers
from flock.manager.cluster.convert import STATE_KEY
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.state import ClusterState, NodeUsage

ENCODE_AFTER = 0.25  # seconds from a record's write to its entry's encoding
_MARK = "\x00flock-status\x00"
_MARK_JSON = json_codec.dumps(_MARK)


# A cached entry: the summary object and node (name, address) it was made from, the
# bytes before and after Status (after is None: Status is fixed, in `before`), and what
# Status depends on besides the time (see _status_key).
_Entry = tuple[dict, tuple[str, str], bytes, "bytes | None", tuple, float, float]


class EntryCache:
    """Container ID -> its encoded entry, valid while the record's summary object and
    its node's name and address are the ones it was made from. Attached to the state
    (`attach`), which tells it of every record written: the entry is encoded soon after
    (ENCODE_AFTER), off the path of the `ps` that will list it, and dropped when the
    container goes. Soon rather than at once: a `docker run` writes its record twice
    (the create, then the start's read-back) a few milliseconds apart, and only the
    second encoding would ever be listed."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        self._entries: dict[str, _Entry] = {}
        self._due: set[str] = set()  # written since the last encoding pass
        self._pass: asyncio.TimerHandle | None = None

    # ClusterState listener; a renamed node's entries are re-encoded when next listed.
    def node_changed(self, node_id: str, node: Node | None, usage: NodeUsage | None) -> None:
        return None

    def container_changed(self, container_id: str, name: str, node_id: str,
                          added: bool) -> None:
        if not added:
            self._entries.pop(container_id, None)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a unit test): at once
            self._encode_current(container_id)
            return
        self._due.add(container_id)
        if self._pass is None:
            self._pass = loop.call_later(ENCODE_AFTER, self._encode_due)

    def container_rewritten(self, container_id: str, node_id: str) -> None:
        self.container_changed(container_id, "", node_id, True)

    def _encode_due(self) -> None:
        self._pass = None
        due, self._due = self._due, set()
        for container_id in due:
            self._encode_current(container_id)

    def _encode_current(self, container_id: str) -> None:
        container = self._state.container(container_id)
        if container is None:
            return
        cached = self._entries.get(container_id)
        if cached is not None and cached[0] is container.summary:
            return  # a listing encoded it already
        node = self._state.node(container.node_id)
        self._encode(container, node, (node.name, node.addr) if node else ("", ""))

    def render(self, chosen: list[Container], nodes: Mapping[str, Node], now: float) -> bytes:
        """The JSON list of `chosen`'s entries. The per-entry work is kept to a look-up
        and a comparison: at 100,000 containers every microsecond here is 0.1 s. Status
        texts are made once per distinct (state, whole seconds ago)."""
        where = {node_id: (node.name, node.addr) for node_id, node in nodes.items()}
        entries, encode, statuses = self._entries, self._encode, {}
        pieces: list[bytes] = []
        append = pieces.append
        for container in chosen:
            node_key = where.get(container.node_id, ("", ""))
            cached = entries.get(container.id)
            if (cached is None or cached[0] is not container.summary
                    or cached[1] != node_key):
                cached = encode(container, nodes.get(container.node_id), node_key)
            append(cached[2])
            if cached[3] is not None:
                static, started, finished = cached[4], cached[5], cached[6]
                key = (static, int(now - started), int(now - finished))
                status = statuses.get(key)
                if status is None:
                    status = statuses[key] = json_codec.dumps(live_status(
                        container.summary[STATE_KEY], now, static[-1]))
                append(status)
                append(cached[3])
            append(b",")
        if pieces:
            pieces.pop()
        return b"[" + b"".join(pieces) + b"]\n"

    def _encode(self, container: Container, node: Node | None,
                node_key: tuple[str, str]) -> _Entry:
        entry = present(container, node)
        times = container.summary.get(STATE_KEY)
        if times is not None:
            entry["Status"] = _MARK
        raw = json_codec.dumps(entry)
        head, found, tail = raw.partition(_MARK_JSON)
        if times is not None and found:
            cached = (container.summary, node_key, head, tail,
                      *_status_key(times, container.summary.get("Status", "")))
        else:  # no live Status (or, which an encoder never does, the mark was split)
            cached = (container.summary, node_key, raw, None, (), 0.0, 0.0)
        self._entries[container.id] = cached
        return cached


def _status_key(times: Mapping, fallback: str) -> tuple[tuple, float, float]:
    """What live_status's text depends on besides how long ago the start and the finish
    were: it reads those only in whole seconds (human_duration), so entries alike in
    these and in the whole seconds since give the same text."""
    static = (times.get("Status", ""), times.get("Health", ""), times.get("ExitCode", 0),
              bool(times.get("StartedAt", 0)), bool(times.get("FinishedAt", 0)), fallback)
    return static, float(times.get("StartedAt", 0)), float(times.get("FinishedAt", 0))


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
    return cache.render(chosen, nodes, now)

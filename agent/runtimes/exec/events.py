"""Engine-style events: kept in memory and in a journal file (so `since` reaches back
across a restart), fanned out to the `GET /events` streams that are open."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time

from aiohttp import web

from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.timefmt import parse_client_time

KEEP = 1024
EVENT_FILTERS = {"type", "container", "event", "image", "label"}
# moby's daemon/events/filter.go: these match "health_status: healthy" etc. by prefix
FUZZY_ACTIONS = {"health_status", "exec_create", "exec_start"}


class EventBus:
    def __init__(self, journal: pathlib.Path) -> None:
        self.journal = journal
        self.history: list[dict] = _load(journal)
        self.queues: set[asyncio.Queue] = set()
        self.closing = asyncio.Event()

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str],
             image: str = "") -> dict:
        ns = time.time_ns()
        event: dict = {}
        if kind in ("container", "image"):
            event.update(status=action, id=actor_id)
            if kind == "container":
                event["from"] = image
        event.update(Type=kind, Action=action,
                     Actor={"ID": actor_id, "Attributes": attributes},
                     scope="local", time=ns // 10**9, timeNano=ns)
        self.history.append(event)
        if len(self.history) > 2 * KEEP:
            self.history = self.history[-KEEP:]
            self._rewrite()
        with open(self.journal, "a") as fh:
            fh.write(json.dumps(event) + "\n")
        for queue in self.queues:
            queue.put_nowait(event)
        return event

    def _rewrite(self) -> None:
        self.journal.write_text("".join(json.dumps(e) + "\n" for e in self.history))


def _load(journal: pathlib.Path) -> list[dict]:
    try:
        lines = journal.read_text().splitlines()[-KEEP:]
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    actor = event["Actor"]
    attrs = actor.get("Attributes", {})
    for key, wanted in filters.items():
        if key == "type":
            ok = event["Type"] in wanted
        elif key == "event":
            ok = event["Action"] in wanted or (
                bool(FUZZY_ACTIONS & set(wanted))
                and any(event["Action"].startswith(w) for w in wanted))
        elif key == "container":
            ok = event["Type"] == "container" and any(
                actor["ID"].startswith(w) or attrs.get("name") == w for w in wanted)
        elif key == "image":
            ok = any(w in (event.get("from"), attrs.get("image"), attrs.get("name"),
                           actor["ID"]) for w in wanted)
        else:  # label
            ok = any(attrs.get(w.partition("=")[0]) == w.partition("=")[2]
                     if "=" in w else w in attrs for w in wanted)
        if not ok:
            return False
    return True


async def handle_events(request: web.Request) -> web.StreamResponse:
    bus: EventBus = request.app[CORE].bus
    now = time.time_ns()
    since = parse_client_time(request.query.get("since", ""), 0)
    until = parse_client_time(request.query.get("until", ""), 0)
    filters = parse_filters(request.query.get("filters", ""), EVENT_FILTERS)
    if since and until and until < since:
        raise bad_request("`since` time must be before `until`")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    queue: asyncio.Queue = asyncio.Queue()
    bus.queues.add(queue)
    try:
        await _replay_and_stream(resp, bus, queue, filters, since, until, now)
    except ConnectionResetError:  # the client went away
        pass
    finally:
        bus.queues.discard(queue)
    return resp


async def _replay_and_stream(resp: web.StreamResponse, bus: EventBus, queue: asyncio.Queue,
                             filters: dict[str, list[str]], since: int, until: int,
                             now: int) -> None:
    if since:
        for event in list(bus.history):
            if since <= event["timeNano"] and (not until or event["timeNano"] <= until) \
                    and matches(event, filters):
                await resp.write(json.dumps(event).encode() + b"\n")
    if until and until <= now:
        return
    await _stream(resp, queue, filters, until, bus.closing)


async def _stream(resp: web.StreamResponse, queue: asyncio.Queue,
                  filters: dict[str, list[str]], until: int, closing: asyncio.Event) -> None:
    while not closing.is_set():
        timeout = None if not until else max(0.0, (until - time.time_ns()) / 1e9)
        try:
            event = await asyncio.wait_for(queue.get(), min(timeout or 1.0, 1.0))
        except TimeoutError:
            if until and time.time_ns() >= until:
                return
            continue
        if until and event["timeNano"] > until:
            return
        if matches(event, filters):
            await resp.write(json.dumps(event).encode() + b"\n")

"""`GET /events`: the nodes' event streams merged into one, each event tagged with its
node the way classic Swarm did (`node` object, `from` naming the node).

Each node is asked through its Docker API channel, so `since` and `filters` keep the
Engine's meaning. `until` alone keeps classic Swarm's: no past event is replayed, the
live ones stream until then (classic_until). The stream stays open until the client
goes away (or, with `until`, until every node has finished).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse

from aiohttp import web

from flock.manager.api.docker import proxy
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.ps import node_ip
from flock.manager.cluster.agent_client import AgentError, DockerExchange
from flock.manager.cluster.model import Node
from flock.manager.observability.local_events import wanted

log = logging.getLogger("flock.manager.events")


def tag_event(event: dict, node: Node) -> dict:
    out = dict(event)
    out["node"] = {"Name": node.name, "Id": node.id, "Addr": node.addr, "Ip": node_ip(node)}
    if "from" in out:
        out["from"] = f"{out['from']} node:{node.name}"
    return out


def classic_until(query_string: str, now: float) -> tuple[str, bool]:
    """The query for the nodes, and whether the stream is over before it starts.

    Classic Swarm watches live events only and ends them at `until` (api/handlers.go
    getEvents), where an Engine asked for `until` alone first replays what it keeps
    from before: so the nodes are asked `since` now, and an `until` already past
    answers no event at all. With `since` the Engine's replay stays (classic ignored
    `since`); an `until` that is no timestamp goes as it came, for the engines to refuse."""
    pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
    given = dict(pairs)
    if not given.get("until") or given.get("since"):
        return query_string, False
    try:
        until = float(given["until"])
    except ValueError:
        return query_string, False
    if until <= now:
        return query_string, True
    kept = [(key, value) for key, value in pairs if key != "since"]
    return urllib.parse.urlencode([*kept, ("since", f"{now:.9f}")]), False


async def _open(call: Call, node: Node, query: str) -> DockerExchange | None:
    try:
        return await proxy.open_exchange(call, node, query=query, body=None)
    except Exception as exc:  # noqa: BLE001 - one node away must not end the stream
        log.info("events of %s unavailable: %s", node.name, exc)
        return None


async def _follow(node: Node, exchange: DockerExchange, out: asyncio.Queue) -> None:
    buffer = b""
    try:
        async for chunk in exchange:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        out.put_nowait(json.dumps(tag_event(json.loads(line), node)).encode())
                    except ValueError:
                        log.debug("events of %s: not JSON: %r", node.name, line[:200])
    except AgentError as exc:
        log.info("events of %s stopped: %s", node.name, exc)
    finally:
        exchange.cancel()
        out.put_nowait(None)


async def _follow_manager(call: Call, out: asyncio.Queue) -> None:
    """The manager's own events (cron runs) that the request's filters keep."""
    try:
        filters = json.loads(call.query.get("filters") or "{}")
        if not isinstance(filters, dict):
            return
        filters = {k: list(v) if not isinstance(v, dict) else [x for x, on in v.items() if on]
                   for k, v in filters.items()}
    except (ValueError, TypeError):
        return  # the nodes refuse it, with the Engine's message
    assert call.cluster.local_events is not None
    with call.cluster.local_events.subscribe() as queue:
        while True:
            event = await queue.get()
            if wanted(event, filters):
                out.put_nowait(json.dumps(event).encode())


async def events(call: Call) -> web.StreamResponse:
    """The head goes out as soon as every node's stream is open, before any event: old
    clients (API < 1.30 `docker run`) wait for it before they start the container."""
    query, over = classic_until(call.query_string, time.time())
    nodes = [] if over else call.state.healthy_nodes()
    opened = await asyncio.gather(*(_open(call, node, query) for node in nodes))
    live = [(node, ex) for node, ex in zip(nodes, opened, strict=True) if ex is not None]
    refused = next((ex for _, ex in live if ex.status != 200), None)
    if refused is not None:  # a bad filter: every node says the same
        body = await refused.body()
        for _, exchange in live:
            exchange.cancel()
        return web.Response(status=refused.status, body=body, content_type="application/json")
    queue: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(_follow(node, ex, queue)) for node, ex in live]
    if call.cluster.local_events is not None and not over:
        tasks.append(asyncio.create_task(_follow_manager(call, queue)))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    try:
        await response.prepare(call.request)
        open_streams = len(live)
        # With no node left the stream stays open (for the manager's own events).
        while open_streams > 0 or not call.query.get("until"):
            item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                await response.write(item + b"\n")
    finally:
        for task in tasks:
            task.cancel()
        for _, exchange in live:
            exchange.cancel()
    return response


ROUTES = [("GET", "/events", events)]

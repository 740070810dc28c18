"""`GET /events`: the nodes' event streams merged into one, each event tagged with its
node the way classic Swarm did (`node` object, `from` naming the node).

Each node is asked through its Docker API channel, so `since`, `until` and `filters`
keep the Engine's meaning. The stream stays open until the client goes away (or, with
`until`, until every node has finished).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from manager.api.docker import proxy
from manager.api.docker.app import Call
from manager.api.docker.ps import node_ip
from manager.cluster.agent_client import AgentError
from manager.cluster.model import Node

log = logging.getLogger("flock.manager.events")


def tag_event(event: dict, node: Node) -> dict:
    out = dict(event)
    out["node"] = {"Name": node.name, "Id": node.id, "Addr": node.addr, "Ip": node_ip(node)}
    if "from" in out:
        out["from"] = f"{out['from']} node:{node.name}"
    return out


async def _follow(call: Call, node: Node, out: asyncio.Queue) -> None:
    try:
        exchange = await proxy.open_exchange(call, node, body=None)
    except Exception as exc:  # noqa: BLE001 - one node away must not end the stream
        log.info("events of %s unavailable: %s", node.name, exc)
        out.put_nowait(None)
        return
    buffer = b""
    try:
        if exchange.status != 200:
            out.put_nowait(("error", exchange.status, await exchange.body()))
            return
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


async def events(call: Call) -> web.StreamResponse:
    nodes = call.state.healthy_nodes()
    queue: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(_follow(call, node, queue)) for node in nodes]
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    try:
        first = await queue.get() if tasks else None
        if isinstance(first, tuple):  # a bad filter: every node says the same
            _, status, body = first
            return web.Response(status=status, body=body, content_type="application/json")
        await response.prepare(call.request)
        open_streams = len(tasks)
        item = first
        while True:
            if item is None:
                open_streams -= 1
                if open_streams <= 0:
                    if call.query.get("until"):
                        break
                    await asyncio.Event().wait()  # no node left: hold the stream open
            elif isinstance(item, bytes):
                await response.write(item + b"\n")
            item = await queue.get()
    finally:
        for task in tasks:
            task.cancel()
    return response


ROUTES = [("GET", "/events", events)]

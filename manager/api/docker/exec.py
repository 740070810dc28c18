"""Exec instances: created through their container's node, then found by ID.

The manager remembers which node created each exec ID; an ID it never saw (a restarted
manager) is looked for on every healthy node.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from flock.docker_compat.paths import api_path
from flock.manager.api.docker import hijack, proxy
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError, bad_parameter, parse_json_body
from flock.manager.cluster.model import Node


async def find_node(call: Call, exec_id: str) -> Node:
    state = call.state
    known = call.cluster.exec_nodes.get(exec_id)
    node = state.node(known) if known else None
    if node is not None:
        return node
    nodes = state.healthy_nodes()
    answers = await asyncio.gather(
        *(proxy.node_json(call, n, "GET", api_path("exec", exec_id, "json")) for n in nodes),
        return_exceptions=True)
    for node, answer in zip(nodes, answers, strict=True):
        if not isinstance(answer, BaseException) and answer[0] == 200:
            call.cluster.exec_nodes[exec_id] = node.id
            return node
    raise DockerError(404, f"No such exec instance: {exec_id}")


async def start(call: Call) -> web.StreamResponse:
    exec_id = call.params["id"]
    node = await find_node(call, exec_id)
    raw = await call.request.read()
    config = parse_json_body(raw) or {}
    if not isinstance(config, dict):
        raise bad_parameter("invalid exec start config: expected a JSON object")
    if config.get("Detach"):
        exchange, data = await proxy.forward_buffered(call, node, body=raw)
        return proxy.buffered_response(exchange, data)
    return await hijack.serve(call, node, call.agent_path(), body=raw)


async def passthrough(call: Call) -> web.StreamResponse:
    node = await find_node(call, call.params["id"])
    return await proxy.forward(call, node)


ROUTES = [
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", passthrough),
    ("GET", "/exec/{id}/json", passthrough),
]

"""Volumes over the cluster: per-node resources, listed as `<node>/<name>`.

As in classic Swarm, a volume created without a node (`node/name`) or a
`com.docker.swarm.constraints` label is created on every healthy node under one name,
so that a container using it can be placed anywhere; a `com.docker.swarm.whitelists`
label keeps only the nodes it names. A plain name on several nodes is removed from all
of them. The data of each copy stays on its node.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from flock.docker_compat.paths import segment
from flock.manager.api.docker import proxy
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError, bad_parameter, json_answer, parse_json_body
from flock.manager.api.docker.pernode import (
    Found,
    each_node,
    first_error,
    listing,
    match,
    split_node,
    targets,
)
from flock.manager.cluster.model import Node
from flock.manager.scheduler.rules import RuleError
from flock.manager.scheduler.whitelist import NotWhitelisted, parse_whitelists, whitelisted


async def node_volumes(call: Call, nodes, query: str = "") -> tuple[list[Found], list[str]]:
    """Every volume of `nodes` (those that answer) and the nodes' warnings."""
    found: list[Found] = []
    warnings: list[str] = []
    for node, status, answer in await each_node(call, nodes, "GET", "/volumes", query):
        if status == 200 and isinstance(answer, dict):
            found += [Found(node, v) for v in answer.get("Volumes") or [] if isinstance(v, dict)]
            warnings += [f"{node.name}: {w}" for w in answer.get("Warnings") or []]
        elif status == 503:
            warnings.append(f"{node.name}: {proxy.message_of(answer)}")
        elif status >= 400:
            raise DockerError(status, proxy.message_of(answer))
    return found, warnings


async def find(call: Call, ref: str) -> list[Found]:
    node, name = split_node(call, ref)
    nodes = [node] if node is not None else call.state.healthy_nodes()
    found = match((await node_volumes(call, nodes))[0], name, None)
    if not found:
        raise DockerError(404, f"get {ref}: no such volume")
    return found


async def list_volumes(call: Call) -> web.StreamResponse:
    """`node` picks the nodes asked (classic: api/handlers.go getVolumes)."""
    asked = listing(call)
    found, warnings = await node_volumes(call, asked.nodes, asked.query)
    return json_answer({"Volumes": [dict(f.entry, Name=f.qualified) for f in found],
                        "Warnings": warnings or None})


async def inspect(call: Call) -> web.StreamResponse:
    item = (await find(call, call.params["name"]))[0]
    return await proxy.forward(call, item.node, path=f"/volumes/{segment(item.name)}")


async def create(call: Call) -> web.StreamResponse:
    body = parse_json_body(await call.request.read()) or {}
    if not isinstance(body, dict):
        raise bad_parameter("invalid volume config: expected a JSON object")
    name = body.get("Name") or secrets.token_hex(32)  # one name for every node's copy
    if not isinstance(name, str):
        raise bad_parameter("volume Name must be a string")
    nodes, name = targets(call, name, body.get("Labels"), "volume")
    nodes = _whitelisted(nodes, body.get("Labels"))
    results = await each_node(call, nodes, "POST", "/volumes/create", body=dict(body, Name=name))
    made = [answer for _, status, answer in results if status == 201]
    if not made:
        raise first_error(results, single=len(nodes) == 1)
    return json_answer(made[0], status=201)


def _whitelisted(nodes: list[Node], labels: object) -> list[Node]:
    """Classic's `com.docker.swarm.whitelists` label keeps the nodes it names
    (scheduler/whitelist.py): a bad label is the client's error, no node left a 500 as
    classic answers it (api/handlers.go postVolumesCreate)."""
    try:
        rules = parse_whitelists(labels)
        return nodes if rules is None else whitelisted(nodes, rules)
    except RuleError as exc:
        raise bad_parameter(str(exc)) from None
    except NotWhitelisted as exc:
        raise DockerError(500, str(exc)) from None


async def remove(call: Call) -> web.StreamResponse:
    found = await find(call, call.params["name"])
    results = []
    for item in found:
        results += await each_node(call, [item.node], "DELETE", f"/volumes/{segment(item.name)}",
                                   call.query_string)
    if any(status >= 300 for _, status, _ in results):
        raise first_error(results, single=len(found) == 1)
    return web.Response(status=204)


async def prune(call: Call) -> web.StreamResponse:
    deleted: list[str] = []
    reclaimed = 0
    results = await each_node(call, call.state.healthy_nodes(), "POST", "/volumes/prune",
                              call.query_string)
    for node, status, answer in results:
        if status >= 400 and status != 503:
            raise DockerError(status, proxy.message_of(answer))
        if status == 200 and isinstance(answer, dict):
            deleted += [f"{node.name}/{v}" for v in answer.get("VolumesDeleted") or []]
            reclaimed += int(answer.get("SpaceReclaimed") or 0)
    return json_answer({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name*}", inspect),
    ("DELETE", "/volumes/{name*}", remove),
]

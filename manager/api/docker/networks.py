"""Networks over the cluster: per-node resources, listed as `<node>/<name>`.

Where a new network goes:
- `node/name` in the create body's Name: on that node only;
- a `com.docker.swarm.constraints` label (a JSON list of rules, as on containers): on
  the one node the scheduler picks among those that satisfy it;
- nothing: on every healthy node, under the same name. Classic Swarm put such a
  network on one node, and the network then pinned every container using it to that
  node — a Compose project (which creates its network first) could never spread. With
  a copy on every node, replicas spread and still reach their network; containers on
  different nodes are on different (same-named) bridges, as local networks always are.
  The copies share a label (COPIES_LABEL): removing one by its ID removes them all.
  (Classic's own default was an overlay network, on every node too: docs/swarm-compat.md.)
Built-in networks (bridge, host, none) exist on every node already.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from flock.docker_compat.paths import segment
from flock.docker_compat.regexp import filter_matches
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
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.model import Node
from flock.manager.cluster.state import NotFound

log = logging.getLogger("flock.manager.networks")

BUILTIN = frozenset({"bridge", "host", "none"})
# On each copy of a network made on every node: one random value shared by the copies.
# (Compose ignores com.docker.* labels when it compares a network with its file.)
COPIES_LABEL = "com.docker.swarm.network.copies"
# The values of the `type` list filter (classic: api/handlers.go getNetworks).
NETWORK_TYPES = ("custom", "builtin")


async def node_networks(call: Call, nodes: list[Node], query: str = "") -> list[Found]:
    """Every network of `nodes` (those that answer), in node order."""
    found: list[Found] = []
    for node, status, answer in await each_node(call, nodes, "GET", "/networks", query):
        if status == 200 and isinstance(answer, list):
            found += [Found(node, entry) for entry in answer if isinstance(entry, dict)]
        elif status >= 400 and status != 503:
            raise DockerError(status, proxy.message_of(answer))
    return found


async def find(call: Call, ref: str) -> list[Found]:
    """The networks `ref` names: one, or the same name on several nodes; 404 if none."""
    node, name = split_node(call, ref)
    nodes = [node] if node is not None else call.state.healthy_nodes()
    found = match(await node_networks(call, nodes), name, "Id")
    if not found:
        raise DockerError(404, f"network {ref} not found")
    return found


async def list_networks(call: Call) -> web.StreamResponse:
    """`node` picks the nodes asked; `name` is applied here, so that a value may be
    `node/name` as in classic (cluster/network.go Networks.Filter)."""
    asked = listing(call, own=("name",))
    for value in asked.filters.get("type", []):
        if value not in NETWORK_TYPES:  # the Engine (20.10) says the same with a 500
            raise bad_parameter(f"Invalid filter: 'type'='{value}'")
    names = asked.filters.get("name")
    entries = []
    for item in await node_networks(call, asked.nodes, asked.query):
        if not names or any(name_matches(value, item) for value in names):
            entries.append(dict(item.entry, Name=item.qualified))
    return json_answer(entries)


def name_matches(value: str, item: Found) -> bool:
    """One `name` filter value, as classic's Networks.Filter reads it: the Engine's
    match on the plain name (exact, else an unanchored regex), or exactly the network's
    `node/name`, `node-ID/name`, ID or short ID (Networks.Get)."""
    entry_id = str(item.entry.get("Id", ""))
    exact = {item.qualified, f"{item.node.id}/{item.name}", entry_id, entry_id[:12]}
    return value in exact or filter_matches(value, item.name)


async def inspect(call: Call) -> web.StreamResponse:
    item = one_network(await find(call, call.params["id"]), call.params["id"])
    return await proxy.forward(call, item.node, path=f"/networks/{segment(item.entry['Id'])}")


def one_network(found: list[Found], ref: str) -> Found:
    """The one network `ref` names. Several networks of one name on different nodes
    (`bridge` on every node) are refused, as classic refuses them with its 404 (api/
    handlers.go getNetwork: cluster/network.go Networks.Get gives nothing for a name
    with several matches), rather than answered with one node's. The copies of one
    network made on every node are one network: any copy answers."""
    groups = {_copies(item) or str(item.entry.get("Id", "")) for item in found}
    if len(groups) == 1:
        return found[0]
    places = ", ".join(sorted(item.qualified for item in found))
    raise DockerError(404, f"No such network: {ref}: the name is ambiguous, {len(found)} "
                           f"networks have it ({places}); name one as NODE/{ref}")


def _create_body(raw: bytes) -> dict:
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_parameter("invalid network config: expected a JSON object")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise bad_parameter("network name is required: give Name in the create body")
    return body


async def create(call: Call) -> web.StreamResponse:
    body = _create_body(await call.request.read())
    nodes, name = targets(call, body["Name"], body.get("Labels"), "network")
    body = dict(body, Name=name)
    if len(nodes) > 1:  # the copies know each other, so that rm by one's ID takes all
        body["Labels"] = dict(body.get("Labels") or {}, **{COPIES_LABEL: secrets.token_hex(16)})
    results = await each_node(call, nodes, "POST", "/networks/create", body=body)
    made = [(node, answer) for node, status, answer in results if status == 201]
    if not made:
        raise first_error(results, single=len(nodes) == 1)
    answer = dict(made[0][1]) if isinstance(made[0][1], dict) else {}
    refused = [f"{node.name}: {proxy.message_of(a)}" for node, s, a in results if s != 201]
    warnings = [w for w in (answer.get("Warning"), *refused) if w]
    answer["Warning"] = "; ".join(warnings)
    return json_answer(answer, status=201)


async def remove(call: Call) -> web.StreamResponse:
    """A plain name shared by several nodes, or the ID of one copy of a network made
    on every node, removes every copy; the first refusal is the answer."""
    ref = call.params["id"]
    found = await find(call, ref)
    if split_node(call, ref)[0] is None:
        groups = {_copies(item) for item in found} - {""}
        if groups:
            everything = await node_networks(call, call.state.healthy_nodes())
            found += [item for item in everything if _copies(item) in groups
                      and not any(item.entry["Id"] == f.entry["Id"] for f in found)]
    results = []
    for item in found:
        results += await each_node(call, [item.node], "DELETE",
                                   f"/networks/{segment(item.entry['Id'])}")
    if any(status >= 300 for _, status, _ in results):
        raise first_error(results, single=len(found) == 1)
    return web.Response(status=204)


def _copies(item: Found) -> str:
    return str((item.entry.get("Labels") or {}).get(COPIES_LABEL, ""))


async def _connection(call: Call, verb: str) -> web.StreamResponse:
    """connect/disconnect: sent to the container's node, with that node's network."""
    body = parse_json_body(await call.request.read()) or {}
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise bad_parameter("Container is required: give the container's name or ID")
    ref = call.params["id"]
    try:
        container = call.state.resolve(body["Container"])
    except NotFound:
        if verb == "disconnect" and body.get("Force"):
            return await _force_disconnect(call, ref, body)
        raise
    node = call.state.node(container.node_id)
    if node is None:
        raise DockerError(404, f"No such container: {body['Container']}")
    chosen, name = split_node(call, ref)
    if chosen is not None and chosen.id != node.id:
        raise DockerError(
            409, f"network {ref} is on node {chosen.name} but container {body['Container']} "
            f"runs on {node.name}: a local network only reaches containers of its node")
    local = await node_networks(call, [node])
    found = match(local, name, "Id")
    if not found and chosen is None:
        # The ID of another node's copy of a network made on every node (what a create
        # answered): this node's copy is the one with the same copies label.
        groups = {_copies(item) for item in await find(call, ref)} - {""}
        found = [item for item in local if _copies(item) in groups]
    if not found:
        raise DockerError(404, f"network {ref} not found on node {node.name}, where "
                               f"container {body['Container']} runs")
    status, answer = await proxy.node_json(
        call, node, "POST", f"/networks/{segment(found[0].entry['Id'])}/{verb}",
        body=dict(body, Container=container.id))
    if status >= 300:
        raise DockerError(status, proxy.message_of(answer))
    try:
        await call.cluster.records.refresh(node.id, container.id)
    except AgentError as exc:
        log.warning("refreshing %s after %s: %s", container.id, verb, exc)
    return web.Response(status=200)


async def _force_disconnect(call: Call, ref: str, body: dict) -> web.StreamResponse:
    """A container the manager does not know (gone): ask the network's nodes."""
    results = []
    for item in await find(call, ref):
        results += await each_node(call, [item.node], "POST",
                                   f"/networks/{segment(item.entry['Id'])}/disconnect",
                                   body=body)
    if all(status >= 300 for _, status, _ in results):
        raise first_error(results, single=len(results) == 1)
    return web.Response(status=200)


async def connect(call: Call) -> web.StreamResponse:
    return await _connection(call, "connect")


async def disconnect(call: Call) -> web.StreamResponse:
    return await _connection(call, "disconnect")


async def prune(call: Call) -> web.StreamResponse:
    deleted: list[str] = []
    results = await each_node(call, call.state.healthy_nodes(), "POST", "/networks/prune",
                              call.query_string)
    for node, status, answer in results:
        if status >= 400 and status != 503:
            raise DockerError(status, proxy.message_of(answer))
        if status == 200 and isinstance(answer, dict):
            deleted += [f"{node.name}/{n}" for n in answer.get("NetworksDeleted") or []]
    return json_answer({"NetworksDeleted": deleted or None})


ROUTES = [
    ("GET", "/networks", list_networks),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("POST", "/networks/{id*}/connect", connect),
    ("POST", "/networks/{id*}/disconnect", disconnect),
    ("GET", "/networks/{id*}", inspect),
    ("DELETE", "/networks/{id*}", remove),
]

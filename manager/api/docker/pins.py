"""Where a container's networks and volumes pin it, read from its create body.

A local network exists on the nodes it was created on, so a container that uses one
(`--network NAME`, or a Compose project network) may only go to those nodes: the
create gets a hard `node==` constraint for placement (not written into its labels).
`node/name` for a network (`--network node-a/net`) or a volume (`-v node-a/vol:/data`)
picks that node, and the prefix is stripped before the body reaches the engine. A
network found on no node adds nothing: the engine's own 404 then says so.
"""

from __future__ import annotations

from flock.docker_compat import regexp
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError
from flock.manager.api.docker.networks import node_networks
from flock.manager.api.docker.pernode import match, split_node
from flock.manager.cluster.model import Node
from flock.manager.scheduler.rules import Rule, parse_rule
from flock.manager.scheduler.spec import json_copy

_NOT_A_NETWORK = frozenset({"", "default", "bridge", "host", "none"})


def node_rule(names: list[str]) -> Rule:
    """`node==a`, or `node==/a|b/` for several nodes."""
    if len(names) == 1:
        return parse_rule(f"node=={names[0]}")
    return parse_rule("node==/" + "|".join(regexp.escape(n) for n in sorted(names)) + "/")


def _is_network(mode: str) -> bool:
    return mode not in _NOT_A_NETWORK and not mode.startswith(("container:", "ns:"))


async def from_request(call: Call, body: dict) -> tuple[dict, list[Rule]]:
    """The body to send (node prefixes stripped) and the placement rules it implies.
    `body` (parsed JSON) is left as it was: the rewrites go to a copy."""
    body = json_copy(body)
    chosen: dict[str, Node] = {}  # what pinned -> node
    networks = await _networks(call, body, chosen)
    _volumes(call, body, chosen)
    rules = [node_rule([node.name]) for node in {n.id: n for n in chosen.values()}.values()]
    if networks:
        rules += await _network_rules(call, networks)
    return body, rules


async def _networks(call: Call, body: dict, chosen: dict[str, Node]) -> list[str]:
    """Rewrite `node/net` references in place; return the plain references to look up."""
    host = body.get("HostConfig")
    looked: list[str] = []

    def plain(ref: str) -> str:
        node, name = split_node(call, ref)
        if node is not None:
            chosen[ref] = node
        elif _is_network(ref):
            looked.append(ref)
        return name

    if isinstance(host, dict) and isinstance(host.get("NetworkMode"), str):
        if _is_network(host["NetworkMode"]):
            host["NetworkMode"] = plain(host["NetworkMode"])
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig")
    if isinstance(endpoints, dict):
        renamed = {}
        for ref, config in endpoints.items():
            renamed[plain(ref) if isinstance(ref, str) else ref] = config
        body["NetworkingConfig"]["EndpointsConfig"] = renamed
    return list(dict.fromkeys(looked))


async def _network_rules(call: Call, refs: list[str]) -> list[Rule]:
    healthy = call.state.healthy_nodes()
    found = await node_networks(call, healthy)
    rules = []
    for ref in refs:
        holders: dict[str, Node] = {}
        for node in healthy:
            try:
                if match([f for f in found if f.node.id == node.id], ref, "Id"):
                    holders[node.id] = node
            except DockerError:  # an ambiguous prefix on that node
                continue
        if holders and len(holders) < len(healthy):
            rules.append(node_rule([n.name for n in holders.values()]))
    return rules


def _volumes(call: Call, body: dict, chosen: dict[str, Node]) -> None:
    """`-v node/vol:/dst` and mounts of type volume with a `node/vol` source."""
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        return
    binds = host.get("Binds")
    if isinstance(binds, list):
        out = []
        for bind in binds:
            if isinstance(bind, str) and not bind.startswith("/") and ":" in bind:
                source, _, rest = bind.partition(":")
                node, name = split_node(call, source, strict=False)
                if node is not None:
                    chosen[source] = node
                    bind = f"{name}:{rest}"
            out.append(bind)
        host["Binds"] = out
    for mount in host.get("Mounts") or []:
        if isinstance(mount, dict) and mount.get("Type") == "volume":
            source = mount.get("Source")
            if isinstance(source, str):
                node, name = split_node(call, source, strict=False)
                if node is not None:
                    chosen[source] = node
                    mount["Source"] = name

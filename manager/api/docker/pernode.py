"""Resources that live on one node (networks, volumes): asking every node, naming them
`node/name` and finding them again from a reference.

Classic Swarm's model: a local network or volume belongs to one engine. Lists show
`<node>/<name>`; a reference is `node/name`, a plain name (which may match the same
name on several nodes: one created "on every node"), a full ID or a unique ID prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from flock.manager.api.docker import proxy
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError
from flock.manager.api.docker.ps import parse_filters
from flock.manager.cluster.labels import CONSTRAINTS_LABEL
from flock.manager.cluster.model import Node
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import RuleError, spec_from_create

log = logging.getLogger("flock.manager.pernode")


@dataclass
class Found:
    """One node's copy of a resource: the node and the engine's JSON for it."""

    node: Node
    entry: dict

    @property
    def name(self) -> str:
        return str(self.entry.get("Name", ""))

    @property
    def qualified(self) -> str:
        return f"{self.node.name}/{self.name}"


def split_node(call: Call, ref: str, strict: bool = True) -> tuple[Node | None, str]:
    """`node/name` -> (that node, name); anything else -> (None, ref). An unknown node
    prefix is a 404 naming the node (unless not `strict`), so a typo is not mistaken
    for a name."""
    prefix, sep, rest = ref.partition("/")
    if not sep or not prefix or not rest:
        return None, ref
    node = call.state.node_by_name(prefix)
    if node is None:
        if not strict:
            return None, ref
        raise DockerError(404, f"No such node: {prefix} (in {ref})")
    return node, rest


async def each_node(call: Call, nodes: list[Node], method: str, path: str, query: str = "",
                    body: object | None = None) -> list[tuple[Node, int, object]]:
    """The same JSON call on `nodes` at once. A node that cannot answer comes back as a
    503 naming it (lists skip it, so one node away does not break a cluster-wide list)."""
    answers = await asyncio.gather(
        *(proxy.node_json(call, n, method, path, query, body) for n in nodes),
        return_exceptions=True)
    out: list[tuple[Node, int, object]] = []
    for node, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, BaseException):
            log.warning("%s %s on %s: %s", method, path, node.name, answer)
            message = answer.message if isinstance(answer, DockerError) else str(answer)
            out.append((node, 503, {"message": message}))
            continue
        out.append((node, answer[0], answer[1]))
    return out


def first_error(results: list[tuple[Node, int, object]], single: bool = False) -> DockerError:
    """The first refusal among node answers, named by its node unless only one node
    was asked (then it reads exactly as the engine's)."""
    node, status, answer = next(r for r in results if r[1] >= 300)
    message = proxy.message_of(answer)
    return DockerError(status, message if single else f"{node.name}: {message}")


def match(found: list[Found], ref: str, id_key: str | None) -> list[Found]:
    """The Engine's lookup order over every node's entries: exact ID, then exact name
    (possibly on several nodes), then a unique ID prefix."""
    if id_key:
        exact = [f for f in found if f.entry.get(id_key) == ref]
        if exact:
            return exact
    named = [f for f in found if f.name == ref]
    if named or not id_key:
        return named
    prefixed = [f for f in found if str(f.entry.get(id_key, "")).startswith(ref)]
    if len(prefixed) > 1:
        raise DockerError(
            404, f"{ref} is ambiguous ({len(prefixed)} matches found based on ID prefix)")
    return prefixed


def targets(call: Call, name: str, labels: object, what: str) -> tuple[list[Node], str]:
    """The nodes a new resource goes to, and its name without a node prefix: the node
    of `node/name`; else the one node the scheduler picks for a
    `com.docker.swarm.constraints` label; else every healthy node."""
    node, name = split_node(call, name)
    if node is not None:
        return [node], name
    if isinstance(labels, dict) and labels.get(CONSTRAINTS_LABEL):
        try:
            spec = spec_from_create({"Labels": {CONSTRAINTS_LABEL: labels[CONSTRAINTS_LABEL]}})
            return [call.cluster.scheduler.place(call.state, spec).node], name
        except RuleError as exc:
            raise DockerError(400, str(exc)) from None
        except NoNodeAvailable as exc:
            raise DockerError(500, str(exc)) from None
    nodes = call.state.healthy_nodes()
    if not nodes:
        raise DockerError(500, f"no healthy node to create the {what} on: check `docker info`")
    return nodes, name


@dataclass
class Listing:
    """A cluster-wide list request taken apart: the nodes to ask, the query to send
    them (without the filters the manager applies itself) and the client's filters."""

    nodes: list[Node]
    query: str
    filters: dict[str, list[str]]


def listing(call: Call, own: Collection[str] = ()) -> Listing:
    """The `node` filter picks the nodes to ask (the engines refuse the key, so it never
    reaches them); the keys in `own` are not sent either: the handler applies them."""
    filters = parse_filters(call.query.get("filters", ""))
    wanted = filters.get("node")
    nodes = call.state.healthy_nodes()
    sent = {key: values for key, values in filters.items() if key != "node" and key not in own}
    return Listing(select_nodes(nodes, wanted) if wanted else nodes,
                   without_filters(call.query_string, sent), filters)


def select_nodes(nodes: Iterable[Node], wanted: Collection[str]) -> list[Node]:
    """Classic's rule (api/handlers.go getImagesJSON): a value names a node by its
    exact name or ID, and a node is kept when any value names it. No globs or regexes:
    `node-1` must not also select `node-10`. A value naming no node selects nothing,
    as with classic (an empty list, no error)."""
    return [node for node in nodes if node.name in wanted or node.id in wanted]


def without_filters(query: str, filters: dict[str, list[str]]) -> str:
    """`query` with its `filters` parameter replaced by `filters` (dropped if empty);
    the other parameters stay as the client encoded them."""
    pairs = [pair for pair in query.split("&")
             if pair and urllib.parse.unquote_plus(pair.partition("=")[0]) != "filters"]
    if filters:
        encoded = json.dumps({key: {value: True for value in values}
                              for key, values in filters.items()})
        pairs.append("filters=" + urllib.parse.quote(encoded, safe=""))
    return "&".join(pairs)

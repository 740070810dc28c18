"""The hollow node's short Docker API operations, apart from any transport.

Both doors call these: the aiohttp app on the runtime's socket (api.py) and the agent's
in-process DockerCall path (calls.py), which skips an HTTP round trip per request --
at a thousand hollow nodes in one process that round trip was a third of its CPU. One
implementation keeps both answers the same, errors included (ApiError, as the app's
middleware turns it into `{"message": ...}`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flock.agent.runtimes.exec.container_api import _flag, _int, parse_body
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.hollow import shapes
from flock.agent.runtimes.hollow.store import HollowNode
from flock.docker_compat.ps_filters import LIST_FILTERS


@dataclass
class Ask:
    """One request as an operation reads it: the query, the container reference of
    the path (if any) and the raw body."""

    query: Mapping[str, str] = field(default_factory=dict)
    ref: str = ""
    body: bytes = b""


# (status, JSON payload or None for an empty answer)
Answer = tuple[int, object | None]
Operation = Callable[[HollowNode, Ask], Answer]


def create(node: HollowNode, ask: Ask) -> Answer:
    body = parse_body(ask.body)
    if not isinstance(body, dict):
        raise bad_request("config cannot be empty in order to create a container"
                          if body is None else "the container config must be a JSON object")
    container = node.create(ask.query.get("name", ""), body)
    return 201, {"Id": container.id, "Warnings": []}


def list_containers(node: HollowNode, ask: Ask) -> Answer:
    filters = parse_filters(ask.query.get("filters", ""), LIST_FILTERS)
    limit = _int(ask, "limit", -1) or -1
    return 200, shapes.listing(node, _flag(ask, "all"), limit, filters)


def inspect(node: HollowNode, ask: Ask) -> Answer:
    return 200, shapes.inspect(node.get(ask.ref))


def start(node: HollowNode, ask: Ask) -> Answer:
    return (204 if node.start(node.get(ask.ref)) else 304), None


def stop(node: HollowNode, ask: Ask) -> Answer:
    _int(ask, "t", None)  # validated like the Engine; a hollow stop is instant
    return (204 if node.stop(node.get(ask.ref)) else 304), None


def restart(node: HollowNode, ask: Ask) -> Answer:
    container = node.get(ask.ref)
    node.stop(container)
    node.start(container)
    return 204, None


def kill(node: HollowNode, ask: Ask) -> Answer:
    node.kill(node.get(ask.ref), ask.query.get("signal", ""))
    return 204, None


def remove(node: HollowNode, ask: Ask) -> Answer:
    node.remove(node.get(ask.ref), _flag(ask, "force"))
    return 204, None


# (method, path after /containers/) -> operation; "{id}" is one path segment.
ROUTES: dict[tuple[str, str], Operation] = {
    ("POST", "create"): create,
    ("GET", "json"): list_containers,
    ("GET", "{id}/json"): inspect,
    ("POST", "{id}/start"): start,
    ("POST", "{id}/stop"): stop,
    ("POST", "{id}/restart"): restart,
    ("POST", "{id}/kill"): kill,
    ("DELETE", "{id}"): remove,
}

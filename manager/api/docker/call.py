"""One Docker API request as the handlers see it.

A module of its own so that the resource modules (containers.py, images.py ...) import
it without importing the router, which imports every one of them. A Call carries the
narrow `Cluster` (api/cluster_parts.py), never the whole manager: a handler reads the
state, writes records through `cluster.records` and reaches a node through
`cluster.clients.require(node)`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiDictProxy

from flock.docker_compat.paths import segment
from flock.manager.api.docker.errors import parse_json_body

if TYPE_CHECKING:
    from flock.manager.api.cluster_parts import Cluster
    from flock.manager.cluster.state import ClusterState

_PARAM = re.compile(r"\{([a-z_]+)\*?\}")


@dataclass
class Call:
    """One API request as the handlers see it."""

    request: web.Request
    cluster: Cluster
    path: str  # without the /vX.Y prefix, decoded: for messages, never for a node
    version: str  # the client's prefix version, "" without one
    params: dict[str, str] = field(default_factory=dict)  # decoded once
    template: str = ""  # the route matched, e.g. "/images/{name*}/history"
    body: bytes | None = None  # the whole body, when the front read it to check it
    parsed: tuple[object] | None = None  # (its JSON,) once parsed: by the check or json()

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.request.query

    @property
    def query_string(self) -> str:
        """As the client encoded it: aiohttp's `query_string` is decoded, which breaks a
        value holding a space or `&` (the SDK's JSON filters have spaces)."""
        return self.request.rel_url.raw_query_string

    async def json(self) -> object:
        """The body's JSON (None for an empty body; a 400 for a malformed one), parsed
        once: the front's check already parsed a JSON route's body."""
        if self.parsed is None:
            self.parsed = (parse_json_body(await self.request.read()),)
        return self.parsed[0]

    @property
    def state(self) -> ClusterState:
        """Short for `cluster.state`, which nearly every handler reads."""
        return self.cluster.state

    def agent_path(self, **values: str) -> str:
        """The path to send a node: the matched route with each parameter (the client's,
        or a replacement such as a container's real ID) encoded as one segment, so that
        no name can add a segment or a query of its own on the way to the engine."""
        return fill(self.template, {**self.params, **values})


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with each `{name}` / `{name*}` replaced by its value as one segment:
    `/images/{name*}/json` with name `library/busybox` -> `/images/library%2Fbusybox/json`,
    which the engine decodes back (its image routes are `{name:.*}`)."""
    return _PARAM.sub(lambda match: segment(values[match.group(1)]), template)

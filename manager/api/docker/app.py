"""The Docker Remote API's router: version prefixes, routing and error answers.

aiohttp resolves routes before any middleware runs, so a `/v1.41/...` prefix cannot be
stripped by a middleware. Instead one catch-all aiohttp route hands every request to a
small router of our own that strips the prefix, checks the version the way dockerd
does, matches `(method, path)` and turns exceptions into Docker-style JSON errors.
Anything unmatched gets a 501 that says so (a 404 where no Engine has it either), never
a hang; a JSON body is checked before its handler runs (validation.py). The HTTP server
around it (middlewares, CORS, the cluster page, metrics) is composed one floor up, in
manager/http_front.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from flock.docker_compat.api_version import MIN_API_VERSION, version_refusal
from flock.manager.api.docker import engine_api, validation
from flock.manager.api.docker.call import Call, Handler
from flock.manager.api.docker.errors import DockerError, error_response
from flock.manager.cluster.agent_client import AgentError, AgentUnavailable
from flock.manager.cluster.clients import AGENT_HINT, NodeNotConnected
from flock.manager.cluster.state import Ambiguous, NotFound
from flock.manager.observability.metrics import UNMATCHED

if TYPE_CHECKING:
    from flock.manager.api.cluster_parts import Cluster

log = logging.getLogger("flock.manager.api")

MAX_BODY = 64 << 20
# The route template `handle` matched, for the metrics middleware's endpoint label.
ENDPOINT: web.RequestKey[str] = web.RequestKey("flock_endpoint", str)

SWARM_MODE = frozenset({"services", "tasks", "nodes", "secrets", "configs",
                        "plugins"})
_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)?$")


def split_version(path: str) -> tuple[str, str]:
    """("1.41", "/containers/json") for "/v1.41/containers/json"; ("", path) without."""
    match = _VERSION_PREFIX.match(path)
    if match is None:
        return "", path
    return match.group(1), match.group(2) or "/"


def route_path(request: web.Request) -> str:
    """The path routes are matched on: decoded except `%2F` and `%25` (aiohttp's own
    `path_safe`, which its router matches on too). An encoded `/` in a name then stays
    inside its parameter instead of adding a segment that selects another route."""
    return request.rel_url.path_safe


def check_version(version: str, maximum: str, minimum: str = MIN_API_VERSION) -> None:
    """Refuse a client version outside [minimum, maximum] with dockerd's words."""
    refusal = version_refusal(version, maximum, minimum)
    if refusal is not None:
        raise DockerError(400, refusal)


class Router:
    """(method, path template) -> handler; `{name}` matches one segment, `{name*}` any."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        # method -> its routes in order: a request is matched against its method's only
        self._by_method: dict[str, list[tuple[re.Pattern[str], Handler, str]]] = {}

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = _compile(template)
        self._routes.append((method, pattern, handler, template))
        self._by_method.setdefault(method, []).append((pattern, handler, template))

    def add_all(self, routes: Iterable[tuple[str, str, Handler]]) -> None:
        for method, template, handler in routes:
            self.add(method, template, handler)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        found = self.match_route(method, path)
        return None if found is None else found[:2]

    def match_route(self, method: str, path: str
                    ) -> tuple[Handler, dict[str, str], str] | None:
        """(handler, path parameters decoded, the route's template) or None; `path` as
        `route_path` gives it."""
        for pattern, handler, template in self._by_method.get(method, ()):
            found = pattern.match(path)
            if found is not None:
                params = {key: urllib.parse.unquote(value)
                          for key, value in found.groupdict().items()}
                return handler, params, template
        return None

    def template(self, method: str, path: str) -> str | None:
        """The template of the route `path` takes: a metrics label without IDs."""
        found = self.match_route(method, path)
        return None if found is None else found[2]


def _compile(template: str) -> re.Pattern[str]:
    def group(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("*"):
            return f"(?P<{name[:-1]}>.+)"
        return f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{([a-z_]+\*?)\}", group, template) + "/?$")


def build_router() -> Router:
    from flock.manager.api.docker import (
        containers,
        events,
        exec,
        images,
        networks,
        system,
        usage,
        volumes,
    )

    router = Router()
    for module in (system, events, exec, containers, images, networks, volumes, usage):
        router.add_all(module.ROUTES)
    router.add("OPTIONS", "/{path*}", _options)
    return router


async def _options(call: Call) -> web.StreamResponse:
    """dockerd (and classic Swarm) answer OPTIONS on any path with an empty 200, for
    browsers' CORS preflight (moby api/server/router/system optionsHandler)."""
    return web.Response(status=200)


def unsupported(method: str, path: str) -> str:
    """The 501 text; swarm-mode resources get a word on why they do not exist here."""
    text = f"flock: {method} {path} is not supported by the manager"
    if path.strip("/").split("/")[0] in SWARM_MODE:
        text += (" (Flock is a classic Swarm: swarm-mode services, tasks, nodes, secrets, "
                 "configs and plugins do not exist here; see `docker info` for the nodes)")
    return text


def unmatched(method: str, path: str) -> DockerError:
    """A 501 for an Engine endpoint the manager does not serve; a method or path that no
    Engine has gets dockerd's own answer (its router's NotFoundHandler), so that a
    client can tell "not here" from "not anywhere"."""
    if not engine_api.knows(method, path):
        return DockerError(404, "page not found")
    return DockerError(501, unsupported(method, path))


async def handle(router: Router, cluster: Cluster, request: web.Request
                 ) -> web.StreamResponse:
    """Route one request and answer every failure in the Engine's JSON error shape."""
    version, path = split_version(request.path)
    try:
        check_version(version, cluster.this.api_version())
        # Matched on the path as sent (item 5 of issue 16): the decoded one would read
        # `busybox%2Fjson%3Fx%3D/history` as `busybox/json?x=/history`.
        found = router.match_route(request.method, split_version(route_path(request))[1])
        if found is None:
            request[ENDPOINT] = UNMATCHED
            raise unmatched(request.method, path)
        handler, params, request[ENDPOINT] = found
        call = Call(request, cluster, path, version, params, request[ENDPOINT])
        await validation.read_checked_body(call)
        return await handler(call)
    except DockerError as exc:
        return error_response(exc.status, exc.message)
    except (NotFound, Ambiguous) as exc:
        return error_response(404, str(exc).strip("'\""))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"flock: request body too large: {request.method} {path} "
                                   f"takes at most {MAX_BODY >> 20} MiB")
    except NodeNotConnected as exc:  # says what to do already
        return error_response(503, str(exc))
    except AgentUnavailable as exc:
        return error_response(503, f"{exc}. {AGENT_HINT}")
    except AgentError as exc:
        return error_response(502, str(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Docker-style 500
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"flock: {type(exc).__name__}: {exc}")

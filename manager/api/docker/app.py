"""The Docker Remote API front: routing, version prefixes and error answers.

aiohttp resolves routes before any middleware runs, so a `/v1.41/...` prefix cannot be
stripped by a middleware. Instead one catch-all aiohttp route hands every request to a
small router of our own that strips the prefix, checks the version the way dockerd
does, matches `(method, path)` and turns exceptions into Docker-style JSON errors.
Anything unmatched gets a 501 that says so (a 404 where no Engine has it either), never
a hang; a JSON body is checked before its handler runs (validation.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiDictProxy

from flock.docker_compat.paths import segment
from flock.manager.api.docker import engine_api, validation
from flock.manager.api.docker.errors import DockerError, error_response
from flock.manager.cluster.agent_client import AgentError, AgentUnavailable
from flock.manager.cluster.state import Ambiguous, NotFound
from flock.manager.observability import echo_request_id, metrics_middleware, request_id_middleware
from flock.manager.observability.metrics import UNMATCHED
from flock.manager.ui.routes import register as register_ui

if TYPE_CHECKING:
    from flock.manager.app import Manager

log = logging.getLogger("flock.manager.api")

MIN_API_VERSION = "1.24"
DEFAULT_API_VERSION = "1.41"
MAX_BODY = 64 << 20
MANAGER_KEY: web.AppKey = web.AppKey("manager", object)
# The route template `handle` matched, for the metrics middleware's endpoint label.
ENDPOINT: web.RequestKey[str] = web.RequestKey("flock_endpoint", str)

SWARM_MODE = frozenset({"services", "tasks", "nodes", "secrets", "configs",
                        "plugins"})
_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)?$")
_PARAM = re.compile(r"\{([a-z_]+)\*?\}")


@dataclass
class Call:
    """One API request as the handlers see it."""

    request: web.Request
    manager: Manager
    path: str  # without the /vX.Y prefix, decoded: for messages, never for a node
    version: str  # the client's prefix version, "" without one
    params: dict[str, str] = field(default_factory=dict)  # decoded once
    template: str = ""  # the route matched, e.g. "/images/{name*}/history"
    body: bytes | None = None  # the whole body, when the front read it to check it

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.request.query

    @property
    def query_string(self) -> str:
        """As the client encoded it: aiohttp's `query_string` is decoded, which breaks a
        value holding a space or `&` (the SDK's JSON filters have spaces)."""
        return self.request.rel_url.raw_query_string

    @property
    def state(self):
        return self.manager.state

    def agent_path(self, **values: str) -> str:
        """The path to send a node: the matched route with each parameter (the client's,
        or a replacement such as a container's real ID) encoded as one segment, so that
        no name can add a segment or a query of its own on the way to the engine."""
        return fill(self.template, {**self.params, **values})


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def split_version(path: str) -> tuple[str, str]:
    """("1.41", "/containers/json") for "/v1.41/containers/json"; ("", path) without."""
    match = _VERSION_PREFIX.match(path)
    if match is None:
        return "", path
    return match.group(1), match.group(2) or "/"


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with each `{name}` / `{name*}` replaced by its value as one segment:
    `/images/{name*}/json` with name `library/busybox` -> `/images/library%2Fbusybox/json`,
    which the engine decodes back (its image routes are `{name:.*}`)."""
    return _PARAM.sub(lambda match: segment(values[match.group(1)]), template)


def route_path(request: web.Request) -> str:
    """The path routes are matched on: decoded except `%2F` and `%25` (aiohttp's own
    `path_safe`, which its router matches on too). An encoded `/` in a name then stays
    inside its parameter instead of adding a segment that selects another route."""
    return request.rel_url.path_safe


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def check_version(version: str, maximum: str, minimum: str = MIN_API_VERSION) -> None:
    """Refuse a client version outside [minimum, maximum] with dockerd's words."""
    if not version:
        return
    if version_tuple(version) > version_tuple(maximum):
        raise DockerError(
            400, f"client version {version} is too new. "
            f"Maximum supported API version is {maximum}")
    if version_tuple(version) < version_tuple(minimum):
        raise DockerError(
            400, f"client version {version} is too old. Minimum supported API version is "
            f"{minimum}, please upgrade your client to a newer version")


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
    return router


def build_app(manager: Manager) -> web.Application:
    """The aiohttp Application serving the Docker API for `manager`."""
    from flock.manager.api.docker import ps_json

    app = web.Application(client_max_size=MAX_BODY)
    app[MANAGER_KEY] = manager
    ps_json.attach(manager.state)  # `docker ps` entries encoded as records are written
    router = build_router()
    router.add("GET", "/metrics", _metrics)
    router.add("OPTIONS", "/{path*}", _options)

    def endpoint(request: web.Request) -> str:
        known = request.get(ENDPOINT)  # set by `handle`, which matched the route already
        if known is not None:
            return known
        resource = request.match_info.route.resource
        if resource is not None and resource.canonical.startswith("/ui"):
            return resource.canonical  # the cluster page's few routes, by their patterns
        return router.template(request.method,
                               split_version(route_path(request))[1]) or UNMATCHED

    app.middlewares.append(request_id_middleware)  # outermost: all that follows is bound
    app.middlewares.append(metrics_middleware(manager.metrics, endpoint))
    app.on_response_prepare.append(echo_request_id)
    app.on_response_prepare.append(close_if_body_unread)
    if getattr(getattr(manager, "config", None), "cors", False):  # --api-enable-cors
        app.on_response_prepare.append(cors_headers)
    ha = getattr(manager, "ha", None)
    if ha is not None:  # a replica forwards writes to the primary (manager/ha.py)
        app.middlewares.append(ha.middleware)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await handle(router, manager, request)


    register_ui(app, manager)  # the cluster page at /ui, before the catch-all
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def close_if_body_unread(request: web.Request, response: web.StreamResponse) -> None:
    """An answer that goes out before the client's body was read (a node refused a
    build or an upload early) says `Connection: close`, as dockerd's does: aiohttp then
    reads and drops the rest for a while and closes, so the client is neither cut off
    mid-send nor left waiting on a connection that cannot carry another request."""
    if request.body_exists and not request.content.at_eof():
        response.force_close()
        response.headers["Connection"] = "close"  # the head is built before this hook


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Origin, X-Requested-With, Content-Type, Accept, "
                                    "X-Registry-Auth",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, PUT, OPTIONS",
}


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`flock manage --cors`: classic Swarm's headers on every answer (api/primary.go
    NewPrimary with enableCors; the values are dockerd's writeCorsHeaders of its day)."""
    for key, value in CORS_HEADERS.items():
        response.headers.setdefault(key, value)


async def _options(call: Call) -> web.StreamResponse:
    """dockerd (and classic Swarm) answer OPTIONS on any path with an empty 200, for
    browsers' CORS preflight (moby api/server/router/system optionsHandler)."""
    return web.Response(status=200)


async def _metrics(call: Call) -> web.StreamResponse:
    """Prometheus scrapes (manager/observability/metrics.py)."""
    return call.manager.metrics.response()


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


async def handle(router: Router, manager: Manager, request: web.Request) -> web.StreamResponse:
    version, path = split_version(request.path)
    try:
        check_version(version, manager.api_version())
        # Matched on the path as sent (item 5 of issue 16): the decoded one would read
        # `busybox%2Fjson%3Fx%3D/history` as `busybox/json?x=/history`.
        found = router.match_route(request.method, split_version(route_path(request))[1])
        if found is None:
            request[ENDPOINT] = UNMATCHED
            raise unmatched(request.method, path)
        handler, params, request[ENDPOINT] = found
        call = Call(request, manager, path, version, params, request[ENDPOINT])
        await validation.read_checked_body(call)
        return await handler(call)
    except DockerError as exc:
        return error_response(exc.status, exc.message)
    except (NotFound, Ambiguous) as exc:
        return error_response(404, str(exc).strip("'\""))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"flock: request body too large: {request.method} {path} "
                                   f"takes at most {MAX_BODY >> 20} MiB")
    except AgentUnavailable as exc:
        return error_response(503, f"{exc}. Check that the agent runs on that machine "
                                   "(flock join) or remove it from discovery.")
    except AgentError as exc:
        return error_response(502, str(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Docker-style 500
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"flock: {type(exc).__name__}: {exc}")

"""The Docker Remote API front: routing, version prefixes and error answers.

aiohttp resolves routes before any middleware runs, so a `/v1.41/...` prefix cannot be
stripped by a middleware. Instead one catch-all aiohttp route hands every request to a
small router of our own that strips the prefix, checks the version the way dockerd
does, matches `(method, path)` and turns exceptions into Docker-style JSON errors.
Anything unmatched gets a 501 that says so, never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiDictProxy

from manager.api.docker.errors import DockerError, error_response
from manager.cluster.agent_client import AgentError, AgentUnavailable
from manager.cluster.state import Ambiguous, NotFound
from manager.observability import echo_request_id, metrics_middleware, request_id_middleware
from manager.observability.metrics import UNMATCHED
from manager.ui.routes import register as register_ui

if TYPE_CHECKING:
    from manager.app import Manager

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


@dataclass
class Call:
    """One API request as the handlers see it."""

    request: web.Request
    manager: Manager
    path: str  # without the /vX.Y prefix
    version: str  # the client's prefix version, "" without one
    params: dict[str, str] = field(default_factory=dict)

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


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def split_version(path: str) -> tuple[str, str]:
    """("1.41", "/containers/json") for "/v1.41/containers/json"; ("", path) without."""
    match = _VERSION_PREFIX.match(path)
    if match is None:
        return "", path
    return match.group(1), match.group(2) or "/"


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
        """(handler, path parameters, the route's template) or None."""
        for pattern, handler, template in self._by_method.get(method, ()):
            found = pattern.match(path)
            if found is not None:
                return handler, found.groupdict(), template
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
    from manager.api.docker import (
        containers,
        events,
        exec,
        images,
        networks,
        system,
        volumes,
    )

    router = Router()
    for module in (system, events, exec, containers, images, networks, volumes):
        router.add_all(module.ROUTES)
    return router


def build_app(manager: Manager) -> web.Application:
    """The aiohttp Application serving the Docker API for `manager`."""
    from manager.api.docker import ps_json

    app = web.Application(client_max_size=MAX_BODY)
    app[MANAGER_KEY] = manager
    ps_json.attach(manager.state)  # `docker ps` entries encoded as records are written
    router = build_router()
    router.add("GET", "/metrics", _metrics)

    def endpoint(request: web.Request) -> str:
        known = request.get(ENDPOINT)  # set by `handle`, which matched the route already
        if known is not None:
            return known
        resource = request.match_info.route.resource
        if resource is not None and resource.canonical.startswith("/ui"):
            return resource.canonical  # the cluster page's few routes, by their patterns
        return router.template(request.method, split_version(request.path)[1]) or UNMATCHED

    app.middlewares.append(request_id_middleware)  # outermost: all that follows is bound
    app.middlewares.append(metrics_middleware(manager.metrics, endpoint))
    app.on_response_prepare.append(echo_request_id)
    ha = getattr(manager, "ha", None)
    if ha is not None:  # a replica forwards writes to the primary (manager/ha.py)
        app.middlewares.append(ha.middleware)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await handle(router, manager, request)


    register_ui(app, manager)  # the cluster page at /ui, before the catch-all
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


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


async def handle(router: Router, manager: Manager, request: web.Request) -> web.StreamResponse:
    version, path = split_version(request.path)
    try:
        check_version(version, manager.api_version())
        found = router.match_route(request.method, path)
        if found is None:
            request[ENDPOINT] = UNMATCHED
            raise DockerError(501, unsupported(request.method, path))
        handler, params, request[ENDPOINT] = found
        return await handler(Call(request, manager, path, version, params))
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

"""The manager's HTTP server: one aiohttp application on every -H listener.

It composes what the listeners serve, from the floors below: the Docker API's router
(api/docker/app.py), the cluster page (ui/), Prometheus metrics, the request-ID and
metrics middlewares, classic's CORS headers, and a replica's forwarding of writes to
the primary (ha.py). Composed here, in the app layer, so that the API package knows
nothing of the page, the replication or the server around it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flock.manager.api.cluster_parts import Cluster
from flock.manager.api.docker import ps_json
from flock.manager.api.docker.app import (
    ENDPOINT,
    MAX_BODY,
    build_router,
    handle,
    route_path,
    split_version,
)
from flock.manager.api.docker.call import Call
from flock.manager.api.lane.connection import HotLane
from flock.manager.observability import echo_request_id, metrics_middleware, request_id_middleware
from flock.manager.observability.metrics import UNMATCHED
from flock.manager.ui.routes import register as register_ui

# The hot lane in front of this app's connections (api/lane/); absent on a replica,
# whose writes are forwarded to the primary by aiohttp's path.
HOT_LANE: web.AppKey[HotLane] = web.AppKey("flock_hot_lane", HotLane)

Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Origin, X-Requested-With, Content-Type, Accept, "
                                    "X-Registry-Auth",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, PUT, OPTIONS",
}


def build_app(cluster: Cluster, cors: bool = False,
              forward: Middleware | None = None, hot_lane: bool = True) -> web.Application:
    """The application for `cluster`. `cors`: classic's --api-enable-cors; `forward`:
    a replica's middleware sending writes to the primary (manager/ha.py); `hot_lane`:
    the busiest routes' cheaper path (api/lane/), never on a replica."""
    app = web.Application(client_max_size=MAX_BODY)
    ps_json.attach(cluster.state)  # `docker ps` entries encoded as records are written
    router = build_router()
    router.add("GET", "/metrics", _metrics)

    def endpoint(request: web.Request) -> str:
        known = request.get(ENDPOINT)  # set by `handle`, which matched the route already
        if known is not None:
            return known
        # The cluster page's few routes, by their patterns; never a hot-lane request.
        resource = (request.match_info.route.resource
                    if isinstance(request, web.BaseRequest) else None)
        if resource is not None and resource.canonical.startswith("/ui"):
            return resource.canonical
        return router.template(request.method,
                               split_version(route_path(request))[1]) or UNMATCHED

    app.middlewares.append(request_id_middleware)  # outermost: all that follows is bound
    app.middlewares.append(metrics_middleware(cluster.metrics, endpoint))
    app.on_response_prepare.append(echo_request_id)
    app.on_response_prepare.append(close_if_body_unread)
    if cors:
        app.on_response_prepare.append(cors_headers)
    if forward is not None:
        app.middlewares.append(forward)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await handle(router, cluster, request)

    register_ui(app, cluster)  # the cluster page at /ui, before the catch-all
    app.router.add_route("*", "/{tail:.*}", dispatch)
    if hot_lane and forward is None:
        app[HOT_LANE] = HotLane(app, dispatch)
    return app


async def _metrics(call: Call) -> web.StreamResponse:
    """Prometheus scrapes (manager/observability/metrics.py)."""
    return call.cluster.metrics.response()


async def close_if_body_unread(request: web.Request, response: web.StreamResponse) -> None:
    """An answer that goes out before the client's body was read (a node refused a
    build or an upload early) says `Connection: close`, as dockerd's does: aiohttp then
    reads and drops the rest for a while and closes, so the client is neither cut off
    mid-send nor left waiting on a connection that cannot carry another request."""
    if request.body_exists and not request.content.at_eof():
        response.force_close()
        response.headers["Connection"] = "close"  # the head is built before this hook


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`flock manage --cors`: classic Swarm's headers on every answer (api/primary.go
    NewPrimary with enableCors; the values are dockerd's writeCorsHeaders of its day)."""
    for key, value in CORS_HEADERS.items():
        response.headers.setdefault(key, value)

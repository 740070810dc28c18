"""The cluster page's HTTP side: the page itself, a JSON snapshot and a live stream.

The manager's ClusterState is kept current from every node's engine event stream (see
manager/cluster/sync.py) and bumps `generation` on each change. The stream endpoint
watches that counter and pushes a fresh snapshot as a server-sent event whenever the
visible picture changed, so a browser sees a `docker run` within a fraction of a second
without this module opening event streams of its own to every node. EventSource
reconnects by itself when the manager restarts; the snapshot endpoint is there for
scripts and for browsers without EventSource.

Read-only: only GET routes, nothing here changes the cluster. It is served by the same
aiohttp application (and so the same listeners and TLS) as the Docker API.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from flock.manager.ui.jobs import job_rows

if TYPE_CHECKING:
    from flock.manager.api.cluster_parts import Cluster

STATIC = Path(__file__).parent / "static"
POLL = 0.2  # seconds between looks at the state's generation counter
KEEPALIVE = 15.0  # seconds of silence after which a comment line keeps proxies from closing
MAX_CONTAINERS = 200  # containers listed per node in a snapshot; the count says the rest
RETRY_MS = 2000  # how soon a browser reconnects after losing the stream

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
}


def snapshot(cluster: Cluster) -> dict:
    """What the page draws: every node with its totals, reservations (pending creates
    included, as the scheduler counts them) and containers, and the cron jobs (next run,
    last result). Nothing that changes on a mere heartbeat, so that an unchanged cluster
    sends nothing."""
    state = cluster.state
    usage_map = state.usage_map()
    nodes = []
    for node in sorted(state.nodes(), key=lambda n: (n.name, n.addr)):
        usage = usage_map.get(node.id)
        containers = sorted(state.containers(node.id), key=lambda c: (c.name, c.id))
        nodes.append({
            "id": node.id,
            "name": node.name or node.addr,
            "addr": node.addr,
            "health": node.health,
            "error": node.error,
            "availability": node.availability,
            "cpus": node.cpus,
            "memory": node.memory,
            "reserved_cpus": round(usage.cpus, 3) if usage is not None else 0.0,
            "reserved_memory": usage.memory if usage is not None else 0,
            "labels": dict(sorted(node.labels.items())),
            "container_count": len(containers),
            "containers": [{"id": c.id[:12], "name": c.name, "image": c.image,
                            "state": c.state} for c in containers[:MAX_CONTAINERS]],
        })
    return {"manager": cluster.this.name, "strategy": cluster.scheduler.strategy_name,
            "nodes": nodes, "jobs": job_rows(cluster)}


class ClusterPage:
    """The handlers, bound to one manager's cluster; `closing` ends open streams at
    shutdown so that stopping the manager does not wait for browsers to go away."""

    def __init__(self, cluster: Cluster) -> None:
        self.parts = cluster  # not `cluster`: that is the snapshot handler's name
        self.closing = False

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")  # relative asset URLs resolve under /ui/

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    async def other(self, request: web.Request) -> web.StreamResponse:
        """Anything else under /ui/: a 405 for writes (the page is read-only), else a 404."""
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"},
                                text=f"flock: {request.method} {request.path}: the cluster "
                                     "page is read-only; change the cluster with the Docker "
                                     "API or the flock CLI\n")
        return web.Response(status=404, text=f"flock: no such page: {request.path}; "
                                             "the cluster page is /ui/\n")

    async def cluster(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(snapshot(self.parts), headers={"Cache-Control": "no-cache"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """`text/event-stream`: a `cluster` event with the snapshot now and after each
        change, a comment line when idle."""
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        state = self.parts.state
        seen_generation: int | None = None
        seen_jobs: list[dict] | None = None
        sent = ""
        quiet_since = time.monotonic()
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while not self.closing:
                jobs = job_rows(self.parts)  # a job's next run moves on its own
                if state.generation != seen_generation or jobs != seen_jobs:
                    seen_generation, seen_jobs = state.generation, jobs
                    body = json.dumps(snapshot(self.parts), separators=(",", ":"))
                    if body != sent:
                        sent = body
                        await response.write(f"event: cluster\ndata: {body}\n\n".encode())
                        quiet_since = time.monotonic()
                if time.monotonic() - quiet_since > KEEPALIVE:
                    await response.write(b": keepalive\n\n")
                    quiet_since = time.monotonic()
                await asyncio.sleep(POLL)
        except ConnectionResetError:
            pass  # the browser went away
        return response

    async def close(self, app: web.Application) -> None:
        self.closing = True


def register(app: web.Application, cluster: Cluster) -> None:
    """Add the cluster page's routes to the manager's application (before its Docker API
    catch-all route)."""
    page = ClusterPage(cluster)
    app.router.add_get("/ui", page.redirect)
    app.router.add_get("/ui/", page.index)
    app.router.add_get("/ui/api/cluster", page.cluster)
    app.router.add_get("/ui/api/stream", page.stream)
    app.router.add_static("/ui/static", STATIC)
    app.router.add_route("*", "/ui/{tail:.*}", page.other)
    app.on_shutdown.append(page.close)

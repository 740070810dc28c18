"""The manager's Prometheus metrics, served as `GET /metrics` on the Docker API front.

- flock_scheduler_decisions_total{outcome}: placed, no_node or error; every `place`,
  whichever door the container came in by (create, ClusterService Run, reschedule,
  global copies, build);
- flock_scheduler_decision_seconds: how long those decisions took;
- flock_scheduler_filter_rejections_total{filter}: decisions that found no node, per
  chain step that removed nodes in them ("resources" for CPU/memory shortages). A
  successful decision takes the fast path, which does not know which filter removed
  what, and asking would cost a full chain run per decision;
- flock_nodes{health}: nodes by health, counted when scraped;
- flock_api_requests_total{method,endpoint,code} and
  flock_api_request_duration_seconds{method,endpoint}: Docker API requests by route
  template (`/containers/{id}/start`: no container IDs in labels) and status;
- flock_agent_rpc_duration_seconds{method} and flock_agent_rpc_errors_total{method}:
  calls to the agents (Docker: until the answer's head is in).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from flock.common.metrics import CONTENT_TYPE, Registry
from flock.manager.cluster.model import DISCONNECTED, HEALTHY, PENDING, UNHEALTHY

if TYPE_CHECKING:
    from flock.manager.cluster.state import ClusterState

access_log = logging.getLogger("flock.manager.api.access")

OUTCOMES = ("placed", "no_node", "error")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "unmatched"  # the endpoint label of a path no route knows (a 501)
CLIENT_GONE = "499"  # nginx's word for "the client closed the connection first"


class Rejection(Protocol):
    """What the metrics read of the scheduler's Removal (scheduler/filters/base.py):
    which filter took out which nodes. Described here rather than imported, since the
    scheduler stands above observability and calls it as its DecisionObserver."""

    @property
    def filter(self) -> str: ...

    @property
    def removed(self) -> Collection[str]: ...


class CallSlots(Protocol):
    """What the metrics read of the agent clients' call_stream.StreamSlots."""

    open: int
    links: int


class ManagerMetrics:
    """Every metric of one manager. It is the scheduler's DecisionObserver and the
    agent clients' RPC observer; `filters` are pre-declared so they show 0, not nothing."""

    def __init__(self, state: ClusterState, filters: Iterable[str] = ()) -> None:
        self.state = state
        self.registry = registry = Registry()
        self.decisions = registry.counter(
            "flock_scheduler_decisions_total",
            "Scheduling decisions by outcome: placed, no_node (nothing fits), error.",
            ["outcome"])
        self._placed, self._no_node, self._error = (self.decisions.labels(o) for o in OUTCOMES)
        self.decision_seconds = registry.histogram(
            "flock_scheduler_decision_seconds", "Time the scheduler took to decide, seconds.")
        self._decision_time = self.decision_seconds.labels()
        self.rejections = registry.counter(
            "flock_scheduler_filter_rejections_total",
            "Decisions that found no node, counted once per filter that removed nodes in "
            "them (resources: CPU or memory).", ["filter"])
        for name in [*filters, "resources"]:
            self.rejections.labels(name)
        registry.gauge("flock_nodes", "Nodes known to this manager, by health.", ["health"],
                       self._nodes_by_health)
        self.api_requests = registry.counter(
            "flock_api_requests_total",
            "Docker API requests by method, route template and status code.",
            ["method", "endpoint", "code"])
        self.api_seconds = registry.histogram(
            "flock_api_request_duration_seconds",
            "Docker API request time until the answer ended, seconds (streams included).",
            ["method", "endpoint"])
        self.rpc_seconds = registry.histogram(
            "flock_agent_rpc_duration_seconds",
            "Agent RPC time by method, seconds (Docker: until the answer's head).", ["method"])
        self.rpc_errors = registry.counter(
            "flock_agent_rpc_errors_total", "Agent RPCs that failed, by method.", ["method"])
        self.gc_seconds = registry.histogram(
            "flock_gc_pause_seconds",
            "Garbage collections, by generation, and how long each stopped the manager.",
            ["generation"])
        self._gc_times = [self.gc_seconds.labels(str(g)) for g in range(3)]
        self.last_request = time.monotonic()  # when the latest API request ended

    def gc_pause(self, generation: int, seconds: float) -> None:
        self._gc_times[min(max(generation, 0), 2)].observe(seconds)

    # ------------------------------------------------- scheduler (DecisionObserver)
    def placed(self, seconds: float) -> None:
        self._placed.value += 1
        self._decision_time.observe(seconds)

    def no_node(self, seconds: float, removals: Iterable[Rejection]) -> None:
        self._no_node.value += 1
        self._decision_time.observe(seconds)
        for name in {r.filter or "unknown" for r in removals if r.removed}:
            self.rejections.labels(name).inc()

    def failed(self, seconds: float) -> None:
        self._error.value += 1
        self._decision_time.observe(seconds)

    # ------------------------------------------------- agent clients
    def agent_rpc(self, method: str, seconds: float, ok: bool) -> None:
        self.rpc_seconds.labels(method).observe(seconds)
        if not ok:
            self.rpc_errors.labels(method).inc()

    def call_carriers(self, slots: CallSlots) -> None:
        """Show how many agents' calls travel on a call link and how many on a gRPC
        stream (call_stream.StreamSlots): what an operator sizes --call-streams and the
        open-files limit by."""
        self.registry.gauge(
            "flock_agent_call_carriers",
            "Connections open to agents for their short Docker calls: call links (link) "
            "and DockerCalls gRPC streams (stream).", ["carrier"],
            lambda: {("link",): float(slots.links),
                     ("stream",): float(slots.open - slots.links)})

    # ------------------------------------------------- API front
    def hot_lane(self, counts: Callable[[], dict[str, int]]) -> None:
        """What the hot lane (api/lane/) took: requests it answered, connections it
        handed to aiohttp, connections on it now. All zero with FLOCK_HOT_LANE=off."""
        self.registry.gauge(
            "flock_api_hot_lane",
            "The Docker API's hot lane since start: requests answered on it (answered), "
            "connections handed to the full HTTP server (handed_over), connections on it "
            "now (open).", ["what"],
            lambda: {(key,): float(value) for key, value in counts().items()})

    def api_request(self, method: str, endpoint: str, code: str, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.last_request = time.monotonic()
        self.api_requests.labels(method, endpoint, code).inc()
        self.api_seconds.labels(method, endpoint).observe(seconds)

    def _nodes_by_health(self) -> dict[tuple[str, ...], float]:
        counts = {(HEALTHY,): 0.0, (UNHEALTHY,): 0.0, (PENDING,): 0.0, (DISCONNECTED,): 0.0}
        for node in self.state.nodes():
            counts[(node.health,)] = counts.get((node.health,), 0.0) + 1
        return counts

    def response(self) -> web.Response:
        """The scrape answer."""
        return web.Response(body=self.registry.render().encode(),
                            headers={"Content-Type": CONTENT_TYPE})


def metrics_middleware(metrics: ManagerMetrics, endpoint: Callable[[web.Request], str]):
    """Counts and times every request; `endpoint` names its route template. Logs one
    access line per request at debug level (with the request ID, from the filter)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        start = time.perf_counter()
        code = "500"
        try:
            response = await handler(request)
            code = str(response.status)
            return response
        except web.HTTPException as exc:
            code = str(exc.status)
            raise
        except BaseException as exc:
            code = CLIENT_GONE if _client_gone(exc) else "500"
            raise
        finally:
            seconds = time.perf_counter() - start
            metrics.api_request(request.method, endpoint(request), code, seconds)
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug("%s %s %s %.1fms", request.method, request.path, code,
                                 seconds * 1000)

    return middleware


def _client_gone(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError | ConnectionResetError)
